"""Reading option quotes back on SQLite and PostgreSQL: the straddle when a minute holds two
snapshots that disagree on the underlying, the underlyings and newest minute recorded, and
`fleet data chain` as a user runs it (one recorded minute's chain, refusals in one line)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fleetkit.cli.app import main
from fleetkit.store.option_quotes import OptionQuoteStore
from tests.integration.test_option_quotes import DAY, EXPIRY, OPEN, STEP, chain

IST = ZoneInfo("Asia/Kolkata")
MONTHLY = date(2026, 1, 27)


def test_a_minute_with_two_snapshots_takes_the_lower_underlying_price(fleet_db: Any) -> None:
    store = OptionQuoteStore(fleet_db.engine)
    later = OPEN + timedelta(minutes=1)
    # Minute 0: the weekly and the monthly chain were snapshotted at different moments.
    store.write_minute("weekly", OPEN, DAY, chain(OPEN, Decimal("24030")), recorded_at=OPEN)
    store.write_minute("monthly", OPEN, DAY, chain(OPEN, Decimal("24020"), expiry=MONTHLY),
                       recorded_at=OPEN)
    # Minute 1: halfway between two strikes, which takes the higher.
    store.write_minute("weekly", later, DAY, chain(later, Decimal("24025")), recorded_at=later)
    series = store.straddle("NIFTY", DAY, STEP)
    assert [(p.underlying_price, p.strike) for p in series] == [
        (Decimal("24020"), Decimal(24000)), (Decimal("24025"), Decimal(24050))]
    # The weekly's legs at 24000 (its own snapshot said 24030: ATM 24050 for it alone).
    # 30 in the money + 80.05 + the minute's bump (0.45); the put: 80.50.
    assert (series[0].call, series[0].put) == (Decimal("110.50"), Decimal("80.50"))
    assert (series[1].call, series[1].put) == (Decimal("80.51"), Decimal("105.51"))
    assert series[0].minute.utcoffset() == timedelta(0)
    monthly = store.straddle("NIFTY", DAY, STEP, expiry=MONTHLY)
    assert [(p.call, p.put) for p in monthly] == [(Decimal("121.50"), Decimal("101.50")),
                                                  (None, None)]


def test_underlyings_and_the_newest_minute(fleet_db: Any) -> None:
    store = OptionQuoteStore(fleet_db.engine)
    assert store.underlyings() == [] and store.latest_minute("NIFTY") is None
    for i in range(3):
        minute = OPEN + timedelta(minutes=i)
        store.write_minute("nifty", minute, DAY, chain(minute, Decimal(24000)),
                           recorded_at=minute)
    banknifty = [replace(q, underlying="BANKNIFTY", instrument=q.instrument.replace(
        "NIFTY", "BANKNIFTY")) for q in chain(OPEN, Decimal(24000))]
    store.write_minute("bank", OPEN, DAY, banknifty, recorded_at=OPEN)
    assert store.underlyings() == ["BANKNIFTY", "NIFTY"]
    assert store.latest_minute("NIFTY") == OPEN + timedelta(minutes=2)
    assert store.latest_minute("NIFTY", OPEN + timedelta(minutes=1, seconds=30)) == \
        OPEN + timedelta(minutes=1)
    assert store.latest_minute("NIFTY", OPEN - timedelta(minutes=1)) is None


# --- fleet data chain ------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    config = tmp_path / "fleet.yaml"
    config.write_text("bots: []\n", encoding="utf-8")
    return ["--config", str(config), "--db", database_url]


def today_at(hour: int, minute: int) -> datetime:
    today = datetime.now(UTC).astimezone(IST).date()
    return datetime.combine(today, time(hour, minute), tzinfo=IST).astimezone(UTC)


@pytest.fixture
def recorded(fleet_db: Any) -> list[datetime]:
    """NIFTY at 09:15 (weekly and monthly) and 09:17 IST today (weekly only)."""
    store = OptionQuoteStore(fleet_db.engine)
    first, second = today_at(9, 15), today_at(9, 17)
    day = first.astimezone(IST).date()
    store.write_minute("nifty", first, day, chain(first, Decimal("24012.35")),
                       recorded_at=first)
    store.write_minute("monthly", first, day, chain(first, Decimal("24012.35"), expiry=MONTHLY),
                       recorded_at=first)
    store.write_minute("nifty", second, day, chain(second, Decimal("24074.99")),
                       recorded_at=second)
    return [first, second]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["data", "chain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_newest_minute_by_default_and_the_newest_at_or_before_at(
        recorded: list[datetime], cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["NIFTY", "--json", *cli], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["minute"], shown["expiry"], shown["expiries"]) == (
        recorded[1].isoformat(), EXPIRY.isoformat(), [EXPIRY.isoformat()])
    assert (shown["underlying_price"], shown["atm_strike"]) == ("24074.99", "24050")
    assert [r["strike"] for r in shown["rows"] if r["atm"]] == ["24050"]
    assert len(shown["rows"]) == 9 and shown["rows"][0]["call"]["last"] is None
    # HH:MM is today in the market's zone: 09:16 IST finds 09:15, with both expiries.
    code, out, err = run(["NIFTY", "--at", "09:16", "--expiry", "2026-01-27", "--json", *cli],
                         capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["minute"], shown["expiry"], shown["atm_strike"]) == (
        recorded[0].isoformat(), "2026-01-27", "24000")
    at = (recorded[1] - timedelta(seconds=1)).astimezone(IST).isoformat()
    code, out, err = run(["NIFTY", "--at", at, "--csv", *cli], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["minute"] == recorded[0].isoformat() and len(rows) == 9
    assert [r["strike"] for r in rows if r["atm"] == "1"] == ["24000"]


def test_the_table_puts_the_strike_between_calls_and_puts(
        recorded: list[datetime], cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["NIFTY", *cli], capsys)
    assert code == 0, err
    assert "NIFTY 2026-01-06" in out and "ATM 24050" in out and "2026-01-27" not in out
    row = next(line for line in out.splitlines() if "│" in line and " 24050 " in line)
    cells = row.replace("│", " ").split()
    # call OI, IV, last, ask, bid | strike | put bid, ask, last, IV, OI
    assert cells[:6] == ["50047", "13.2%", "105.51", "105.56", "105.46", "24050"]
    assert cells[6:] == ["80.47", "80.57", "80.52", "-", "50047"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("args", "expected"), [
    (["BANKNIFTY"], "no option quotes of 'BANKNIFTY' recorded (recorded: NIFTY)"),
    (["nifty"], "did you mean NIFTY?"),
    (["NIFTY", "--at", "9.15"], "--at '9.15' is not a time: write HH:MM"),
    (["NIFTY", "--at", "2026-01-05T09:15"], "or an ISO time with its offset"),
    (["NIFTY", "--at", "2000-01-03T09:15+05:30"], "nothing of NIFTY recorded at or before"),
    (["NIFTY", "--expiry", "06-01-2026"], "--expiry '06-01-2026' is not a date"),
    (["NIFTY", "--expiry", "2026-02-24"], "no quotes of expiry 2026-02-24 recorded at"),
    (["NIFTY", "--csv", "--json"], "--csv and --json are alternatives"),
])
def test_bad_input_is_refused_in_one_line(
        recorded: list[datetime], cli: list[str], capsys: pytest.CaptureFixture[str],
        args: list[str], expected: str) -> None:
    code, _, err = run([*args, *cli], capsys)
    assert code == 2 and expected in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_empty_database_says_to_run_the_collector(
        fleet_db: Any, cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["NIFTY", *cli], capsys)
    assert code == 2 and "no option quotes recorded" in err and "collect-options" in err
