"""A calendar day by day, as an operator reads it: sessions, holidays with their names, and
which days have unusual hours (early closes, late opens, override special sessions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import CALENDAR_TIMEZONES, NO_OVERRIDES, Overrides
from fleetkit.core.instruments import ALWAYS_OPEN
from fleetkit.core.sessions import Session

SPECIAL_SESSION = "special session"


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """One exchange date: its session, or None on a holiday."""

    day: date  # the exchange's own date
    session: Session | None
    name: str | None = None  # the holiday's or special session's name, where known
    special: str | None = None  # "early close", "late open", SPECIAL_SESSION; None: usual

    @property
    def is_holiday(self) -> bool:
        return self.session is None


def calendar_days(calendar: str, start: date, end: date, *,
                  overrides: Overrides = NO_OVERRIDES,
                  calendars: MarketCalendars | None = None) -> list[CalendarDay]:
    """Sessions and weekday holidays with exchange dates in [start, end], oldest first.

    `calendars` must apply the same `overrides` (default: a MarketCalendars built from them).
    """
    if calendar not in CALENDAR_TIMEZONES:
        raise ValueError(f"unknown calendar {calendar!r}; known: "
                         f"{', '.join(sorted(CALENDAR_TIMEZONES))}")
    source = calendars or MarketCalendars(overrides.for_market_calendars())
    zone = ZoneInfo(CALENDAR_TIMEZONES[calendar])
    margin = timedelta(days=1)  # a session's UTC date can differ from the exchange's
    sessions = {s.open.astimezone(zone).date(): s
                for s in source.sessions(calendar, start - margin, end + margin)}
    names, unusual = _library_notes(calendar, start, end)
    override = overrides.get(calendar)
    if override is not None:
        names.update({d: n for d, n in override.holidays.items() if n})
        names.update({d: s.name for d, s in override.special_sessions.items() if s.name})
        unusual.update(dict.fromkeys(override.special_sessions, SPECIAL_SESSION))
    found: list[CalendarDay] = []
    day = start
    while day <= end:
        session = sessions.get(day)
        if session is not None:
            found.append(CalendarDay(day, session, names.get(day) if day in unusual else None,
                                     unusual.get(day)))
        elif calendar == ALWAYS_OPEN or day.weekday() < 5:
            found.append(CalendarDay(day, None, names.get(day)))
        day += timedelta(days=1)
    return found


def _library_notes(calendar: str, start: date,
                   end: date) -> tuple[dict[date, str], dict[date, str]]:
    """The library's holiday names, and its early closes and late opens, in [start, end]."""
    if calendar == ALWAYS_OPEN:
        return {}, {}
    import pandas_market_calendars as mcal

    library: Any = mcal.get_calendar(calendar)
    names: dict[date, str] = {}
    if library.regular_holidays is not None:
        named = library.regular_holidays.holidays(start, end, return_name=True)
        names = {stamp.date(): str(name) for stamp, name in named.items()}
    frame = library.schedule(start, end)
    if frame.empty:
        return names, {}
    early = {stamp.date() for stamp in library.early_closes(frame).index}
    late = {stamp.date() for stamp in library.late_opens(frame).index}
    unusual = {d: "late open" for d in late}
    unusual.update({d: "late open, early close" if d in late else "early close" for d in early})
    return names, unusual
