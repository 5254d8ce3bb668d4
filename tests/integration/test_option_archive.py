"""Option quote partitions and archives on SQLite and PostgreSQL: partitions made ahead
for trading days only, a day archived to a Parquet file that pyarrow reads back as exactly
its rows with a correct sha256 sidecar, nothing dropped before the file is verified, and a
crash between any two steps finished by a rerun without losing or repeating a row."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from fleetkit.calendars.days import calendar_days
from fleetkit.cli.app import main
from fleetkit.core.option_quotes import OptionQuote
from fleetkit.data.option_archiver import OptionArchiver
from fleetkit.store import option_archive
from fleetkit.store.database import open_database
from fleetkit.store.option_archive import ArchiveError, archive_path, sidecar_path
from fleetkit.store.option_partitions import DayState, OptionPartitions
from fleetkit.store.option_quotes import OptionQuoteStore
from tests.integration.test_option_quotes import DAY, OPEN, chain
from tests.support import Killed

NEXT_DAY = DAY + timedelta(days=1)


def nse_trading_days(first: date, last: date) -> list[date]:
    return [d.day for d in calendar_days("XNSE", first, last) if not d.is_holiday]


def archive_rows(quotes: list[OptionQuote], minute: Any, day: date) -> list[dict[str, Any]]:
    return [{"trading_day": day, "instrument": q.instrument, "minute": minute,
             "underlying": q.underlying, "expiry": q.expiry, "strike": q.strike,
             "option_type": q.option_type, "bid": q.bid, "ask": q.ask, "last": q.last,
             "volume": q.volume, "open_interest": q.open_interest,
             "underlying_price": q.underlying_price, "iv": q.iv, "source": q.source}
            for q in quotes]


@pytest.fixture
def written(fleet_db: Any) -> Iterator[list[dict[str, Any]]]:
    """Two minutes of DAY and one of the next day, written; DAY's rows as the archive
    should hold them (by minute, then instrument)."""
    store = OptionQuoteStore(fleet_db.engine)
    rows = []
    for i in range(2):
        minute = OPEN + timedelta(minutes=i)
        quotes = chain(minute, Decimal("24012.35"))
        store.write_minute("nifty", minute, DAY, quotes, recorded_at=minute)
        rows += sorted(archive_rows(quotes, minute, DAY), key=lambda r: r["instrument"])
    later = OPEN + timedelta(days=1)
    store.write_minute("nifty", later, NEXT_DAY, chain(later, Decimal(24100)),
                       recorded_at=later)
    yield rows


def archiver(fleet_db: Any, root: Path,
             partitions: OptionPartitions | None = None) -> OptionArchiver:
    return OptionArchiver(partitions or OptionPartitions(fleet_db.engine), root,
                          nse_trading_days)


def held_days(fleet_db: Any) -> dict[date, int]:
    return {d.day: d.rows for d in OptionPartitions(fleet_db.engine).days()}


def test_archive_writes_a_file_pyarrow_reads_back_as_the_rows_then_drops_the_day(
        fleet_db: Any, written: list[dict[str, Any]], tmp_path: Path) -> None:
    done = archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    assert [(d.day, d.rows) for d in done] == [(DAY, len(written))]
    path = archive_path(tmp_path / "archive", DAY)
    assert pq.read_table(path).to_pylist() == written
    digest, name = sidecar_path(path).read_text(encoding="utf-8").split()
    assert (digest, name) == (hashlib.sha256(path.read_bytes()).hexdigest(), path.name)
    assert done[0].archive is not None and done[0].archive.sha256 == digest
    assert held_days(fleet_db) == {NEXT_DAY: 18}  # the day is gone, the next one stays
    assert OptionQuoteStore(fleet_db.engine).chain("NIFTY", OPEN) == []
    assert archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1) == []


def test_a_dry_run_changes_nothing(fleet_db: Any, written: list[dict[str, Any]],
                                   tmp_path: Path) -> None:
    before = held_days(fleet_db)
    done = archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY + timedelta(days=1),
                                                            keep_days=1, dry_run=True)
    assert [(d.day, d.rows, d.dry_run) for d in done] == [(DAY, 36, True), (NEXT_DAY, 18, True)]
    assert held_days(fleet_db) == before and not (tmp_path / "archive").exists()


class DiesAt(OptionPartitions):
    """The partitions, except that the process dies when `step` is reached."""

    def __init__(self, engine: Any, step: str) -> None:
        super().__init__(engine)
        self.step = step

    def export_day(self, day: date) -> Any:
        if self.step == "export":  # after detaching, before any file
            raise Killed
        return super().export_day(day)

    def drop(self, day: date, expected_rows: int) -> None:
        if self.step == "drop":  # after the verified file, before the drop
            raise Killed
        super().drop(day, expected_rows)


@pytest.mark.parametrize("step", ["export", "drop"])
def test_a_crash_between_steps_then_a_rerun_loses_and_repeats_nothing(
        fleet_db: Any, written: list[dict[str, Any]], tmp_path: Path, step: str) -> None:
    with pytest.raises(Killed):
        archiver(fleet_db, tmp_path / "archive", DiesAt(fleet_db.engine, step)).archive(NEXT_DAY, 1)
    partitions = OptionPartitions(fleet_db.engine)
    assert partitions.state(DAY) in (DayState.DETACHED, DayState.STORED)  # still held
    assert archive_path(tmp_path / "archive", DAY).exists() is (step == "drop")
    done = archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    assert [(d.day, d.rows) for d in done] == [(DAY, len(written))]
    assert pq.read_table(archive_path(tmp_path / "archive", DAY)).to_pylist() == written
    assert partitions.state(DAY) is None


def test_a_file_cut_short_is_never_trusted_and_the_day_is_not_dropped(
        fleet_db: Any, written: list[dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = option_archive.write_day

    def write_then_rot(root: Path, day: date, table: Any) -> Any:
        archive = real_write(root, day, table)
        archive.path.write_bytes(archive.path.read_bytes()[:-9])  # the disk lost its tail
        return archive

    monkeypatch.setattr(option_archive, "write_day", write_then_rot)
    with pytest.raises(ArchiveError, match="does not match its sha256"):
        archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    assert held_days(fleet_db)[DAY] == len(written)  # not dropped
    monkeypatch.setattr(option_archive, "write_day", real_write)
    archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)  # the rerun repairs it
    assert pq.read_table(archive_path(tmp_path / "archive", DAY)).to_pylist() == written


def test_late_rows_of_an_archived_day_join_its_file(
        fleet_db: Any, written: list[dict[str, Any]], tmp_path: Path) -> None:
    archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    late = OPEN + timedelta(minutes=5)
    quotes = chain(late, Decimal(24000))
    OptionQuoteStore(fleet_db.engine).write_minute("nifty", late, DAY, quotes,
                                                   recorded_at=late)
    archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    expected = written + sorted(archive_rows(quotes, late, DAY), key=lambda r: r["instrument"])
    assert pq.read_table(archive_path(tmp_path / "archive", DAY)).to_pylist() == expected
    assert DAY not in held_days(fleet_db)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_partitions_are_made_ahead_for_trading_days_and_none_for_a_holiday(
        fleet_db: Any, tmp_path: Path) -> None:
    # Friday 23 January 2026, then Republic Day (Monday 26th, an NSE holiday).
    made = archiver(fleet_db, tmp_path / "archive").create_ahead(date(2026, 1, 23), ahead=3)
    assert made == [date(2026, 1, 23), date(2026, 1, 27), date(2026, 1, 28)]
    assert archiver(fleet_db, tmp_path / "archive").create_ahead(date(2026, 1, 23), ahead=3) == []
    assert {d.day: d.state for d in OptionPartitions(fleet_db.engine).days()} == dict.fromkeys(
        made, DayState.ATTACHED)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_an_empty_partition_past_retention_is_dropped_without_a_file(
        fleet_db: Any, tmp_path: Path) -> None:
    archiver(fleet_db, tmp_path / "archive").create_ahead(date(2026, 1, 23), ahead=1)
    done = archiver(fleet_db, tmp_path / "archive").archive(date(2026, 1, 27), keep_days=1)
    assert [(d.day, d.rows, d.archive) for d in done] == [(date(2026, 1, 23), 0, None)]
    assert held_days(fleet_db) == {} and not (tmp_path / "archive").exists()


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    config = tmp_path / "fleet.yaml"
    config.write_text("bots: []\n", encoding="utf-8")
    return ["--config", str(config), "--db", database_url]


def test_archive_and_partitions_from_the_command_line(
        fleet_db: Any, written: list[dict[str, Any]], cli: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "archive", "--keep-days", "3650", "--ahead", "0", *cli]) == 0
    assert "nothing to archive" in capsys.readouterr().out
    assert main(["data", "archive", "--keep-days", "1", "--ahead", "0", "--json", *cli]) == 0
    done = json.loads(capsys.readouterr().out)
    assert [(d["day"], d["rows"]) for d in done["archived"]] == [
        (DAY.isoformat(), 36), (NEXT_DAY.isoformat(), 18)]
    root = tmp_path / "var" / "archive" / "option_quotes"
    assert done["archive_dir"] == str(root)
    assert main(["data", "partitions", "--json", *cli]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["day"], a["rows"]) for a in listed["archived"]] == [
        (DAY.isoformat(), 36), (NEXT_DAY.isoformat(), 18)]
    assert all(len(a["sha256"]) == 64 for a in listed["archived"])
    assert main(["data", "partitions", *cli]) == 0
    out = capsys.readouterr().out
    assert "0 days in the database" in out and "option_quotes_2026-01-05.parquet" in out


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("args", "expected"), [
    (["--market", "NOPE"], "unknown market 'NOPE' for --market"),
    (["--archive-dir", "FILE"], "is a file, not a directory"),
])
def test_bad_archive_options_are_refused_in_one_line(
        fleet_db: Any, cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], expected: str) -> None:
    (tmp_path / "FILE").write_text("x", encoding="utf-8")
    args = [str(tmp_path / a) if a == "FILE" else a for a in args]
    assert main(["data", "archive", *args, *cli]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_config_sets_the_days_kept_and_where_archives_go(
        fleet_db: Any, written: list[dict[str, Any]], cli: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(cli[1])
    config.write_text("bots: []\nmarket_data:\n  option_collector:\n    hot_days: 1\n"
                      "    archive_dir: cold/quotes\n", encoding="utf-8")
    assert main(["data", "archive", "--ahead", "0", "--json", *cli]) == 0
    done = json.loads(capsys.readouterr().out)
    assert [d["day"] for d in done["archived"]] == [DAY.isoformat(), NEXT_DAY.isoformat()]
    assert done["archive_dir"] == str(tmp_path / "cold" / "quotes")  # beside the config
    assert archive_path(tmp_path / "cold" / "quotes", DAY).exists()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_export_is_exact_whatever_the_servers_output_settings(
        fleet_db: Any, database_url: str, tmp_path: Path) -> None:
    # A server (or role) set to extra_float_digits = 0 writes a double to 15 digits and one
    # with a German DateStyle writes 05.01.2026: the export must not follow either.
    minute = OPEN + timedelta(minutes=1)
    iv = 0.12345678901234566  # 17 significant digits: 15 would round it
    quotes = [replace(q, iv=iv) for q in chain(minute, Decimal("24012.35"))]
    OptionQuoteStore(fleet_db.engine).write_minute("nifty", minute, DAY, quotes,
                                                   recorded_at=minute)
    # As server settings would (postgresql.conf, ALTER ROLE): in every session's options.
    assert "options=" in database_url
    odd = open_database(database_url.replace(
        "options=", "options=" + quote("-cextra_float_digits=0 -cDateStyle=German "), 1))
    with odd.engine.connect() as conn:  # the settings do hold in its sessions
        assert conn.execute(text("SELECT 0.12345678901234566::float8::text")).scalar() \
            == "0.123456789012346"
    try:
        done = archiver(odd, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    finally:
        odd.dispose()
    assert [(d.day, d.rows) for d in done] == [(DAY, len(quotes))]
    table = pq.read_table(archive_path(tmp_path / "archive", DAY))
    assert table.column("iv").to_pylist() == [iv] * len(quotes)
    assert set(table.column("trading_day").to_pylist()) == {DAY}
    assert set(table.column("expiry").to_pylist()) == {quotes[0].expiry}


def test_a_price_with_more_places_than_the_archive_keeps_is_refused_not_rounded(
        fleet_db: Any, written: list[dict[str, Any]], tmp_path: Path) -> None:
    late = OPEN + timedelta(minutes=7)
    quotes = chain(late, Decimal(24000))
    quotes[3] = replace(quotes[3], bid=Decimal("80.123456789"))  # 9 places
    OptionQuoteStore(fleet_db.engine).write_minute("nifty", late, DAY, quotes,
                                                   recorded_at=late)
    with pytest.raises(ArchiveError, match="decimals keep 8 places"):
        archiver(fleet_db, tmp_path / "archive").archive(NEXT_DAY, keep_days=1)
    # Nothing dropped, no file; and the database still answers after the refused export.
    assert held_days(fleet_db)[DAY] == len(written) + len(quotes)
    assert not archive_path(tmp_path / "archive", DAY).exists()
