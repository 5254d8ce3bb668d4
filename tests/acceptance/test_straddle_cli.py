"""`fleet data straddle` as a user runs it: the tracker's snapshots of a day as a table, JSON
and CSV, a strangle by --width, the options collector's minute straddle where the tracker
recorded nothing (said so), and bad input refused in one line with exit 2."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from fleetkit.core.option_quotes import OptionQuote
from fleetkit.core.options import OptionKind
from fleetkit.core.straddles import LegQuote, StraddleSnapshot
from fleetkit.store.database import open_database, upgrade_database
from fleetkit.store.option_quotes import OptionQuoteStore
from fleetkit.store.straddle_snapshots import StraddleSnapshotStore
from tests.acceptance.cli_support import assert_user_error, fleet

pytestmark = pytest.mark.slow  # every test starts `fleet` processes

DAY = date(2026, 12, 8)
OPEN = datetime(2026, 12, 8, 3, 45, tzinfo=UTC)  # 09:15 IST
EXPIRY = date(2026, 12, 15)


def snapshot(width: int, at: datetime, call: str, put: str, source: str = "stream"
             ) -> StraddleSnapshot:
    atm, step = Decimal(24000), Decimal(50)
    return StraddleSnapshot(
        "straddles", "NIFTY", width, at, DAY, EXPIRY, atm, Decimal("24010.5"),
        LegQuote(f"NFO:NIFTY{atm + step * width}CE", atm + step * width, OptionKind.CALL,
                 Decimal(call) - 1, Decimal(call) + 1, Decimal(call)),
        LegQuote(f"NFO:NIFTY{atm - step * width}PE", atm - step * width, OptionKind.PUT,
                 Decimal(put) - 1, Decimal(put) + 1, Decimal(put)),
        0.12, 0.13, source)  # type: ignore[arg-type]


def minute_quote(kind: str, price: str, strike: int = 52000) -> OptionQuote:
    return OptionQuote(f"NFO:BANKNIFTY26DEC{strike}{kind}", "BANKNIFTY", EXPIRY,
                       Decimal(strike), kind, Decimal(price) - 1, Decimal(price) + 1,
                       Decimal(price), 10, 100, Decimal("52010"), None, "sandbox")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'market.db'}"
    database = open_database(url, require_schema=False)
    try:
        upgrade_database(database)
        StraddleSnapshotStore(database.engine).write(
            [snapshot(0, OPEN, "150", "140", "rest"),
             snapshot(0, OPEN + timedelta(seconds=1), "151", "140"),
             snapshot(1, OPEN + timedelta(seconds=2), "110", "100")], OPEN)
        OptionQuoteStore(database.engine).write_minute(
            "options", OPEN, DAY, [minute_quote("CE", "300"), minute_quote("PE", "290"),
                                   minute_quote("CE", "250", 52100),
                                   minute_quote("PE", "340", 52100)],  # the step: 100
            recorded_at=OPEN)
    finally:
        database.dispose()
    return url


def test_a_days_straddle_as_table_json_and_csv(tmp_path: Path, db_url: str) -> None:
    args = ("--date", DAY.isoformat(), "--db", db_url)
    table = fleet("data", "straddle", "NIFTY", *args, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("NIFTY ATM straddle on 2026-12-08 (Asia/Kolkata), expiry "
                               "2026-12-15: 2 snapshots")
    assert lines[1].split() == ["time", "spot", "strike", "call", "put", "premium", "source"]
    assert lines[2].split() == ["09:15:00.000", "24010.50", "24000.00", "150.00", "140.00",
                                "290.00", "rest"]
    assert lines[3].split()[-2:] == ["291.00", "stream"]

    as_json = json.loads(fleet("data", "straddle", "NIFTY", *args, "--json",
                               cwd=tmp_path).stdout)
    assert as_json["from"] == "tracker" and len(as_json["snapshots"]) == 2
    assert as_json["snapshots"][1]["premium"] == "291"
    assert as_json["snapshots"][1]["call"]["iv"] == 0.12

    rows = list(csv.reader(io.StringIO(fleet("data", "straddle", "NIFTY", *args, "--width",
                                             "1", "--csv", cwd=tmp_path).stdout)))
    assert rows[0] == ["time", "spot", "strike", "call", "put", "premium", "source"]
    assert [r[3:] for r in rows[1:]] == [["110", "100", "210", "stream"]]


def test_without_tracker_snapshots_the_minute_straddle_is_shown_and_said(
        tmp_path: Path, db_url: str) -> None:
    result = fleet("data", "straddle", "BANKNIFTY", "--date", DAY.isoformat(), "--db", db_url,
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the tracker recorded nothing that day" in result.stdout
    assert result.stdout.splitlines()[-1].split() == [
        "09:15", "52010.00", "52000.00", "300.00", "290.00", "590.00", "minute"]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, db_url: str) -> None:
    assert_user_error(fleet("data", "straddle", "NIFTI", "--date", DAY.isoformat(), "--db",
                            db_url, cwd=tmp_path), "no straddle snapshots of 'NIFTI'",
                      "tracked: NIFTY")
    assert_user_error(fleet("data", "straddle", "NIFTY", "--date", "2026-12-09", "--db",
                            db_url, cwd=tmp_path), "no ATM straddle recorded on 2026-12-09",
                      "--date")
    assert_user_error(fleet("data", "straddle", "NIFTY", "--date", "9/12/2026", "--db",
                            db_url, cwd=tmp_path), "--date")
    assert_user_error(fleet("data", "straddle", "NIFTY", "--json", "--csv", "--db", db_url,
                            cwd=tmp_path), "pick one")
