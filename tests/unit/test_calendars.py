"""MarketCalendars: sessions from pandas_market_calendars in UTC, 24/7, overrides."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from fleetkit.calendars import SUPPORTED_CALENDARS, CalendarOverrides, MarketCalendars
from fleetkit.core.instruments import ALWAYS_OPEN, MARKETS
from fleetkit.core.sessions import Session


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def calendars() -> MarketCalendars:
    return MarketCalendars()


def session_on(calendars: MarketCalendars, calendar: str, day: date) -> Session | None:
    found = calendars.sessions(calendar, day, day)
    assert len(found) <= 1
    return found[0] if found else None


def test_nyse_has_no_session_on_thanksgiving_2026(calendars: MarketCalendars) -> None:
    assert session_on(calendars, "XNYS", date(2026, 11, 26)) is None


def test_nyse_closes_at_18_utc_on_the_day_after_thanksgiving_2026(
        calendars: MarketCalendars) -> None:
    assert session_on(calendars, "XNYS", date(2026, 11, 27)) == Session(
        utc(2026, 11, 27, 14, 30), utc(2026, 11, 27, 18, 0))


def test_nyse_sessions_follow_new_york_daylight_saving_in_utc(calendars: MarketCalendars) -> None:
    before = session_on(calendars, "XNYS", date(2026, 3, 6))
    after = session_on(calendars, "XNYS", date(2026, 3, 9))
    assert before == Session(utc(2026, 3, 6, 14, 30), utc(2026, 3, 6, 21, 0))
    assert after == Session(utc(2026, 3, 9, 13, 30), utc(2026, 3, 9, 20, 0))


def test_sessions_are_utc_oldest_first_without_weekends(calendars: MarketCalendars) -> None:
    found = calendars.sessions("XLON", date(2026, 6, 1), date(2026, 6, 30))
    assert [s.open for s in found] == sorted(s.open for s in found)
    assert all(s.open.tzinfo is UTC and s.close.tzinfo is UTC for s in found)
    assert all(s.open.weekday() < 5 for s in found)
    assert len(found) == 22


def test_tokyo_sessions_carry_the_lunch_break(calendars: MarketCalendars) -> None:
    session = session_on(calendars, "XTKS", date(2026, 3, 10))
    assert session == Session(utc(2026, 3, 10, 0, 0), utc(2026, 3, 10, 6, 30),
                              break_start=utc(2026, 3, 10, 2, 30),
                              break_end=utc(2026, 3, 10, 3, 30))


def test_sessions_are_selected_by_the_utc_date_of_their_open(calendars: MarketCalendars) -> None:
    found = calendars.sessions("XNSE", date(2026, 3, 9), date(2026, 3, 9))
    assert [(s.open, s.close) for s in found] == [(utc(2026, 3, 9, 3, 45), utc(2026, 3, 9, 10))]


def test_sessions_continue_across_a_year_boundary(calendars: MarketCalendars) -> None:
    found = calendars.sessions("XETR", date(2026, 12, 28), date(2027, 1, 6))
    days = [s.open.date() for s in found]
    assert days == sorted(days)
    assert date(2026, 12, 30) in days and date(2027, 1, 4) in days
    assert date(2027, 1, 1) not in days  # New Year's Day


def test_a_range_that_ends_before_it_starts_is_empty(calendars: MarketCalendars) -> None:
    assert calendars.sessions("XNYS", date(2026, 5, 5), date(2026, 5, 4)) == []


def test_repeated_requests_give_equal_sessions(calendars: MarketCalendars) -> None:
    first = calendars.sessions("XNYS", date(2026, 1, 1), date(2026, 12, 31))
    assert calendars.sessions("XNYS", date(2026, 1, 1), date(2026, 12, 31)) == first
    assert len(first) == 251


def test_always_open_has_one_session_per_utc_date(calendars: MarketCalendars) -> None:
    found = calendars.sessions(ALWAYS_OPEN, date(2026, 12, 30), date(2027, 1, 2))
    assert [(s.open, s.close) for s in found] == [
        (utc(2026, 12, 30), utc(2026, 12, 31)),
        (utc(2026, 12, 31), utc(2027, 1, 1)),
        (utc(2027, 1, 1), utc(2027, 1, 2)),
        (utc(2027, 1, 2), utc(2027, 1, 3)),
    ]


def test_every_market_calendar_is_supported(calendars: MarketCalendars) -> None:
    assert {m.calendar for m in MARKETS.values()} == set(SUPPORTED_CALENDARS)
    for calendar in SUPPORTED_CALENDARS:
        assert calendars.sessions(calendar, date(2026, 3, 9), date(2026, 3, 13))


def test_an_unknown_calendar_is_refused_with_the_supported_names(
        calendars: MarketCalendars) -> None:
    with pytest.raises(ValueError, match="unknown calendar 'XNOPE'") as raised:
        calendars.sessions("XNOPE", date(2026, 1, 1), date(2026, 1, 5))
    for name in SUPPORTED_CALENDARS:
        assert name in str(raised.value)


def test_schedule_around_a_moment_answers_open_and_next_open(calendars: MarketCalendars) -> None:
    saturday = utc(2026, 11, 28, 12)
    schedule = calendars.schedule("XNYS", saturday)
    assert not schedule.is_open(saturday)
    assert schedule.next_open(saturday) == utc(2026, 11, 30, 14, 30)
    assert schedule.last_close(saturday) == utc(2026, 11, 27, 18, 0)


def test_schedule_covers_the_requested_days_around_the_moment(calendars: MarketCalendars) -> None:
    around = utc(2026, 6, 15, 12)
    schedule = calendars.schedule(ALWAYS_OPEN, around, days_before=2, days_after=3)
    assert schedule.spans[0][0] == utc(2026, 6, 13)
    assert schedule.spans[-1][1] == utc(2026, 6, 19)


def test_schedule_refuses_a_naive_moment(calendars: MarketCalendars) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendars.schedule("XNYS", datetime(2026, 6, 15, 12))  # noqa: DTZ001


def test_a_holiday_override_removes_that_days_session() -> None:
    extra_holiday = date(2027, 1, 26)  # e.g. Republic Day, past the library's NSE data
    calendars = MarketCalendars({"XNSE": CalendarOverrides(holidays=frozenset({extra_holiday}))})
    days = [s.open.date() for s in calendars.sessions("XNSE", date(2027, 1, 25),
                                                       date(2027, 1, 27))]
    assert days == [date(2027, 1, 25), date(2027, 1, 27)]


def test_a_holiday_override_applies_only_to_its_calendar() -> None:
    day = date(2026, 6, 16)
    calendars = MarketCalendars({"XNSE": CalendarOverrides(holidays=frozenset({day}))})
    assert calendars.sessions("XNYS", day, day)
    assert not calendars.sessions("XNSE", day, day)


def test_a_holiday_override_can_close_an_always_open_market_for_a_day() -> None:
    day = date(2026, 6, 16)
    calendars = MarketCalendars({ALWAYS_OPEN: CalendarOverrides(holidays=frozenset({day}))})
    days = [s.open.date() for s in calendars.sessions(ALWAYS_OPEN, day - timedelta(days=1),
                                                       day + timedelta(days=1))]
    assert days == [day - timedelta(days=1), day + timedelta(days=1)]


def test_a_special_session_override_adds_or_replaces_a_days_hours() -> None:
    sunday = date(2026, 11, 8)  # Muhurat trading: a short evening session on a holiday
    muhurat = Session(utc(2026, 11, 8, 12, 30), utc(2026, 11, 8, 13, 30))
    shortened = Session(utc(2026, 11, 9, 3, 45), utc(2026, 11, 9, 6, 0))
    calendars = MarketCalendars({"XNSE": CalendarOverrides(
        special_sessions={sunday: muhurat, date(2026, 11, 9): shortened})})
    found = calendars.sessions("XNSE", sunday, date(2026, 11, 9))
    assert found == [muhurat, shortened]


def test_importing_the_calendars_package_does_not_import_pandas() -> None:
    code = ("import sys, fleetkit.calendars; "
            "sys.exit(1 if 'pandas' in sys.modules or 'pandas_market_calendars' in sys.modules "
            "else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
