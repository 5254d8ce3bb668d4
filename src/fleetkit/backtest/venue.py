"""The backtest's venue: the sandbox's own matching over bar tapes, and the simulated clock
a replay moves from one bar close to the next."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from fleetkit.backtest.tape import BarTape, TapePrices
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote


class TapeQuotes:
    """One tape's closes as the venue quotes them: the last trade at t is the close of the
    last bar ended by t, tick-rounded, stamped with that bar's end. The replay marks with
    the same quotes (`at_row`) without asking the venue."""

    __slots__ = ("_close", "_decimal_ticks", "_ends", "_instrument", "_last", "_places")

    def __init__(self, tape: BarTape) -> None:
        self._instrument = tape.instrument
        self._close = tape.close.tolist()
        self._ends = (tape.ts_s + tape.interval_s).astype(np.float64)
        tick = tape.instrument.tick_size.normalize()
        exponent = tick.as_tuple().exponent
        self._places = max(0, -exponent) if isinstance(exponent, int) else 0
        # A tick of 1, 0.1, 0.01 ...: rounding to `places` IS rounding to the tick.
        self._decimal_ticks = tick == Decimal(1).scaleb(-self._places)
        self._last: tuple[int, Quote] | None = None

    def price_at_row(self, row: int) -> float:
        """The quote's price as a float, without making the quote where that is exact."""
        if self._decimal_ticks:
            return float(round(self._close[row], self._places))
        return float(self.at_row(row).price)

    def at_row(self, row: int) -> Quote:
        last = self._last
        if last is not None and last[0] == row:
            return last[1]
        instrument = self._instrument
        price = instrument.round_price(Decimal(repr(round(self._close[row], self._places))))
        quote = Quote(instrument.key, price, datetime.fromtimestamp(float(self._ends[row]), UTC))
        self._last = (row, quote)
        return quote

    def at(self, when: datetime) -> Quote:
        row = int(np.searchsorted(self._ends, when.timestamp(), side="right")) - 1
        return self.at_row(max(row, 0))


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
        self._source(instrument)
        return self.quotes[instrument].at(at)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        return self._source(instrument).bars(instrument, interval_s, start, end, now)

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        """A tape has no sessions: its market is open from its first bar's start until one
        bar after its last bar's close (that close is acted on, as live, a moment later)."""
        moment = at.timestamp()
        is_open = any(start <= moment < stop for start, stop in self._windows.get(market, ()))
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
