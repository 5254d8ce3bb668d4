"""Which expiries an underlying lists on a given day, by its weekly and monthly rules.

An expiry that falls on a holiday moves to the trading day before (NSE's and BSE's rule).
Weeklies are counted among the days not already listed as monthlies, so NIFTY always lists
its next weekly and its next monthly, even in the week they would coincide.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import date, timedelta

from .contracts import ContractRules, ExpirySchedule, last_weekday_of_month

TradingDay = Callable[[date], bool]

# A holiday run longer than this before an expiry means the calendar has no data there.
_MAX_HOLIDAY_RUN_DAYS = 10


def shift_to_trading_day(day: date, is_trading_day: TradingDay) -> date:
    """`day`, or the nearest trading day before it."""
    for back in range(_MAX_HOLIDAY_RUN_DAYS + 1):
        candidate = day - timedelta(days=back)
        if is_trading_day(candidate):
            return candidate
    raise LookupError(f"no trading day in the {_MAX_HOLIDAY_RUN_DAYS} days up to "
                      f"{day.isoformat()}: the calendar has no sessions there")


def weekly_expiries(schedule: ExpirySchedule, first_day: date,
                    is_trading_day: TradingDay) -> Iterator[date]:
    """Weekly expiry days on or after `first_day`, one per week, holiday-shifted, nearest
    first and without end: the caller takes what it lists (and asks the calendar no
    further than that)."""
    monday = first_day - timedelta(days=first_day.weekday())
    for week in itertools.count():
        scheduled = monday + timedelta(weeks=week, days=schedule.weekday_number)
        expiry = shift_to_trading_day(scheduled, is_trading_day)
        if expiry >= first_day:
            yield expiry


def monthly_expiries(schedule: ExpirySchedule, first_day: date, count: int,
                     is_trading_day: TradingDay) -> list[date]:
    """The next `count` monthly expiry days on or after `first_day`, holiday-shifted."""
    found: list[date] = []
    year, month = first_day.year, first_day.month
    while len(found) < count:
        scheduled = last_weekday_of_month(year, month, schedule.weekday_number)
        expiry = shift_to_trading_day(scheduled, is_trading_day)
        if expiry >= first_day:
            found.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def listed_expiries(rules: ContractRules, first_day: date,
                    is_trading_day: TradingDay) -> list[date]:
    """Expiries listed for trading on or after `first_day` (the first day whose expiry has
    not yet passed its close), nearest first."""
    monthlies = ([] if rules.monthly is None else
                 monthly_expiries(rules.monthly, first_day, rules.monthly.listed,
                                  is_trading_day))
    weeklies: list[date] = []
    if rules.weekly is not None:
        candidates = (d for d in weekly_expiries(rules.weekly, first_day, is_trading_day)
                      if d not in monthlies)
        weeklies = list(itertools.islice(candidates, rules.weekly.listed))
    return sorted({*monthlies, *weeklies})
