"""Gaps are judged against the calendar: a missing minute inside a session is a gap; a
holiday, a weekend or a lunch break expects no bars, so it holds none."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.core.bar_gaps import Gap, expected_minutes, find_gaps
from fleetkit.core.sessions import Session

MINUTE = timedelta(minutes=1)
CALENDARS = MarketCalendars()


def nse(first: date, last: date) -> list[Session]:
    return CALENDARS.sessions("XNSE", first, last)


def everything(sessions: list[Session], start: datetime, end: datetime) -> set[datetime]:
    return set(expected_minutes(sessions, start, end))


def test_a_missing_minute_inside_a_session_is_a_gap() -> None:
    sessions = nse(date(2024, 1, 3), date(2024, 1, 3))
    start, end = sessions[0].open, sessions[0].close
    lost = start + 100 * MINUTE
    present = everything(sessions, start, end) - {lost}
    assert find_gaps(present, sessions, start, end) == [Gap(lost, lost + MINUTE)]
    assert find_gaps(present, sessions, start, end)[0].minutes == 1


def test_a_holiday_and_a_weekend_yield_no_gaps() -> None:
    # Republic Day 2024 is Friday 26 January: Thursday, then Monday, are the sessions.
    start = datetime(2024, 1, 25, tzinfo=UTC)
    end = datetime(2024, 1, 30, tzinfo=UTC)
    sessions = nse(start.date() - timedelta(days=1), end.date())
    present = everything(sessions, start, end)
    assert {m.date() for m in present} == {date(2024, 1, 25), date(2024, 1, 29)}
    assert find_gaps(present, sessions, start, end) == []


def test_a_lunch_break_is_not_a_gap_and_a_run_is_one_gap() -> None:
    sessions = CALENDARS.sessions("XTKS", date(2024, 1, 10), date(2024, 1, 10))
    session = sessions[0]
    assert session.break_start is not None and session.break_end is not None
    present = everything(sessions, session.open, session.close)
    # An hour lost before the break and the first 5 minutes after it: two gaps, not one.
    lost = {session.break_start - n * MINUTE for n in range(1, 61)} | {
        session.break_end + n * MINUTE for n in range(5)}
    gaps = find_gaps(present - lost, sessions, session.open, session.close)
    assert gaps == [Gap(session.break_start - 60 * MINUTE, session.break_start),
                    Gap(session.break_end, session.break_end + 5 * MINUTE)]


def test_a_24_7_market_expects_every_minute() -> None:
    sessions = MarketCalendars().sessions("24/7", date(2024, 1, 6), date(2024, 1, 6))
    start = datetime(2024, 1, 6, tzinfo=UTC)
    assert len(everything(sessions, start, start + timedelta(days=1))) == 1440


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(0, 374), max_size=40))
def test_gaps_count_exactly_the_missing_minutes(missing: set[int]) -> None:
    sessions = nse(date(2024, 1, 3), date(2024, 1, 3))
    start, end = sessions[0].open, sessions[0].close
    present = everything(sessions, start, end) - {start + n * MINUTE for n in missing}
    gaps = find_gaps(present, sessions, start, end)
    assert sum(g.minutes for g in gaps) == len(missing)
    assert all(g.start < g.end for g in gaps)
    assert all(a.end < b.start for a, b in pairwise(gaps))
