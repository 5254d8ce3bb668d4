"""How far each calendar's holiday data reaches, and which markets' data runs out soon.

Past its last holiday year a library calendar still answers, with regular hours on every
weekday: a bot would trade straight through the exchange's holidays. Calendars built from
holiday rules (NYSE, London, Tokyo, Xetra) reach the library's horizon (2200); NSE's is a
list of dates that ends with the last year NSE published when the library was released.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from fleetkit.calendars.overrides import NO_OVERRIDES, Overrides
from fleetkit.core.instruments import ALWAYS_OPEN, market

WARN_WITHIN_DAYS = 30


class Expiring(NamedTuple):
    market: str
    calendar: str
    ends: date


@dataclass(frozen=True, slots=True)
class Coverage:
    """How far one market's calendar data is trusted, and on whose word."""

    market: str
    calendar: str
    ends: date | None  # None: always open, nothing to run out
    library_ends: date | None
    override_until: date | None

    @property
    def basis(self) -> str:
        if self.calendar == ALWAYS_OPEN:
            return "always open"
        if self.ends is None:
            return "no holiday data"
        if self.override_until is not None and self.override_until == self.ends \
                and (self.library_ends is None or self.override_until > self.library_ends):
            return "override file"
        return "library"

    def days_left(self, today: date) -> int | None:
        return None if self.ends is None else (self.ends - today).days


@functools.cache
def library_coverage_end(calendar: str) -> date | None:
    """December 31 of the library's last holiday year; None for "24/7" (never closes)."""
    if calendar == ALWAYS_OPEN:
        return None
    import pandas as pd
    import pandas_market_calendars as mcal

    if calendar not in mcal.get_calendar_names():
        raise ValueError(f"unknown calendar {calendar!r}")
    holidays = mcal.get_calendar(calendar).holidays().holidays
    if len(holidays) == 0:
        return None
    return date(pd.Timestamp(max(holidays)).year, 12, 31)


def coverage_end(calendar: str, overrides: Overrides = NO_OVERRIDES) -> date | None:
    """The last day `calendar`'s data is trusted: the library's last holiday year, extended
    by an override file's `coverage_until` (never shortened). None for "24/7"."""
    return _coverage("", calendar, overrides).ends


def market_coverage(markets: Iterable[str],
                    overrides: Overrides = NO_OVERRIDES) -> list[Coverage]:
    """Each market's coverage, in the order given (repeats dropped)."""
    codes = list(dict.fromkeys(markets))
    return [_coverage(code, market(code).calendar, overrides) for code in codes]


def calendars_expiring(markets: Iterable[str], today: date,
                       within_days: int = WARN_WITHIN_DAYS,
                       overrides: Overrides = NO_OVERRIDES) -> list[Expiring]:
    """(market, calendar, ends) for each market whose data ends within `within_days` of
    `today` (or has already ended)."""
    return [Expiring(c.market, c.calendar, c.ends) for c in market_coverage(markets, overrides)
            if c.ends is not None and (c.ends - today).days <= within_days]


def _coverage(code: str, calendar: str, overrides: Overrides) -> Coverage:
    if calendar == ALWAYS_OPEN:
        return Coverage(code, calendar, None, None, None)
    library = library_coverage_end(calendar)
    override = overrides.get(calendar)
    until = override.coverage_until if override is not None else None
    known = [d for d in (library, until) if d is not None]
    return Coverage(code, calendar, max(known) if known else None, library, until)
