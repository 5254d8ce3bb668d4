"""`fleet data track-straddles` as a real process against the sandbox service (REST and its
WebSocket stream on loopback, demo time so NSE is in session at any hour): SIGKILL mid-run
and a restart store no snapshot twice, and the time it was down is recorded as a gap filled
from REST; SIGTERM stops it cleanly (exit 0) — on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.stream import StreamConfig
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.runtime.clock import WallClock
from fleetkit.store.collector_stats import CollectorStats
from fleetkit.store.fleet import FleetStore
from fleetkit.store.schema import straddle_snapshots
from tests.support import eventually, migrated_database

pytestmark = pytest.mark.slow  # starts `fleet` processes


@pytest.fixture
def sandbox() -> Iterator[SandboxService]:
    calendars = MarketCalendars(load_overrides(None).for_market_calendars())
    venue = SandboxVenue(InventedPrices(7, load_catalog(), calendars), MemoryBook(),
                         WallClock(), VenueConfig(seed=7, time_mode="demo"),
                         sessions=calendars)
    with SandboxService(venue, match_interval_s=3600,
                        stream=StreamConfig(tick_interval_s=0.05,
                                            heartbeat_interval_s=0.5)) as service:
        yield service


def track(tmp_path: Path, sandbox_url: str, url: str) -> subprocess.Popen[str]:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        f'sandbox: {{url: "{sandbox_url}"}}\n'
        "runtime: {heartbeat_interval_s: 1, stale_after_s: 5}\n"
        "market_data:\n  straddle_tracker: {underlyings: [NIFTY], strangles: [1], "
        "flush_interval_ms: 50}\n", encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var")}
    env.pop("FLEET_DB_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fleetkit", "data", "track-straddles", "--config", str(config),
         "--db", url, "--market-data-db", url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count(database: Any, source: str | None = None, after: datetime | None = None) -> int:
    s = straddle_snapshots.c
    query = select(func.count()).select_from(straddle_snapshots)
    if source is not None:
        query = query.where(s.source == source)
    if after is not None:
        query = query.where(s.at > after)
    with database.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def duplicated(database: Any) -> list[Any]:
    """Snapshots of one structure stored twice for one moment."""
    s = straddle_snapshots.c
    query = (select(s.underlying, s.width, s.at).group_by(s.underlying, s.width, s.at)
             .having(func.count() > 1))
    with database.engine.connect() as conn:
        return list(conn.execute(query).all())


def test_sigkill_and_restart_duplicate_nothing_and_record_the_outage(
        tmp_path: Path, sandbox: SandboxService, database_url: str) -> None:
    database = migrated_database(database_url)
    try:
        process = track(tmp_path, sandbox.url, database_url)
        try:
            eventually(lambda: count(database, "stream") >= 20 or process.poll() is not None,
                       30, "stream snapshots", interval_s=0.05)
            assert process.poll() is None, process.communicate()
            process.send_signal(signal.SIGKILL)
        finally:
            process.communicate(timeout=10)
        killed_at = count(database)
        stats = CollectorStats(database.engine)

        process = track(tmp_path, sandbox.url, database_url)
        try:
            eventually(lambda: stats.gaps("straddles") or process.poll() is not None, 30,
                       "the outage recorded", interval_s=0.05)
            gap = stats.gaps("straddles")[0]
            eventually(lambda: count(database, "stream", after=gap.ended_at) >= 10
                       or process.poll() is not None, 30, "stream snapshots after the restart",
                       interval_s=0.05)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        assert process.returncode == 0, err
        assert "Traceback" not in err

        assert (gap.scope, gap.reason, gap.filled) == ("NIFTY", "tracker not running", 2)
        assert gap.started_at < gap.ended_at
        assert count(database) > killed_at + 10
        assert duplicated(database) == []
        # The start's REST snapshots fill the outage: one per structure at its end.
        s = straddle_snapshots.c
        with database.engine.connect() as conn:
            filled = conn.execute(select(s.width, s.source).where(s.at == gap.ended_at)
                                  .order_by(s.width)).all()
        assert [tuple(r) for r in filled] == [(0, "rest"), (1, "rest")]
        beats = {b.component: b for b in FleetStore(database.engine).heartbeats()}
        assert beats["tracker:straddles"].status == "stopped"
        assert beats["tracker:straddles"].kind == "collector"
    finally:
        database.dispose()


def test_a_sandbox_not_running_is_one_line_and_exit_2(tmp_path: Path,
                                                      database_url: str) -> None:
    from fleetkit.testing.loopback import free_port

    process = track(tmp_path, f"http://127.0.0.1:{free_port()}", database_url)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2, (out, err)
    assert "no sandbox answering at" in err and "fleet broker serve" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
