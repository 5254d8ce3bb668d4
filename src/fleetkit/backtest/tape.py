"""A tape of bars for backtests — generated from the sandbox's prices (or read from CSV by
csv_bars) — and the PriceSource that lets the sandbox venue match orders against it."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from fleetkit.brokers.sandbox.intraday import MINUTE_S, aggregate
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.ticks import DecimalGrid
from fleetkit.brokers.sandbox.walk import EPOCH_S
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The sandbox gives up on a calendar after this long without a session; so does a tape.
_MAX_QUIET_S = 60 * 86_400


@dataclass(frozen=True, slots=True)
class BarTape:
    """Bars as columns for one instrument; `ts_s` are bar starts (Unix seconds, UTC)."""

    instrument: Instrument
    interval_s: int
    ts_s: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return len(self.ts_s)

    def chunks(self, size: int = 65_536) -> Iterator[list[Bar]]:
        """Bar objects in chunks, so a million-bar replay never holds a million at once."""
        for start in range(0, len(self), size):
            stop = min(start + size, len(self))
            times = [datetime.fromtimestamp(t, UTC) for t in self.ts_s[start:stop].tolist()]
            yield list(map(Bar, times, self.open[start:stop].tolist(),
                           self.high[start:stop].tolist(), self.low[start:stop].tolist(),
                           self.close[start:stop].tolist(), self.volume[start:stop].tolist()))


def generated_tape(prices: InventedPrices, instrument: Instrument, start: datetime, count: int,
                   interval_s: int) -> BarTape:
    """`count` bars of the sandbox's invented prices from `start` on: the bars the sandbox
    venue serves a live bot at this interval, bar for bar (buckets aligned to the epoch, the
    first one starting at or after `start`, only while the market is open)."""
    if interval_s < MINUTE_S:
        return _sub_minute_tape(prices, instrument, start, count, interval_s)
    first = datetime.fromtimestamp(_ceil_to(start.timestamp(), interval_s), UTC)
    minutes_per_bar = interval_s // MINUTE_S
    # Each bucket holds at most minutes_per_bar minutes: this many give count whole bars.
    try:
        arrays = prices.minute_arrays(instrument.key, first, (count + 1) * minutes_per_bar)
    except LookupError as exc:  # the calendar ran out of sessions
        raise ConfigError(f"{instrument.key}: {exc}; choose another --start") from None
    bars = aggregate(arrays, interval_s, DecimalGrid.of(instrument.lot_size)).select(
        slice(0, count))
    return BarTape(instrument, interval_s, bars.ts_s, bars.open, bars.high, bars.low,
                   bars.close, bars.volume)


def _sub_minute_tape(prices: InventedPrices, instrument: Instrument, start: datetime,
                     count: int, interval_s: int) -> BarTape:
    # The venue cuts these from the minute path price by price; asking it for them, a window
    # at a time, is what keeps the tape equal to what a live bot sees.
    found: list[Bar] = []
    cursor = _ceil_to(max(start.timestamp(), EPOCH_S), interval_s)  # prices start there
    quiet_s = 0
    while len(found) < count:
        window_s = min(max((count - len(found)) * interval_s, 3_600), 86_400)
        window_end = datetime.fromtimestamp(cursor + window_s, UTC)
        bars = prices.bars(instrument.key, interval_s, datetime.fromtimestamp(cursor, UTC),
                           window_end, window_end)
        found.extend(bars[:count - len(found)])
        quiet_s = 0 if bars else quiet_s + window_s
        if quiet_s > _MAX_QUIET_S:
            quiet_from = datetime.fromtimestamp(cursor + window_s - quiet_s, UTC)
            raise ConfigError(f"{instrument.key} has no trading sessions in the "
                              f"{quiet_s // 86_400} days from {quiet_from:%Y-%m-%d}; "
                              "choose another --start")
        cursor += window_s
    ts, o, h, lo, c, v = zip(*found, strict=True) if found else ((),) * 6
    return BarTape(instrument, interval_s,
                   np.array([int(t.timestamp()) for t in ts], dtype=np.int64),
                   *(np.array(column, dtype=np.float64) for column in (o, h, lo, c, v)))


def _ceil_to(seconds: float, step: int) -> int:
    return math.ceil(seconds / step) * step


class TapePrices:
    """PriceSource over one tape: the last trade at time t is the close of the last bar that
    ended by t (bars are only known once complete), stamped with that bar's end."""

    def __init__(self, tape: BarTape) -> None:
        self._tape = tape
        self._ends = (tape.ts_s + tape.interval_s).astype(np.float64)
        # An order asks the same time several times (rails, admission, execution).
        self._last_trade: tuple[datetime, Quote] | None = None
        self._clock: tuple[datetime, MarketClock] | None = None
        exponent = tape.instrument.tick_size.normalize().as_tuple().exponent
        self._tick_places = max(0, -exponent) if isinstance(exponent, int) else 0

    def instruments(self) -> Mapping[str, Instrument]:
        return {self._tape.instrument.key: self._tape.instrument}

    def _index(self, at: datetime) -> int:
        return int(np.searchsorted(self._ends, at.timestamp(), side="right")) - 1

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        self._check(instrument)
        cached = self._last_trade
        if cached is not None and cached[0] == at:
            return cached[1]
        quote = self._trade_at(instrument, at)
        self._last_trade = (at, quote)
        return quote

    def _trade_at(self, instrument: str, at: datetime) -> Quote:
        i = max(self._index(at), 0)
        price = Decimal(repr(round(float(self._tape.close[i]), self._tick_places)))
        price = self._tape.instrument.round_price(price)
        return Quote(instrument, price, datetime.fromtimestamp(float(self._ends[i]), UTC))

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        self._check(instrument)
        if interval_s != self._tape.interval_s:
            raise ValueError(f"this tape has {self._tape.interval_s}s bars, not {interval_s}s")
        t = self._tape
        lo = int(np.searchsorted(t.ts_s, start.timestamp(), side="left"))
        # Bars starting in [start, end) — `end` excluded, as every PriceSource — and
        # complete by `now`.
        hi = min(int(np.searchsorted(t.ts_s, end.timestamp(), side="left")),
                 int(np.searchsorted(t.ts_s, now.timestamp() - interval_s, side="right")))
        return [Bar(datetime.fromtimestamp(int(t.ts_s[i]), UTC), float(t.open[i]),
                    float(t.high[i]), float(t.low[i]), float(t.close[i]), float(t.volume[i]))
                for i in range(lo, max(lo, hi))]

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        cached = self._clock
        if cached is not None and cached[0] == at and cached[1].market == market:
            return cached[1]
        # A tape has no sessions: it is open for as long as it has bars.
        inside = self._tape.ts_s[0] <= at.timestamp() <= self._ends[-1]
        clock = MarketClock(market, at, bool(inside), None, None)
        self._clock = (at, clock)
        return clock

    def _check(self, instrument: str) -> None:
        if instrument != self._tape.instrument.key:
            raise KeyError(f"this tape has {self._tape.instrument.key}, not {instrument}")
