"""The calendar override file: parsing, refusing bad entries, laying a user's file over the
shipped one, and what the overrides do to sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from fleetkit.calendars import MarketCalendars
from fleetkit.calendars.days import SPECIAL_SESSION, calendar_days
from fleetkit.calendars.overrides import (
    SHIPPED_SOURCE,
    Overrides,
    SpecialSession,
    load_overrides,
    parse_overrides,
)
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import ALWAYS_OPEN, MARKETS
from fleetkit.core.sessions import Session


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my-calendars.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def sessions_between(overrides: Overrides, calendar: str, start: date,
                     end: date) -> list[Session]:
    return MarketCalendars(overrides.for_market_calendars()).sessions(calendar, start, end)


# --- parsing -----------------------------------------------------------------------------

def test_holidays_are_bare_dates_or_dates_with_names() -> None:
    parsed = parse_overrides(
        "calendars:\n"
        "  XNSE:\n"
        "    holidays: [2027-01-26, {date: '2027-03-26', name: Good Friday}, '2027-04-14']\n",
        "f.yaml")
    assert parsed.get("XNSE") is not None
    assert dict(parsed.calendars["XNSE"].holidays) == {
        date(2027, 1, 26): None, date(2027, 3, 26): "Good Friday", date(2027, 4, 14): None}


def test_special_sessions_are_read_in_the_exchanges_local_time() -> None:
    parsed = parse_overrides(
        "version: 1\n"
        "calendars:\n"
        "  XNSE:\n"
        "    coverage_until: 2027-01-31\n"
        "    note: provisional\n"
        "    special_sessions:\n"
        "      - {date: 2026-11-08, open: '18:00', close: '19:00', name: Muhurat trading}\n",
        "f.yaml")
    override = parsed.calendars["XNSE"]
    assert override.coverage_until == date(2027, 1, 31)
    assert override.note == "provisional"
    muhurat = override.special_sessions[date(2026, 11, 8)]
    assert muhurat == SpecialSession(date(2026, 11, 8), time(18), time(19), "Muhurat trading")
    # 18:00 India time is 12:30 UTC.
    assert override.applied().special_sessions[date(2026, 11, 8)] == Session(
        utc(2026, 11, 8, 12, 30), utc(2026, 11, 8, 13, 30))


def test_an_empty_file_overrides_nothing() -> None:
    assert parse_overrides("", "f.yaml").calendars == {}
    assert parse_overrides("calendars: {XNYS: {}}\n", "f.yaml").calendars["XNYS"].holidays == {}


@pytest.mark.parametrize(("text", "fragments"), [
    ("calendars: {XNSE: {holidays: [2027-13-01]}}\n",
     ("f.yaml: calendars.XNSE.holidays[0]: '2027-13-01' is not a date", "YYYY-MM-DD")),
    ("calendars: {XNSE: {holidays: ['26/01/2027']}}\n",
     ("f.yaml: calendars.XNSE.holidays[0]: '26/01/2027' is not a date", "YYYY-MM-DD")),
    ("calendars: {XNSE: {holidays: ['2027-02-30']}}\n",
     ("calendars.XNSE.holidays[0]", "is not a date", "YYYY-MM-DD")),
    ("calendars: {XNSE: {holidays: [2027-01-26 10:00:00]}}\n",
     ("holidays[0]", "has more than a date", "write the date alone")),
    ("calendars: {XNSE: {coverage_until: soon}}\n",
     ("calendars.XNSE.coverage_until: 'soon' is not a date",)),
    ("calendars: {NSE: {holidays: [2027-01-26]}}\n",
     ("calendars.NSE", "NSE is a market; its calendar is XNSE", "write XNSE")),
    ("calendars: {XNOPE: {}}\n", ("unknown calendar 'XNOPE'", "XNSE", "XNYS", "24/7")),
    ("calendars: {XNSE: {holidays: [2027-01-26, 2027-04-14, 2027-01-26]}}\n",
     ("calendars.XNSE.holidays[2]: 2027-01-26 is listed twice", "keep one")),
    ("calendars:\n  XNSE: {}\n  XNSE: {}\n", ("f.yaml line 3", "'XNSE' appears twice")),
    ("calendars: {XNSE: {holidays: [2026-11-08],\n"
     "  special_sessions: [{date: 2026-11-08, open: '18:00', close: '19:00'}]}}\n",
     ("calendars.XNSE", "2026-11-08 is both a holiday and a special session", "keep one")),
    ("calendars: {XNSE: {special_sessions: [{date: 2026-11-08, open: '19:00', "
     "close: '18:00'}]}}\n",
     ("calendars.XNSE.special_sessions[0]", "open 19:00 is not before close 18:00")),
    ("calendars: {XNSE: {special_sessions: [{date: 2026-11-08, open: '18:00', "
     "close: '18:00'}]}}\n", ("open 18:00 is not before close 18:00",)),
    ("calendars: {XNSE: {special_sessions: [{date: 2026-11-08, open: 18:00, "
     "close: '19:00'}]}}\n",
     ("special_sessions[0].open", "1080 was read as a number", '"HH:MM"')),
    ("calendars: {XNSE: {special_sessions: [{date: 2026-11-08, open: '6pm', "
     "close: '19:00'}]}}\n", ("special_sessions[0].open: '6pm' is not a time of day",)),
    ("calendars: {XNSE: {special_sessions: [{date: 2026-11-08, close: '19:00'}]}}\n",
     ("special_sessions[0]: `open` is missing", "add it")),
    ("calendars: {XNSE: {special_sessions: [2026-11-08]}}\n",
     ("special_sessions[0]: must be a mapping",)),
    ("calendars: {XNSE: {holiday: [2027-01-26]}}\n",
     ("calendars.XNSE.holiday: unknown key", "holidays", "remove or rename it")),
    ("calendars: {XNSE: {holidays: 2027-01-26}}\n", ("calendars.XNSE.holidays: must be a list",)),
    ("calendars: {XNSE: {replace: yes please}}\n", ("replace: must be true or false",)),
    ("calendar: {XNSE: {}}\n", ("f.yaml: calendar: unknown key", "calendars")),
    ("version: 2\n", ("version: 2 is not understood", "write 1")),
    ("- XNSE\n", ("top level: must be a mapping",)),
    ("calendars: [XNSE]\n", ("calendars: must be a mapping",)),
    ("calendars: {XNSE: {holidays: [\n", ("f.yaml line", "fix the YAML syntax")),
])
def test_a_bad_entry_is_one_line_naming_the_file_entry_and_fix(
        text: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_overrides(text, "f.yaml")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("f.yaml")
    for fragment in fragments:
        assert fragment in message


def test_a_missing_user_file_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml not found: fix calendars.overrides_file"):
        load_overrides(tmp_path / "nope.yaml")


# --- the shipped file ----------------------------------------------------------------------

def test_the_shipped_file_is_valid_and_covers_nse_into_2027() -> None:
    shipped = load_overrides()
    assert shipped.sources == (SHIPPED_SOURCE,)
    nse = shipped.get("XNSE")
    assert nse is not None
    assert nse.coverage_until is not None and nse.coverage_until.year == 2027
    assert nse.note is not None and "PROVISIONAL" in nse.note
    assert nse.holidays[date(2027, 1, 26)] == "Republic Day"
    # Only weekday holidays: a weekend entry would be noise.
    assert all(day.weekday() < 5 for day in nse.holidays)


def test_the_shipped_file_only_names_calendars_fleetkit_markets_use() -> None:
    assert set(load_overrides().calendars) <= {m.calendar for m in MARKETS.values()}


def test_2027_nse_has_no_session_on_a_shipped_holiday() -> None:
    shipped = load_overrides()
    nse = shipped.get("XNSE")
    assert nse is not None
    for holiday in nse.holidays:
        assert sessions_between(shipped, "XNSE", holiday, holiday) == []
    # The library alone would have traded through Republic Day 2027.
    assert MarketCalendars().sessions("XNSE", date(2027, 1, 26), date(2027, 1, 26))


# --- merging a user's file over the shipped one ---------------------------------------------

def test_a_user_file_adds_holidays_to_the_shipped_ones(tmp_path: Path) -> None:
    merged = load_overrides(write(tmp_path, (
        "calendars:\n"
        "  XNSE: {holidays: [{date: 2027-03-22, name: Holi}]}\n"
        "  XNYS: {holidays: [2027-01-04]}\n")))
    assert merged.sources == (SHIPPED_SOURCE, str(tmp_path / "my-calendars.yaml"))
    nse = merged.calendars["XNSE"]
    assert nse.holidays[date(2027, 3, 22)] == "Holi"
    assert nse.holidays[date(2027, 1, 26)] == "Republic Day"  # shipped, kept
    assert nse.coverage_until == load_overrides().calendars["XNSE"].coverage_until
    assert set(merged.calendars["XNYS"].holidays) == {date(2027, 1, 4)}


def test_a_user_entry_replaces_the_shipped_entry_for_the_same_date(tmp_path: Path) -> None:
    merged = load_overrides(write(tmp_path, (
        "calendars:\n"
        "  XNSE:\n"
        "    coverage_until: 2027-12-31\n"
        "    note: from NSE's 2027 circular\n"
        "    special_sessions: [{date: 2027-01-26, open: '09:15', close: '12:00'}]\n")))
    nse = merged.calendars["XNSE"]
    assert date(2027, 1, 26) not in nse.holidays
    assert nse.special_sessions[date(2027, 1, 26)].close == time(12)
    assert nse.coverage_until == date(2027, 12, 31)
    assert nse.note == "from NSE's 2027 circular"
    assert date(2027, 4, 14) in nse.holidays  # the other shipped entries stay


def test_replace_true_drops_the_shipped_entries_for_that_calendar(tmp_path: Path) -> None:
    merged = load_overrides(write(tmp_path, (
        "calendars:\n"
        "  XNSE: {replace: true, holidays: [2027-03-22]}\n")))
    nse = merged.calendars["XNSE"]
    assert set(nse.holidays) == {date(2027, 3, 22)}
    assert nse.coverage_until is None
    assert sessions_between(merged, "XNSE", date(2027, 1, 26), date(2027, 1, 26))


def test_a_bad_user_file_names_itself_not_the_shipped_one(tmp_path: Path) -> None:
    path = write(tmp_path, "calendars: {XNSE: {holidays: ['2027-1-26']}}\n")
    with pytest.raises(ConfigError) as raised:
        load_overrides(path)
    assert str(raised.value).startswith(f"{path}: calendars.XNSE.holidays[0]")


# --- what overrides do to sessions -------------------------------------------------------------

def test_special_sessions_appear_as_sessions_even_on_a_sunday(tmp_path: Path) -> None:
    merged = load_overrides(write(tmp_path, (
        "calendars:\n"
        "  XNSE:\n"
        "    special_sessions:\n"
        "      - {date: 2026-11-08, open: '18:00', close: '19:00', name: Muhurat trading}\n")))
    assert sessions_between(merged, "XNSE", date(2026, 11, 8), date(2026, 11, 8)) == [
        Session(utc(2026, 11, 8, 12, 30), utc(2026, 11, 8, 13, 30))]
    [day] = calendar_days("XNSE", date(2026, 11, 8), date(2026, 11, 8), overrides=merged)
    assert (day.special, day.name) == (SPECIAL_SESSION, "Muhurat trading")


def test_holidays_remove_sessions_and_show_their_names(tmp_path: Path) -> None:
    merged = load_overrides(write(tmp_path, (
        "calendars:\n"
        "  XNYS: {holidays: [{date: 2026-06-16, name: Exchange outage drill}]}\n"
        "  '24/7': {holidays: [2026-06-16]}\n")))
    day = date(2026, 6, 16)
    assert sessions_between(merged, "XNYS", day, day) == []
    assert sessions_between(merged, ALWAYS_OPEN, day, day) == []
    [listed] = calendar_days("XNYS", day, day, overrides=merged)
    assert listed.is_holiday and listed.name == "Exchange outage drill"


def test_special_session_hours_follow_daylight_saving_in_utc(tmp_path: Path) -> None:
    merged = load_overrides(write(tmp_path, (
        "calendars:\n"
        "  XLON:\n"
        "    special_sessions:\n"
        "      - {date: 2026-03-27, open: '08:00', close: '12:30'}\n"
        "      - {date: 2026-03-30, open: '08:00', close: '12:30'}\n")))
    found = sessions_between(merged, "XLON", date(2026, 3, 27), date(2026, 3, 30))
    assert found == [Session(utc(2026, 3, 27, 8), utc(2026, 3, 27, 12, 30)),
                     Session(utc(2026, 3, 30, 7), utc(2026, 3, 30, 11, 30))]
