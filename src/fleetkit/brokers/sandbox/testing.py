"""Deterministic stand-ins for tests: a scripted price source with fixed sessions, a clock you
move by hand, and `eventually()` for waiting on background work without sleeping blind.

`ScriptedPrices` is a PriceSource and a SessionSource at once, so it can drive a demo-mode
venue. Prices are whatever you set, from the moment you say; sessions repeat every weekday at
fixed UTC times (no holidays, no daylight saving), which keeps expectations easy to write.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any, TypeVar

from fleetkit.core.instruments import ALWAYS_OPEN, AssetClass, Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.numbers import epoch_seconds, from_epoch_seconds, require_utc
from fleetkit.core.sessions import Session, SessionSchedule

from .book import Book, MemoryBook
from .config import VenueConfig
from .venue import SandboxVenue

T = TypeVar("T")

# A Wednesday with New York in session and Tokyo closed (see the calendars below).
NEW_YORK_MIDDAY = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)

_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEDULE_MARGIN_DAYS = 10
_BAR_VOLUME = 1000.0


@dataclass(frozen=True, slots=True)
class DailySessions:
    """One session per weekday between fixed UTC times, with an optional midday break."""

    open: clock_time
    close: clock_time
    break_start: clock_time | None = None
    break_end: clock_time | None = None
    weekdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))

    def on(self, day: date) -> Session | None:
        if day.weekday() not in self.weekdays:
            return None

        def at(moment: clock_time) -> datetime:
            return datetime.combine(day, moment, tzinfo=UTC)

        if self.break_start is None or self.break_end is None:
            return Session(at(self.open), at(self.close))
        return Session(at(self.open), at(self.close), at(self.break_start), at(self.break_end))


# New York's regular hours in winter, and Tokyo's with its lunch break, in UTC.
NYSE_HOURS = DailySessions(clock_time(14, 30), clock_time(21, 0))
TOKYO_HOURS = DailySessions(clock_time(0, 0), clock_time(6, 0), clock_time(2, 30),
                            clock_time(3, 30))
STANDARD_CALENDARS: Mapping[str, DailySessions] = {"XNYS": NYSE_HOURS, "XTKS": TOKYO_HOURS}


def equity(market: str, symbol: str, currency: str, calendar: str, *,
           tick: str = "0.01", lot: str = "1", min_quantity: str | None = None) -> Instrument:
    return Instrument(symbol, market, AssetClass.EQUITY, currency, Decimal(tick), Decimal(lot),
                      calendar, None if min_quantity is None else Decimal(min_quantity))


def crypto(symbol: str, *, tick: str = "0.01", lot: str = "0.0001") -> Instrument:
    return Instrument(symbol, "CRYPTO", AssetClass.CRYPTO, symbol.split("/")[-1], Decimal(tick),
                      Decimal(lot), ALWAYS_OPEN)


def standard_instruments() -> dict[Instrument, Decimal]:
    """A small universe covering the cases tests need, with starting prices:
    NYSE:AAA (plain), NYSE:BBB (minimum quantity 10), JPX:CCC (lots of 100, lunch break),
    CRYPTO:BTC/USDT (fractional lots, never closes)."""
    return {
        equity("NYSE", "AAA", "USD", "XNYS"): Decimal("100.00"),
        equity("NYSE", "BBB", "USD", "XNYS", min_quantity="10"): Decimal("20.00"),
        equity("JPX", "CCC", "JPY", "XTKS", tick="1", lot="100"): Decimal(2500),
        crypto("BTC/USDT"): Decimal("30000.00"),
    }


class ScriptedPrices:
    """A PriceSource (and SessionSource) whose prices are set by the test.

    Each instrument has a step path: `set_price(key, price)` makes `price` the price at all
    times; `set_price(key, price, since=t)` changes it from venue time `t` on. Thread-safe,
    so a test may move prices while a service's matching thread reads them.
    """

    def __init__(self, instruments: Mapping[Instrument, Decimal] | None = None,
                 calendars: Mapping[str, DailySessions] | None = None) -> None:
        chosen = standard_instruments() if instruments is None else instruments
        self._instruments = {i.key: i for i in chosen}
        self._calendars = dict(STANDARD_CALENDARS if calendars is None else calendars)
        self._market_calendars = {i.market: i.calendar for i in chosen}
        self._paths: dict[str, list[tuple[datetime, Decimal]]] = {}
        self._lock = threading.Lock()
        for instrument, price in chosen.items():
            self.set_price(instrument.key, price)

    def set_price(self, instrument: str, price: Decimal, *, since: datetime | None = None) -> None:
        found = self._instruments[instrument]
        if price <= 0 or price % found.tick_size != 0:
            raise ValueError(f"{instrument}: {price} is not a positive multiple of the tick")
        with self._lock:
            if since is None:
                self._paths[instrument] = [(_BEGINNING, price)]
                return
            since = require_utc(since, what="since")
            path = [step for step in self._paths[instrument] if step[0] < since]
            self._paths[instrument] = [*path, (since, price)]

    def price_at(self, instrument: str, at: datetime) -> Decimal:
        with self._lock:
            path = self._paths[instrument]
        index = bisect_right(path, at, key=lambda step: step[0]) - 1
        return path[max(index, 0)][1]

    # --- PriceSource ----------------------------------------------------------------------

    def instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        at = require_utc(at, what="at")
        schedule = self._schedule(self._instruments[instrument].calendar, at)
        traded = at
        if schedule is not None and not schedule.is_open(at):
            traded = schedule.last_close(at) or at
        return Quote(instrument, self.price_at(instrument, traded), traded)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        calendar = self._instruments[instrument].calendar
        first = -(-int(epoch_seconds(start)) // interval_s) * interval_s  # align up
        step = timedelta(seconds=interval_s)
        bars: list[Bar] = []
        ts = from_epoch_seconds(first)
        while ts < end and ts + step <= now:
            schedule = self._schedule(calendar, ts)
            if schedule is None or schedule.is_open(ts):
                bars.append(self._bar(instrument, ts, step))
            ts += step
        return bars

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        at = require_utc(at, what="at")
        schedule = self._schedule(self._market_calendars[market], at)
        if schedule is None:
            return MarketClock(market, at, True, None, None)
        is_open = schedule.is_open(at)
        return MarketClock(market, at, is_open, None if is_open else schedule.next_open(at),
                           schedule.next_close(at))

    # --- SessionSource --------------------------------------------------------------------

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        hours = self._calendars[calendar]
        days = (start + timedelta(days=n) for n in range((end - start).days + 1))
        return [session for day in days if (session := hours.on(day)) is not None]

    # --- internals ------------------------------------------------------------------------

    def _schedule(self, calendar: str, around: datetime) -> SessionSchedule | None:
        """Sessions around `around`; None for a market that never closes."""
        if calendar == ALWAYS_OPEN:
            return None
        margin = timedelta(days=_SCHEDULE_MARGIN_DAYS)
        return SessionSchedule(self.sessions(calendar, (around - margin).date(),
                                             (around + margin).date()))

    def _bar(self, instrument: str, ts: datetime, step: timedelta) -> Bar:
        first = float(self.price_at(instrument, ts))
        last = float(self.price_at(instrument, ts + step - timedelta(microseconds=1)))
        return Bar(ts, first, max(first, last), min(first, last), last, _BAR_VOLUME)


class ManualClock:
    """A Clock that only moves when told to; safe to read from other threads."""

    def __init__(self, start: datetime) -> None:
        self._now = require_utc(start, what="start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += by
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = require_utc(moment, what="moment")


def eventually(probe: Callable[[], T | None], *, timeout_s: float = 5.0,
               interval_s: float = 0.01, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy, and return that; fail after
    `timeout_s`. For waiting on background threads without guessing a sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s "
                                 f"(last result: {result!r})")
        time.sleep(interval_s)


def build_venue(prices: ScriptedPrices, clock: ManualClock, book: Book | None = None,
                **settings: Any) -> SandboxVenue:
    """A venue over `prices` (also its session source) with VenueConfig(**settings); a
    MemoryBook unless `book` is given. Partial fills are off unless asked for."""
    settings.setdefault("partial_fill_probability", 0.0)
    return SandboxVenue(prices, book if book is not None else MemoryBook(), clock,
                        VenueConfig(**settings), sessions=prices)
