"""Trading sessions from pandas_market_calendars, in UTC, cached a calendar year at a time.

Implements the engine's `SessionSource` port. The special calendar "24/7" (markets that never
close) has one session per UTC date, [00:00, next 00:00).

The library's holiday list for NSE (XNSE) ends in 2026. `CalendarOverrides` (extra holidays
per calendar, special sessions that add or replace a day's hours) fill such gaps: they come
from the shipped overrides.yaml plus the config's own file (calendars/overrides.py), and
calendars/coverage.py says how far each calendar's data can be trusted.

pandas_market_calendars (and pandas) is imported inside methods, never at module import: bot
processes import fleetkit without paying for pandas unless they ask for sessions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fleetkit.core.instruments import ALWAYS_OPEN, MARKETS
from fleetkit.core.numbers import require_utc
from fleetkit.core.sessions import Session, SessionSchedule

# The calendars fleetkit's own markets use; any other pandas_market_calendars name works too.
SUPPORTED_CALENDARS: tuple[str, ...] = tuple(sorted({m.calendar for m in MARKETS.values()}))

# Sessions are filtered by the UTC date of their open, which can differ from the exchange's
# own session date by a day; a few days of margin around each year catch those sessions.
_YEAR_MARGIN = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class CalendarOverrides:
    """Corrections to one calendar, keyed by the exchange's own session date.

    `holidays` removes those days' sessions; `special_sessions` adds a session on a day the
    library thinks closed, or replaces that day's hours (a shortened day, Muhurat trading).
    """

    holidays: frozenset[date] = frozenset()
    special_sessions: Mapping[date, Session] = field(default_factory=dict)


class MarketCalendars:
    """A `SessionSource` over pandas_market_calendars, with "24/7" and per-calendar overrides."""

    def __init__(self, overrides: Mapping[str, CalendarOverrides] | None = None) -> None:
        self._overrides: dict[str, CalendarOverrides] = dict(overrides or {})
        self._years: dict[tuple[str, int], tuple[Session, ...]] = {}
        self._library_calendars: dict[str, Any] = {}
        # One filler at a time: the library's calendar objects are not known to be
        # thread-safe, and a second thread would only compute the same year again.
        self._lock = threading.Lock()

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        """Sessions whose UTC open falls on a date in [start, end], oldest first."""
        self._check_known(calendar)
        found: list[Session] = []
        for year in range(start.year, end.year + 1):
            found.extend(
                s for s in self._year(calendar, year) if start <= s.open.date() <= end
            )
        return found

    def schedule(self, calendar: str, around: datetime, days_before: int = 10,
                 days_after: int = 10) -> SessionSchedule:
        """A schedule of the sessions opening within the given days around `around`."""
        day = require_utc(around, what="around").date()
        return SessionSchedule(self.sessions(
            calendar, day - timedelta(days=days_before), day + timedelta(days=days_after)))

    def _check_known(self, calendar: str) -> None:
        if calendar == ALWAYS_OPEN or calendar in self._library_calendars:
            return
        import pandas_market_calendars as mcal

        if calendar not in mcal.get_calendar_names():
            raise ValueError(
                f"unknown calendar {calendar!r}; supported: {', '.join(SUPPORTED_CALENDARS)} "
                "(or any other pandas_market_calendars name)")
        self._library_calendars[calendar] = mcal.get_calendar(calendar)

    def _year(self, calendar: str, year: int) -> tuple[Session, ...]:
        cached = self._years.get((calendar, year))
        if cached is None:
            with self._lock:
                cached = self._years.get((calendar, year))
                if cached is None:
                    cached = self._years[(calendar, year)] = self._load_year(calendar, year)
        return cached

    def _load_year(self, calendar: str, year: int) -> tuple[Session, ...]:
        """Sessions opening (in UTC) during `year`, overrides applied, oldest first."""
        first, last = date(year, 1, 1), date(year, 12, 31)
        labelled = dict(self._labelled_sessions(calendar, first - _YEAR_MARGIN,
                                                last + _YEAR_MARGIN))
        overrides = self._overrides.get(calendar)
        if overrides is not None:
            labelled = _apply_overrides(labelled, overrides)
        return tuple(sorted((s for s in labelled.values() if first <= s.open.date() <= last),
                            key=lambda s: s.open))

    def _labelled_sessions(self, calendar: str, start: date,
                           end: date) -> Iterator[tuple[date, Session]]:
        """(exchange session date, session) pairs for session dates in [start, end]."""
        if calendar == ALWAYS_OPEN:
            return _always_open_sessions(start, end)
        frame = self._library_calendars[calendar].schedule(start, end, tz="UTC")
        return _sessions_from_frame(frame)


def _apply_overrides(labelled: dict[date, Session],
                     overrides: CalendarOverrides) -> dict[date, Session]:
    kept = {day: s for day, s in labelled.items() if day not in overrides.holidays}
    kept.update(overrides.special_sessions)
    return kept


def _always_open_sessions(start: date, end: date) -> Iterator[tuple[date, Session]]:
    day = start
    while day <= end:
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        yield day, Session(midnight, midnight + timedelta(days=1))
        day += timedelta(days=1)


def _sessions_from_frame(frame: Any) -> Iterator[tuple[date, Session]]:
    """Rows of a pandas_market_calendars schedule (tz="UTC") as Sessions."""
    import pandas as pd

    has_breaks = "break_start" in frame.columns
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        break_start = break_end = None
        if has_breaks and not pd.isna(row.break_start) and not pd.isna(row.break_end):
            break_start, break_end = _utc(row.break_start), _utc(row.break_end)
        yield label.date(), Session(_utc(row.market_open), _utc(row.market_close),
                                    break_start, break_end)


def _utc(timestamp: Any) -> datetime:
    """A pandas Timestamp (tz-aware UTC) as a plain datetime with datetime.UTC."""
    moment: datetime = timestamp.to_pydatetime()
    return moment.astimezone(UTC)
