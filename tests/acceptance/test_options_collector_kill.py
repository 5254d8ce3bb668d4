"""`fleet data collect-options` killed with SIGKILL while it fills the minutes missed since
its last run, then restarted: every session minute the venue (the real sandbox service on
loopback, in demo time so NSE is in session whatever the hour) can still serve is stored
exactly once, on SQLite and PostgreSQL, and the outage is told once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.config.market_data import OptionCollectorSettings
from fleetkit.core.numbers import floor_minute
from fleetkit.core.sessions import Session
from fleetkit.data.option_collector import OptionCollector
from fleetkit.runtime.clock import WallClock
from fleetkit.store.collector_stats import CollectorStats
from fleetkit.store.data_alerts import MISSED_KIND
from fleetkit.store.option_quotes import WRITTEN, OptionQuoteStore
from fleetkit.store.schema import events, option_quote_minutes, option_quotes
from tests.support import eventually, migrated_database

pytestmark = pytest.mark.slow  # starts `fleet` processes

CALENDARS = MarketCalendars(load_overrides(None).for_market_calendars())
IST = ZoneInfo("Asia/Kolkata")
PER_MINUTE = 40  # 4 chains x 5 strikes x call and put
LOOK_BACK = timedelta(minutes=30)


def sessions(market: str, start: datetime, end: datetime) -> list[Session]:
    return list(CALENDARS.sessions("XNSE", start.date() - timedelta(days=1),
                                   end.date() + timedelta(days=1)))


class SettledSessions:
    """The calendars for placing the demo, less a session that is open now but began less
    than the look-back ago or ends within minutes: the demo then moves NSE into an earlier
    session, far enough along for the look-back and with live minutes still to come. (At
    the real open, the demo keeps the wall clock, leaving the test a minute or two of
    session; near the close, no live minute would come after the fill.)"""

    def sessions(self, calendar: str, start: Any, end: Any) -> list[Session]:
        now = datetime.now(UTC)
        return [s for s in CALENDARS.sessions(calendar, start, end)
                if not (s.open <= now < s.close and (now < s.open + LOOK_BACK + MARGIN
                                                     or now > s.close - MARGIN))]


MARGIN = timedelta(minutes=5)


@pytest.fixture
def sandbox() -> Iterator[SandboxService]:
    venue = SandboxVenue(InventedPrices(7, load_catalog(), CALENDARS), MemoryBook(), WallClock(),
                         VenueConfig(seed=7, time_mode="demo"), sessions=SettledSessions())
    with SandboxService(venue, match_interval_s=3600) as service:
        yield service


def collect(tmp_path: Path, sandbox_url: str, url: str) -> subprocess.Popen[str]:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f'sandbox: {{url: "{sandbox_url}"}}\n'
        "market_data:\n  option_collector:\n    snapshot_delay_s: 0\n    chains:\n"
        + "".join(f"      - {{underlying: {u}, strikes_each_side: 2}}\n"
                  for u in ("NIFTY", "BANKNIFTY", "SENSEX")), encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var")}
    env.pop("FLEET_DB_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "data", "collect-options", "--config", str(config),
         "--db", url, "--market-data-db", url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def written(database: Any) -> int:
    m = option_quote_minutes.c
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(option_quote_minutes)
                                .where(m.status == WRITTEN)).scalar_one())


def test_sigkill_while_filling_loses_and_duplicates_no_minute(
        tmp_path: Path, sandbox: SandboxService, database_url: str) -> None:
    database = migrated_database(database_url)
    try:
        with SandboxClient(sandbox.url, "test") as client:
            offset = client.market_offset("NSE")
        store = OptionQuoteStore(database.engine)
        probe = OptionCollector(OptionCollectorSettings().plan(), client, "sandbox", store,
                                CollectorStats(database.engine), sessions, IST, WallClock(),
                                offset=offset)
        now = datetime.now(UTC)
        minutes = probe.session_minutes(floor_minute(now - LOOK_BACK), floor_minute(now))
        minutes = [m for m in minutes if probe.trading_day(m) == probe.trading_day(minutes[-1])]
        assert minutes, "demo time puts NSE in session"
        # The collector last ran at `seed`: everything after it is missing.
        seed = minutes[0]
        store.write_minute("options", seed, probe.trading_day(seed), [], recorded_at=now)
        expected = len(minutes)

        for threshold in sorted({min(3, expected), min(12, expected)}):
            process = collect(tmp_path, sandbox.url, database_url)
            try:
                eventually(lambda t=threshold, p=process: written(database) >= t
                           or p.poll() is not None, 60, f"{threshold} minutes written",
                           interval_s=0.02)
                assert process.poll() is None, process.communicate()
                process.send_signal(signal.SIGKILL)
            finally:
                process.communicate(timeout=10)

        process = collect(tmp_path, sandbox.url, database_url)
        try:
            eventually(lambda: written(database) >= expected + 1 or process.poll() is not None,
                       90, "every minute written", interval_s=0.1)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        assert process.returncode == 0, err

        day = probe.trading_day(seed)
        ledger = store.minutes("options", day)
        assert [m.status for m in ledger] == [WRITTEN] * len(ledger)
        stamps = [m.minute for m in ledger]
        assert stamps == probe.session_minutes(seed, stamps[-1] + timedelta(minutes=1))
        assert len(stamps) >= expected + 1  # the seed's successors up to a live minute
        q = option_quotes.c
        with database.engine.connect() as conn:
            per_minute = dict(conn.execute(select(q.minute, func.count())
                                           .group_by(q.minute)).all())
            told = conn.execute(select(func.count()).select_from(events)
                                .where(events.c.kind == MISSED_KIND)).scalar_one()
        assert per_minute == {m: PER_MINUTE for m in stamps[1:]}
        assert sum(m.rows for m in ledger) == PER_MINUTE * (len(stamps) - 1)
        assert told == 1  # one outage, told once, however often the collector restarted
    finally:
        database.dispose()
