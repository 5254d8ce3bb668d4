"""The trading days behind index derivatives: which futures are listed, when each expires, how
far into its session a moment is.

Shared by the quotes (derivatives.py) and the venue's tradable derivatives (listing.py), so
both list the same contracts at the same moment. Sessions come from the venue's calendars
and are cached per calendar and year; everything else is recomputed from them.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from fleetkit.core.instruments import MARKETS
from fleetkit.core.sessions import Session
from fleetkit.engine.ports import SessionSource

from .contracts import ContractRules
from .errors import DerivativesUnavailableError
from .expiries import TradingDay, monthly_expiries

_MAX_DAYS_BACK = 15  # the longest run of days without a session that is still data


class ContractCalendar:
    """The sessions of each underlying's spot market, from `sessions` (None: a venue built
    without calendars; every question then raises DerivativesUnavailableError)."""

    def __init__(self, sessions: SessionSource | None) -> None:
        self._source = sessions
        self._by_day: dict[tuple[str, int], dict[date, Session]] = {}
        self._lock = threading.Lock()

    def sessions(self, rules: ContractRules, day: date) -> dict[date, Session]:
        """The sessions of `day`'s year (and the next, for December expiries), by local date."""
        calendar = MARKETS[rules.spot_market].calendar
        cache_key = (calendar, day.year)
        with self._lock:
            cached = self._by_day.get(cache_key)
        if cached is not None:
            return cached
        if self._source is None:
            raise DerivativesUnavailableError("this sandbox venue was built without calendars; "
                                              "option expiries need them")
        zone = self.zone(rules)
        found = {s.open.astimezone(zone).date(): s
                 for s in self._source.sessions(calendar, date(day.year - 1, 12, 20),
                                                date(day.year + 1, 1, 20))}
        with self._lock:
            self._by_day[cache_key] = found
        return found

    def zone(self, rules: ContractRules) -> ZoneInfo:
        return ZoneInfo(MARKETS[rules.spot_market].timezone)

    def is_trading_day(self, rules: ContractRules) -> TradingDay:
        return lambda day: day in self.sessions(rules, day)

    def close_of(self, rules: ContractRules, expiry: date) -> datetime:
        """When `expiry`'s session closes (venue time): the moment its contracts expire."""
        return self.sessions(rules, expiry)[expiry].close

    def first_listed_day(self, rules: ContractRules, venue_at: datetime) -> date:
        """The first day whose expiries are still alive at `venue_at`: today until its
        close, then tomorrow."""
        local = venue_at.astimezone(self.zone(rules)).date()
        today = self.sessions(rules, local).get(local)
        return local + timedelta(days=1) if today and venue_at >= today.close else local

    def listed_futures(self, rules: ContractRules, venue_at: datetime) -> list[date]:
        """Expiry days of the futures listed at `venue_at`, nearest first (none when the
        rules list no futures)."""
        return self.futures_from(rules, self.first_listed_day(rules, venue_at))

    def futures_from(self, rules: ContractRules, first_day: date) -> list[date]:
        """Expiry days of the futures listed while `first_day` is the first listed day."""
        if not rules.futures_listed or rules.monthly is None:
            return []
        return monthly_expiries(rules.monthly, first_day, rules.futures_listed,
                                self.is_trading_day(rules))

    def future_expiry(self, rules: ContractRules, year: int, month: int) -> date | None:
        """The expiry day of `rules`' future of (year, month), holiday-shifted; None when
        the rules list no futures."""
        if not rules.futures_listed or rules.monthly is None:
            return None
        found = monthly_expiries(rules.monthly, date(year, month, 1), 1,
                                 self.is_trading_day(rules))[0]
        return found if (found.year, found.month) == (year, month) else None

    def session_progress(self, rules: ContractRules, venue_at: datetime) -> tuple[date, float]:
        """The latest session day at or before `venue_at`, and the share of it gone."""
        local = venue_at.astimezone(self.zone(rules)).date()
        for back in range(_MAX_DAYS_BACK):
            day = local - timedelta(days=back)
            session = self.sessions(rules, day).get(day)
            if session is not None and session.open <= venue_at:
                length = (session.close - session.open).total_seconds()
                gone = (min(venue_at, session.close) - session.open).total_seconds()
                return day, gone / length
        raise DerivativesUnavailableError(f"{rules.spot}: no session in the two weeks before "
                                          f"{venue_at.isoformat()}")
