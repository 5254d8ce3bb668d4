"""`fleet calendar` through the real command: sessions in local time and UTC, holidays with
names, override files from the config, coverage checks and their alert, and bad input."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.cli_support import fleet

pytestmark = pytest.mark.slow  # every test starts `fleet` processes



def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def with_overrides(tmp_path: Path, overrides: str) -> Path:
    (tmp_path / "calendars.yaml").write_text(overrides, encoding="utf-8")
    config = tmp_path / "fleet.yaml"
    config.write_text("calendars: {overrides_file: calendars.yaml}\n", encoding="utf-8")
    return config


def test_nse_in_2027_skips_republic_day_from_the_shipped_overrides(tmp_path: Path) -> None:
    shown = as_json(fleet("calendar", "nse", "--from", "2027-01-25", "--to", "2027-01-27",
                          "--json", cwd=tmp_path))
    assert (shown["market"], shown["calendar"], shown["timezone"]) == ("NSE", "XNSE",
                                                                       "Asia/Kolkata")
    assert [s["date"] for s in shown["sessions"]] == ["2027-01-25", "2027-01-27"]
    first = shown["sessions"][0]
    assert (first["open_local"], first["close_local"]) == ("2027-01-25T09:15:00+05:30",
                                                           "2027-01-25T15:30:00+05:30")
    assert (first["open_utc"], first["close_utc"]) == ("2027-01-25T03:45:00+00:00",
                                                       "2027-01-25T10:00:00+00:00")
    assert shown["holidays"] == [{"date": "2027-01-26", "weekday": "Tue",
                                  "name": "Republic Day"}]
    assert shown["coverage"]["basis"] == "override file"


def test_tokyo_shows_its_lunch_break_in_both_times(tmp_path: Path) -> None:
    result = fleet("calendar", "JPX", "--from", "2026-03-10", "--to", "2026-03-10",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "09:00-15:30 JST break 11:30-12:30" in result.stdout
    assert "00:00-06:30 UTC break 02:30-03:30" in result.stdout
    shown = as_json(fleet("calendar", "jpx", "--from", "2026-03-10", "--to", "2026-03-10",
                          "--json", cwd=tmp_path))
    assert shown["sessions"][0]["break"] == {
        "start_local": "2026-03-10T11:30:00+09:00", "end_local": "2026-03-10T12:30:00+09:00",
        "start_utc": "2026-03-10T02:30:00+00:00", "end_utc": "2026-03-10T03:30:00+00:00"}


def test_nyse_names_thanksgiving_and_marks_the_early_close(tmp_path: Path) -> None:
    result = fleet("calendar", "Nyse", "--from", "2026-11-25", "--to", "2026-11-29",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [thanksgiving] = [line for line in lines if line.startswith("2026-11-26")]
    assert "closed" in thanksgiving and "holiday: Thanksgiving" in thanksgiving
    [friday] = [line for line in lines if line.startswith("2026-11-27")]
    assert "09:30-13:00 EST" in friday and "14:30-18:00 UTC" in friday
    assert friday.endswith("early close")
    assert not any(line.startswith(("2026-11-28", "2026-11-29")) for line in lines)
    assert "2 sessions, 1 holiday" in result.stdout


def test_a_special_session_from_the_configs_override_file_is_marked(tmp_path: Path) -> None:
    config = with_overrides(tmp_path, (
        "calendars:\n"
        "  XNSE:\n"
        "    special_sessions:\n"
        "      - {date: 2026-11-08, open: '18:00', close: '19:00', name: Muhurat trading}\n"))
    shown = as_json(fleet("calendar", "NSE", "--from", "2026-11-06", "--to", "2026-11-09",
                          "--config", str(config), "--json", cwd=tmp_path))
    assert [s["date"] for s in shown["sessions"]] == ["2026-11-06", "2026-11-08", "2026-11-09"]
    muhurat = shown["sessions"][1]
    assert (muhurat["open_utc"], muhurat["close_utc"]) == ("2026-11-08T12:30:00+00:00",
                                                           "2026-11-08T13:30:00+00:00")
    assert (muhurat["special"], muhurat["name"]) == ("special session", "Muhurat trading")
    text = fleet("calendar", "NSE", "--from", "2026-11-08", "--to", "2026-11-08",
                 "--config", str(config), cwd=tmp_path).stdout
    assert "18:00-19:00 IST" in text and "special session: Muhurat trading" in text


def test_the_default_range_is_today_and_the_next_14_days(tmp_path: Path) -> None:
    shown = as_json(fleet("calendar", "crypto", "--json", cwd=tmp_path))
    days = [date.fromisoformat(s["date"]) for s in shown["sessions"]]
    assert len(days) == 15 and (days[-1] - days[0]).days == 14
    assert shown["from"] == days[0].isoformat() and shown["holidays"] == []


def test_a_range_past_the_trusted_data_says_so(tmp_path: Path) -> None:
    result = fleet("calendar", "NSE", "--from", "2027-06-01", "--to", "2027-06-03",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: XNSE data is trusted until" in result.stdout


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("args", "fragments"), [
    (("MARS",), ("unknown market 'MARS'", "NYSE, NSE, BSE, NFO, BFO, LSE, JPX, XETRA, CRYPTO",
                 "any case")),
    (("NSE", "--from", "2027-13-01"), ("--from '2027-13-01' is not a date", "YYYY-MM-DD")),
    (("NSE", "--to", "next week"), ("--to 'next week' is not a date", "YYYY-MM-DD")),
    (("NSE", "--from", "2027-02-01", "--to", "2027-01-01"),
     ("--from 2027-02-01 is after --to 2027-01-01", "swap them")),
    (("NSE", "--from", "2026-01-01", "--to", "2030-01-01"),
     ("spans 1462 days", "3 years", "narrow the range")),
    ((), ("name a market", "fleet calendar NSE", "--check")),
])
def test_bad_input_is_one_line_naming_the_fix(tmp_path: Path, args: tuple[str, ...],
                                              fragments: tuple[str, ...]) -> None:
    assert_user_error(fleet("calendar", *args, cwd=tmp_path), *fragments)


def test_a_bad_override_file_names_the_file_and_entry(tmp_path: Path) -> None:
    config = with_overrides(tmp_path, "calendars: {XNSE: {holidays: ['2027-02-30']}}\n")
    assert_user_error(fleet("calendar", "NSE", "--config", str(config), cwd=tmp_path),
                      "calendars.yaml: calendars.XNSE.holidays[0]: '2027-02-30' is not a date",
                      "YYYY-MM-DD")


def test_check_lists_every_market_and_exits_0_when_all_are_covered(tmp_path: Path) -> None:
    config = with_overrides(tmp_path, "calendars: {XNSE: {coverage_until: 2099-12-31}}\n")
    result = fleet("calendar", "--check", "--within", "1", "--config", str(config),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for market in ("NYSE", "NSE", "LSE", "JPX", "XETRA", "CRYPTO"):
        assert any(line.startswith(market) for line in result.stdout.splitlines())
    assert "2099-12-31" in result.stdout and "always open" in result.stdout


def test_check_exits_1_and_records_one_alert_per_day(tmp_path: Path) -> None:
    config = with_overrides(tmp_path, "calendars: {XNSE: {coverage_until: 2099-12-31}}\n")
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert fleet("db", "upgrade", "--db", db, cwd=tmp_path).returncode == 0
    check = ("calendar", "--check", "--within", "30000", "--config", str(config), "--db", db,
             "--json")
    first = as_json(fleet(*check, cwd=tmp_path))
    again = fleet(*check, cwd=tmp_path)
    assert again.returncode == 1
    # BSE and the F&O segments share NSE's calendar; the alert is one, for the calendar.
    assert first["expiring"] == ["NSE", "BSE", "NFO", "BFO"]
    assert first["alerts_recorded"] == 1
    assert json.loads(again.stdout)["alerts_recorded"] == 0
    nse = next(m for m in first["markets"] if m["market"] == "NSE")
    assert (nse["ends"], nse["basis"], nse["library_ends"]) == ("2099-12-31", "override file",
                                                                "2026-12-31")
    events = as_json(fleet("events", "--kind", "calendar", "--db", db, "--json", cwd=tmp_path))
    assert [(e["kind"], e["severity"], e["code"]) for e in events] == [
        ("calendar.coverage", "warning", "XNSE")]


def test_check_without_a_fleet_database_still_answers(tmp_path: Path) -> None:
    config = with_overrides(tmp_path, "calendars: {XNSE: {coverage_until: 2099-12-31}}\n")
    result = fleet("calendar", "NSE", "--check", "--within", "30000", "--config", str(config),
                   cwd=tmp_path)
    assert result.returncode == 1
    assert "warning: XNSE calendar data ends 2099-12-31" in result.stdout
    assert "note: alert not recorded: no fleet database" in result.stderr
    assert not (tmp_path / "var").exists()


def test_fleet_up_refuses_a_bad_override_file_before_starting_anything(tmp_path: Path) -> None:
    (tmp_path / "calendars.yaml").write_text(
        "calendars: {XNSE: {special_sessions: [{date: 2026-11-08, open: '19:00', "
        "close: '18:00'}]}}\n", encoding="utf-8")
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "calendars: {overrides_file: calendars.yaml}\n"
        'bots:\n  - {name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: sma_cross}\n',
        encoding="utf-8")
    result = fleet("up", "--config", str(config), "--for", "5", "--no-live", cwd=tmp_path)
    assert_user_error(result, "calendars.yaml: calendars.XNSE.special_sessions[0]",
                      "open 19:00 is not before close 18:00")
    assert not (tmp_path / "var").exists()
