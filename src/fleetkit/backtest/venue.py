"""The backtest's venue: the sandbox's own matching over bar tapes, and the simulated clock
a replay moves from one bar close to the next."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from fleetkit.backtest.tape import BarTape, TapePrices
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote

# Closes below this are exact to well under a cent in a double (2**53 / 10**3 is ~9e12).
_EXACT_BELOW = 1e12


class TapeQuotes:
    """One tape's closes as the venue quotes them: the last trade at t is the close of the
    last bar ended by t, tick-rounded, stamped with that bar's end. The replay marks with
    the same quotes (`at_row`) without asking the venue."""

    __slots__ = ("_close", "_decimal_ticks", "_ends", "_hint", "_instrument", "_key", "_last",
                 "_on_grid", "_places")

    def __init__(self, tape: BarTape) -> None:
        self._instrument = tape.instrument
        self._key = tape.instrument.key
        self._close: list[float] = tape.close.tolist()
        self._ends: list[float] = (tape.ts_s + tape.interval_s).astype(np.float64).tolist()
        self._hint = 0  # the row `at` found last: a replay asks about the same or the next
        tick = tape.instrument.tick_size.normalize()
        exponent = tick.as_tuple().exponent
        self._places = max(0, -exponent) if isinstance(exponent, int) else 0
        # A tick of 1, 0.1, 0.01 ...: rounding to `places` IS rounding to the tick.
        self._decimal_ticks = tick == Decimal(1).scaleb(-self._places)
        # Every close already the float of a price on the tick (a generated tape's are):
        # then rounding one to `places` gives it back unchanged, and is skipped. (numpy's
        # round equal to x means x is the double nearest k / 10**places; Python's correctly
        # rounded round() of that double is that double again, at any sane magnitude.)
        closes = tape.close
        self._on_grid = bool(self._decimal_ticks and len(closes)
                             and float(np.abs(closes).max()) < _EXACT_BELOW
                             and np.array_equal(np.round(closes, self._places), closes))
        self._last: tuple[int, Quote] | None = None

    @property
    def closes_are_prices(self) -> bool:
        """Whether each bar's close (as a float) is already the price it is quoted at."""
        return self._on_grid

    def price_at_row(self, row: int) -> float:
        """The quote's price as a float, without making the quote where that is exact."""
        if self._on_grid:
            return self._close[row]
        if self._decimal_ticks:
            return round(self._close[row], self._places)
        return float(self.at_row(row).price)

    def at_row(self, row: int) -> Quote:
        last = self._last
        if last is not None and last[0] == row:
            return last[1]
        instrument = self._instrument
        close = self._close[row]
        price = Decimal(repr(close if self._on_grid else round(close, self._places)))
        # On a tick of a power of ten that number is on the tick already: quantizing gives
        # it the tick's exponent, as round_price would, without round_price's division.
        price = (price.quantize(instrument.tick_size) if self._decimal_ticks
                 else instrument.round_price(price))
        quote = Quote(self._key, price, datetime.fromtimestamp(self._ends[row], UTC))
        self._last = (row, quote)
        return quote

    def at(self, when: datetime) -> Quote:
        return self.at_row(self.row_at(when.timestamp()))

    def row_at(self, moment: float) -> int:
        """The row of the last bar ended by `moment` (the first row before any has ended)."""
        ends, row = self._ends, self._hint
        if not (ends[row] <= moment and (row + 1 == len(ends) or moment < ends[row + 1])):
            row = self._hint = max(bisect_right(ends, moment) - 1, 0)
        return row


class TapesPrices:
    """PriceSource over several tapes, one per instrument (the sandbox venue's prices in a
    backtest): each instrument's last trade at t is the close of its last bar ended by t."""

    def __init__(self, tapes: Mapping[str, BarTape]) -> None:
        self._prices = {key: TapePrices(tape) for key, tape in tapes.items()}
        self.quotes = {key: TapeQuotes(tape) for key, tape in tapes.items()}
        self._windows: dict[str, list[tuple[float, float]]] = {}
        for tape in tapes.values():
            self._windows.setdefault(tape.instrument.market, []).append(
                (float(tape.ts_s[0]), float(tape.ts_s[-1] + 2 * tape.interval_s)))

    def instruments(self) -> Mapping[str, Instrument]:
        found: dict[str, Instrument] = {}
        for prices in self._prices.values():
            found.update(prices.instruments())
        return found

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        quotes = self.quotes.get(instrument)
        if quotes is None:
            self._source(instrument)  # raises, naming what has no tape
        return self.quotes[instrument].at(at)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        return self._source(instrument).bars(instrument, interval_s, start, end, now)

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        """A tape has no sessions: its market is open from its first bar's start until one
        bar after its last bar's close (that close is acted on, as live, a moment later)."""
        moment = at.timestamp()
        is_open = False
        for start, stop in self._windows.get(market, ()):
            if start <= moment < stop:
                is_open = True
                break
        return MarketClock(market, at, is_open, None, None)

    def _source(self, instrument: str) -> TapePrices:
        try:
            return self._prices[instrument]
        except KeyError:
            raise KeyError(f"no tape for {instrument} in this backtest") from None


class SimClock:
    """The replay's clock: set to each bar close as the replay reaches it."""

    __slots__ = ("_now",)

    def __init__(self, start: datetime) -> None:
        self._now = start

    def set(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now
