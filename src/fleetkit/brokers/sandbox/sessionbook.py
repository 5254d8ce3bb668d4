"""One calendar's sessions for the sandbox, fetched a UTC year at a time and kept."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from fleetkit.core.sessions import Session, SessionSchedule
from fleetkit.engine.ports import SessionSource

# A year's book reaches this far into its neighbours, so the session before the first of
# January and the next open after the last of December are in the same schedule.
_MARGIN = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class _YearSessions:
    sessions: tuple[Session, ...]
    opens: list[datetime]
    by_date: dict[date, Session]
    schedule: SessionSchedule


@dataclass(frozen=True, slots=True)
class LastTrading:
    """Where the last price at a moment comes from: which session, and the time it is for."""

    session: Session
    moment: datetime  # the asked moment while open; the span's end (close or break) if not
    is_open: bool


class SessionBook:
    """Sessions of one calendar, read from a `SessionSource` per UTC year of the moment asked."""

    def __init__(self, source: SessionSource, calendar: str) -> None:
        self._source = source
        self._calendar = calendar
        self._years: dict[int, _YearSessions] = {}

    @property
    def calendar(self) -> str:
        return self._calendar

    def session_on(self, day: date) -> Session | None:
        """The session opening on UTC date `day`, if the market trades that day."""
        return self._year(day.year).by_date.get(day)

    def schedule(self, moment: datetime) -> SessionSchedule:
        """A schedule covering `moment`, the session before it and the next open after it."""
        return self._year(moment.year).schedule

    def last_trading(self, moment: datetime) -> LastTrading:
        year = self._year(moment.year)
        i = bisect_right(year.opens, moment) - 1
        if i < 0:
            raise LookupError(f"no {self._calendar} session opened in the weeks before "
                              f"{moment.isoformat()}")
        session = year.sessions[i]
        if session.is_open(moment):
            return LastTrading(session, moment, True)
        if moment < session.close and session.break_start is not None:
            return LastTrading(session, session.break_start, False)  # lunch break
        return LastTrading(session, session.close, False)

    def _year(self, year: int) -> _YearSessions:
        cached = self._years.get(year)
        if cached is None:
            sessions = tuple(sorted(
                self._source.sessions(self._calendar, date(year, 1, 1) - _MARGIN,
                                      date(year, 12, 31) + _MARGIN),
                key=lambda s: s.open))
            cached = _YearSessions(sessions, [s.open for s in sessions],
                                   {s.open.date(): s for s in sessions},
                                   SessionSchedule(sessions))
            self._years[year] = cached
        return cached
