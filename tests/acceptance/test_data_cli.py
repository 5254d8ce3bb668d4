"""`fleet data` as a user runs it: backfill from the sandbox service on loopback (twice:
nothing stored twice), bars exported as CSV and JSON (aggregated from 1m on session
boundaries), gaps judged against the NSE calendar (a holiday and a weekend have none, a lost
minute is one), and bad input refused in one line with exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.bar_gaps import expected_minutes
from fleetkit.core.bars import BarRecord
from fleetkit.store import migrate
from fleetkit.store.bars import BarStore
from fleetkit.store.database import open_database, upgrade_database
from tests.acceptance.cli_support import assert_json_user_error, assert_user_error, fleet

pytestmark = pytest.mark.slow  # every test starts `fleet` processes

IST = ZoneInfo("Asia/Kolkata")
BOT = ('bots: [{name: btc, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}]\n')


@pytest.fixture
def sandbox() -> Iterator[SandboxService]:
    """The sandbox service on loopback, its clock held at a Wednesday noon in New York."""
    venue = build_venue(ScriptedPrices(), ManualClock(NEW_YORK_MIDDAY))
    with SandboxService(venue, match_interval_s=3600) as service:
        yield service


def config(tmp_path: Path, sandbox_url: str = "http://127.0.0.1:9") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"sandbox: {{url: {json.dumps(sandbox_url)}}}\n{BOT}", encoding="utf-8")
    return path


def test_backfill_twice_stores_nothing_twice_and_bars_export_aggregated(
        tmp_path: Path, sandbox: SandboxService) -> None:
    args = ["--config", str(config(tmp_path, sandbox.url))]
    assert fleet("db", "upgrade", *args, cwd=tmp_path).returncode == 0
    first = fleet("data", "backfill", "--days", "1", *args, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)["instruments"][0]
    assert (done["instrument"], done["source"], done["inserted"]) == (
        "CRYPTO:BTC/USDT", "sandbox", 1440)
    assert done["last"] == (NEW_YORK_MIDDAY - timedelta(minutes=1)).isoformat()
    again = fleet("data", "backfill", *args, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    redone = json.loads(again.stdout)["instruments"][0]
    assert (redone["from"], redone["fetched"], redone["inserted"]) == (
        NEW_YORK_MIDDAY.isoformat(), 0, 0)  # resumes after the newest bar: nothing new yet
    # --from refetches from midnight: the day before the lookback is new, the rest is not.
    wider = fleet("data", "backfill", "--from", "2024-01-02", *args, "--json", cwd=tmp_path)
    assert wider.returncode == 0, wider.stderr
    widened = json.loads(wider.stdout)["instruments"][0]
    assert (widened["fetched"], widened["inserted"]) == (900 + 1440, 900)

    hours = fleet("data", "bars", "BTC/USDT", "--timeframe", "1h", "--from", "2024-01-02",
                  "--to", "2024-01-03", *args, "--json", cwd=tmp_path)
    assert hours.returncode == 0, hours.stderr
    shown = json.loads(hours.stdout)
    assert shown["bars_from"] == "aggregated from 1m"
    # 2024-01-02 00:00 UTC .. 2024-01-03 15:00 UTC is stored: 24 hours, then 15.
    assert len(shown["bars"]) == 24 + 15
    assert shown["bars"][0]["open_time"] == "2024-01-02T00:00:00+00:00"
    assert {b["volume"] for b in shown["bars"]} == {"60000"}  # 60 minutes of 1000 each

    exported = fleet("data", "bars", "CRYPTO:BTC/USDT", "--from", "2024-01-03", "--to",
                     "2024-01-03", "--csv", *args, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.strip().splitlines()
    assert lines[0] == "open_time,open,high,low,close,volume"
    assert len(lines) == 1 + 15 * 60
    assert lines[1] == "2024-01-03T00:00:00+00:00,30000,30000,30000,30000,1000"


def write_nse_minutes(url: str) -> None:
    """INFY's minutes of Thursday 25 and Monday 29 January 2024 (Republic Day and the
    weekend between them), all but 11:00 IST on the Monday."""
    from fleetkit.calendars.market_calendars import MarketCalendars

    database = open_database(url, require_schema=False)
    upgrade_database(database, (migrate.MARKET_DATA,))
    start = datetime(2024, 1, 25, tzinfo=IST)
    sessions = MarketCalendars().sessions("XNSE", start.date(), (start + timedelta(5)).date())
    lost = datetime(2024, 1, 29, 11, 0, tzinfo=IST).astimezone(UTC)
    price = Decimal("1650.05")
    records = [BarRecord(m, price, price, price, price, Decimal(10))
               for m in expected_minutes(sessions, start, start + timedelta(days=5))
               if m != lost]
    BarStore(database.engine).write("NSE:INFY", "1m", records, source="test",
                                    recorded_at=datetime.now(UTC))
    database.dispose()


def test_gaps_skip_the_holiday_and_the_weekend_and_find_the_lost_minute(
        tmp_path: Path, database_url: str) -> None:
    write_nse_minutes(database_url)
    args = ["--config", str(config(tmp_path)), "--market-data-db", database_url]
    result = fleet("data", "gaps", "NSE:INFY", "--from", "2024-01-25", "--to", "2024-01-29",
                   *args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["gaps"] == [{"start": "2024-01-29T05:30:00+00:00",
                              "end": "2024-01-29T05:31:00+00:00", "minutes": 1}]
    assert shown["newest_bar"] == "2024-01-29T09:59:00+00:00"
    daily = fleet("data", "bars", "NSE:INFY", "-t", "1d", "--from", "2024-01-25", "--to",
                  "2024-01-29", *args, "--json", cwd=tmp_path)
    assert daily.returncode == 0, daily.stderr
    days = json.loads(daily.stdout)["bars"]
    assert [(d["open_time"], d["volume"]) for d in days] == [
        ("2024-01-25T03:45:00+00:00", "3750"), ("2024-01-29T03:45:00+00:00", "3740")]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    args = ["--config", str(config(tmp_path))]
    assert_json_user_error(fleet("data", "bars", "BTC/USDT", "--timeframe", "7m", *args,
                                 "--json", cwd=tmp_path), "user", "unknown timeframe '7m'")
    assert_user_error(fleet("data", "gaps", "BTC/USDT", "--from", "2024-13-01", *args,
                            cwd=tmp_path), "--from '2024-13-01' is not a date")
    assert_user_error(fleet("data", "gaps", "BTC/USDT", *args, cwd=tmp_path),
                      "no fleet database at", "fleet up")
    market = f"sqlite:///{tmp_path / 'market.db'}"
    write_nse_minutes(market)
    assert_user_error(fleet("data", "bars", "DOGE", "--from", "2024-01-02", *args,
                            "--market-data-db", market, cwd=tmp_path),
                      "no instrument 'DOGE'", "known: CRYPTO:BTC/USDT, NSE:INFY", "MARKET:SYMBOL")
    assert_user_error(fleet("data", "backfill", "ETH/USDT", *args, cwd=tmp_path),
                      "'ETH/USDT' is not an instrument the config's bots trade")
