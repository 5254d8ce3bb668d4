"""Invented prices: a seeded, calendar-aware random walk that any process can recompute.

Every price is a pure function of (seed, instrument key, time): nothing is stored, so a
restarted broker, a second process and a backtest all see the same history, and extending
time never rewrites the past. `walk` invents one open and close per day, `intraday` the
minutes between them; this module answers the `PriceSource` questions and caches day paths.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fleetkit.brokers.sandbox.intraday import (
    MINUTE_S,
    TYPICAL_MINUTE_TURNOVER,
    DayPath,
    MinuteArrays,
    PathStyle,
    aggregate,
    build_day_path,
    minute_starts,
)
from fleetkit.brokers.sandbox.pricing import SandboxInstrument
from fleetkit.brokers.sandbox.seeding import Stream, generator, stream_root
from fleetkit.brokers.sandbox.sessionbook import SessionBook
from fleetkit.brokers.sandbox.ticks import DecimalGrid
from fleetkit.brokers.sandbox.walk import EPOCH, EPOCH_S, DayWalk, WalkSpec, day_index
from fleetkit.core.instruments import ALWAYS_OPEN, Instrument
from fleetkit.core.instruments import market as market_named
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.numbers import require_utc
from fleetkit.engine.ports import SessionSource

__all__ = ["InventedPrices", "MinuteArrays"]

# A calendar that goes this long without a session has run out of data; stop looking.
_MAX_DAYS_WITHOUT_SESSION = 60


@dataclass(frozen=True, slots=True)
class _Priced:
    """Everything needed to invent one instrument's prices."""

    sandbox: SandboxInstrument
    root: tuple[int, ...]
    walk: DayWalk
    style: PathStyle

    @classmethod
    def of(cls, seed: int, sandbox: SandboxInstrument) -> _Priced:
        instrument = sandbox.instrument
        base_price = float(sandbox.base_price)
        root = stream_root(seed, instrument.key)
        walk = DayWalk(WalkSpec(base_price, sandbox.annual_volatility,
                                overnight_gaps=instrument.calendar != ALWAYS_OPEN), root)
        style = PathStyle(
            prices=DecimalGrid.of(instrument.tick_size),
            lots=DecimalGrid.of(instrument.lot_size),
            typical_minute_volume=TYPICAL_MINUTE_TURNOVER / base_price,
            u_shaped_volume=instrument.calendar != ALWAYS_OPEN,
        )
        return cls(sandbox, root, walk, style)


class _DayPathCache:
    """Least-recently-used day paths, safe to share between threads."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._paths: OrderedDict[tuple[str, int], DayPath] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> DayPath | None:
        with self._lock:
            path = self._paths.get(key)
            if path is not None:
                self._paths.move_to_end(key)
            return path

    def put(self, key: tuple[str, int], path: DayPath) -> None:
        with self._lock:
            self._paths[key] = path
            if len(self._paths) > self._capacity:
                self._paths.popitem(last=False)


class InventedPrices:
    """A `PriceSource` that invents reproducible prices for the instruments of a catalog."""

    def __init__(self, seed: int, catalog: Mapping[str, SandboxInstrument],
                 sessions: SessionSource, *, cached_days: int = 512) -> None:
        for key, entry in catalog.items():
            if key != entry.instrument.key:
                raise ValueError(f"catalog key {key!r} names instrument {entry.instrument.key!r}")
        self._priced = {key: _Priced.of(seed, entry) for key, entry in catalog.items()}
        self._instruments = {key: entry.instrument for key, entry in catalog.items()}
        self._sessions = sessions
        self._books: dict[str, SessionBook] = {}
        self._paths = _DayPathCache(cached_days)

    def instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        priced = self._lookup(instrument)
        at = require_utc(at, what="at")
        last = self._book(priced).last_trading(at)
        path = self._day_path(priced, last.session.open.date(), remember=True)
        grid = priced.style.prices
        price = grid.decimal(max(grid.nearest_count(path.price_at(last.moment.timestamp())), 1))
        return Quote(instrument, price, at if last.is_open else last.moment)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        priced = self._lookup(instrument)
        if 0 < interval_s < MINUTE_S and MINUTE_S % interval_s == 0:
            return self._sub_minute_bars(priced, interval_s, start, end, now)
        if interval_s <= 0 or interval_s % MINUTE_S:
            raise ValueError("bar interval must divide 60 s or be a positive multiple of it, "
                             f"got {interval_s}")
        # A bar counts if its start lies in [start, end) and it is complete at `now`.
        first = max(_ceil_to(require_utc(start, what="start").timestamp(), interval_s),
                    _ceil_to(EPOCH_S, interval_s))
        stop = min(_ceil_to(require_utc(end, what="end").timestamp(), interval_s),
                   _floor_to(require_utc(now, what="now").timestamp(), interval_s))
        if stop <= first:
            return []
        minutes = self._minutes_between(priced, first, stop)
        rows = aggregate(minutes, interval_s, priced.style.lots)
        return [
            Bar(datetime.fromtimestamp(ts, UTC), o, h, low, c, v)
            for ts, o, h, low, c, v in zip(rows.ts_s.tolist(), rows.open.tolist(),
                                           rows.high.tolist(), rows.low.tolist(),
                                           rows.close.tolist(), rows.volume.tolist(), strict=True)
        ]

    def _sub_minute_bars(self, priced: _Priced, interval_s: int, start: datetime,
                         end: datetime, now: datetime) -> list[Bar]:
        """Bars shorter than a minute (demos, chaos runs): each opens and closes on the
        minute path, which is a straight line within its minute, so its high and low are its
        open and close; a minute's volume is shared evenly between its bars."""
        first = _ceil_to(require_utc(start, what="start").timestamp(), interval_s)
        stop = min(_ceil_to(require_utc(end, what="end").timestamp(), interval_s),
                   _floor_to(require_utc(now, what="now").timestamp(), interval_s))
        if stop <= first:
            return []
        minutes = self._minutes_between(priced, _floor_to(first, MINUTE_S),
                                        _ceil_to(stop, MINUTE_S))
        volume_by_minute = dict(zip(minutes.ts_s.tolist(), minutes.volume.tolist(),
                                    strict=True))
        share = interval_s / MINUTE_S
        bars = []
        for ts in range(int(first), int(stop), interval_s):
            minute = ts - ts % MINUTE_S
            if minute not in volume_by_minute:
                continue  # the market was closed
            opened = datetime.fromtimestamp(ts, UTC)
            o = float(self.last_trade(priced.sandbox.instrument.key, opened).price)
            c = float(self.last_trade(priced.sandbox.instrument.key,
                                      datetime.fromtimestamp(ts + interval_s, UTC)).price)
            bars.append(Bar(opened, o, max(o, c), min(o, c), c,
                            volume_by_minute[minute] * share))
        return bars

    def minute_arrays(self, instrument: str, start: datetime, count: int) -> MinuteArrays:
        """`count` consecutive in-session minute bars starting at or after `start`, as arrays.

        The backtest path: the same numbers as `bars(instrument, 60, ...)`, without building a
        Bar per minute. Day paths are not kept, so a long run does not flush the cache.
        """
        priced = self._lookup(instrument)
        first = max(_ceil_to(require_utc(start, what="start").timestamp(), MINUTE_S), EPOCH_S)
        parts: list[MinuteArrays] = []
        collected = 0
        for path in self._day_paths_from(priced, first):
            part = path.bars.select(path.bars.ts_s >= first)
            parts.append(part)
            collected += len(part)
            if collected >= count:
                break
        return MinuteArrays.concatenate(parts).select(slice(0, max(count, 0)))

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        venue = market_named(market)
        at = require_utc(at, what="at")
        if venue.calendar == ALWAYS_OPEN:
            return MarketClock(market, at, is_open=True, next_open=None, next_close=None)
        schedule = self._book_for(venue.calendar).schedule(at)
        is_open = schedule.is_open(at)
        return MarketClock(market, at, is_open, None if is_open else schedule.next_open(at),
                           schedule.next_close(at))

    # --- day paths ------------------------------------------------------------------------

    def _minutes_between(self, priced: _Priced, first: int, stop: int) -> MinuteArrays:
        """In-session minute bars starting in [first, stop) (Unix seconds)."""
        parts = []
        # From the day before: a session that opened then may still be trading.
        day, last_day = _utc_date(first) - timedelta(days=1), _utc_date(stop - 1)
        while day <= last_day:
            path = self._path_on(priced, day, remember=True)
            if path is not None:
                starts = path.bars.ts_s
                parts.append(path.bars.select((starts >= first) & (starts < stop)))
            day += timedelta(days=1)
        return MinuteArrays.concatenate(parts)

    def _day_paths_from(self, priced: _Priced, first: int) -> Iterator[DayPath]:
        day = _utc_date(first) - timedelta(days=1)
        days_without_session = 0
        while days_without_session < _MAX_DAYS_WITHOUT_SESSION:
            path = self._path_on(priced, day, remember=False)
            day += timedelta(days=1)
            if path is None:
                days_without_session += 1
                continue
            days_without_session = 0
            yield path
        raise LookupError(f"{priced.sandbox.instrument.calendar} has no sessions for "
                          f"{_MAX_DAYS_WITHOUT_SESSION} days before {day.isoformat()}")

    def _path_on(self, priced: _Priced, day: date, *, remember: bool) -> DayPath | None:
        if day < EPOCH or self._book(priced).session_on(day) is None:
            return None
        return self._day_path(priced, day, remember=remember)

    def _day_path(self, priced: _Priced, day: date, *, remember: bool) -> DayPath:
        index = day_index(day)
        cache_key = (priced.sandbox.instrument.key, index)
        path = self._paths.get(cache_key)
        if path is None:
            session = self._book(priced).session_on(day)
            if session is None:
                raise LookupError(f"{priced.sandbox.instrument.key} has no session on {day}")
            path = build_day_path(priced.walk.day(index), minute_starts(session), priced.style,
                                  generator(priced.root, Stream.INTRADAY, index))
            if remember:
                self._paths.put(cache_key, path)
        return path

    # --- lookups --------------------------------------------------------------------------

    def _lookup(self, instrument: str) -> _Priced:
        try:
            return self._priced[instrument]
        except KeyError:
            known = ", ".join(sorted(self._priced)) or "none"
            raise KeyError(f"the sandbox prices no instrument {instrument!r}; "
                           f"it prices: {known}") from None

    def _book(self, priced: _Priced) -> SessionBook:
        return self._book_for(priced.sandbox.instrument.calendar)

    def _book_for(self, calendar: str) -> SessionBook:
        book = self._books.get(calendar)
        if book is None:
            book = self._books.setdefault(calendar, SessionBook(self._sessions, calendar))
        return book


def _ceil_to(seconds: float, step: int) -> int:
    return math.ceil(seconds / step) * step


def _floor_to(seconds: float, step: int) -> int:
    return math.floor(seconds / step) * step


def _utc_date(seconds: int) -> date:
    return datetime.fromtimestamp(seconds, UTC).date()
