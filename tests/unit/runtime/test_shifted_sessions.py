"""A demo venue's sessions as the wall clock sees them: what a learned policy's features cut
bars by when the sandbox trades NSE hours away from its real ones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.runtime.runner import ShiftedSessions

CALENDARS = MarketCalendars()


def test_sessions_move_by_the_offset_and_keep_their_days() -> None:
    back = timedelta(hours=-7)  # venue = wall - 7 h: the wall sees the session 7 h later
    real = CALENDARS.sessions("XNSE", date(2026, 12, 21), date(2026, 12, 24))
    moved = ShiftedSessions(CALENDARS, -back).sessions("XNSE", date(2026, 12, 21),
                                                      date(2026, 12, 24))
    assert [(s.open, s.close) for s in moved] == [(s.open + timedelta(hours=7),
                                                   s.close + timedelta(hours=7)) for s in real]
    assert moved[0].open == datetime(2026, 12, 21, 10, 45, tzinfo=UTC)  # 09:15 IST + 7 h


def test_a_session_moved_across_midnight_is_listed_under_its_new_day() -> None:
    # 20 h earlier on the wall: Wednesday's 03:45 UTC open is Tuesday 07:45, so Tuesday's
    # list holds Wednesday's session (and Tuesday's own moved to Monday).
    ahead = timedelta(hours=-20)
    moved = ShiftedSessions(CALENDARS, ahead).sessions("XNSE", date(2026, 12, 22),
                                                       date(2026, 12, 22))
    assert [s.open for s in moved] == [datetime(2026, 12, 22, 7, 45, tzinfo=UTC)]
    later = ShiftedSessions(CALENDARS, timedelta(hours=21)).sessions(
        "XNSE", date(2026, 12, 23), date(2026, 12, 23))
    # Tuesday's 03:45 UTC open moved 21 h is Wednesday 00:45: Wednesday's list holds it.
    assert [s.open for s in later] == [datetime(2026, 12, 23, 0, 45, tzinfo=UTC)]
