"""What an order placed at a bar's close meets: the next bar's open.

A live bot decides on a bar once it has closed, and its market order meets the next trade,
not the close it was decided on. `NextOpenPrices` is the PriceSource that gives the sandbox
venue exactly that over a tape: at a bar's close the last trade is that close (what the
rails and the marks see), and any moment after it, until the next close, the price is the
next bar's open (what an order meets once the venue's latency has passed). Across a gap
between sessions that is the next session's first open, as it would be live.

Prices are tick-rounded once here (`TapePrices`' rounding) and shared, as floats, with the
fast path, so the two paths price every fill and mark from the same numbers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote

FloatArray = npt.NDArray[np.float64]


def tick_prices(values: FloatArray, instrument: Instrument) -> list[Decimal]:
    """Each float price as the venue quotes it: rounded to the tick (as TapePrices does)."""
    exponent = instrument.tick_size.normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    return [instrument.round_price(Decimal(repr(round(v, places)))) for v in values.tolist()]


class NextOpenPrices:
    """PriceSource over one tape: at a bar's end its close; strictly after it, until the
    next bar's end, the next bar's open (the last bar's close after the tape ends)."""

    def __init__(self, tape: BarTape) -> None:
        if not len(tape):
            raise ValueError(f"{tape.instrument.key}: the tape has no bars")
        self._tape = tape
        self._key = tape.instrument.key
        self.close = tick_prices(tape.close, tape.instrument)
        self.open = tick_prices(tape.open, tape.instrument)
        self._ends: list[float] = (tape.ts_s + tape.interval_s).astype(np.float64).tolist()
        self._first = float(tape.ts_s[0])

    def instruments(self) -> Mapping[str, Instrument]:
        return {self._key: self._tape.instrument}

    def quote_at_row(self, row: int) -> Quote:
        """The close of `row`, stamped with its end: the mark at that bar's close."""
        return Quote(self._key, self.close[row], datetime.fromtimestamp(self._ends[row], UTC))

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        self._check(instrument)
        moment = at.timestamp()
        ended = bisect_right(self._ends, moment) - 1  # the last bar ended by `at`
        if ended >= 0 and self._ends[ended] == moment:
            return self.quote_at_row(ended)
        following = ended + 1
        if following < len(self._ends):
            return Quote(self._key, self.open[following], at)
        return Quote(self._key, self.close[-1], at)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        # The environment feeds the bot its bars itself; nothing asks the venue for them.
        raise NotImplementedError("the learning environment's venue serves no bars")

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        """Open from the tape's first bar until one bar after its last close, as a replay's
        tape is (sessions are in the bars: the next open is the next session's)."""
        moment = at.timestamp()
        is_open = self._first <= moment < self._ends[-1] + self._tape.interval_s
        return MarketClock(market, at, is_open, None, None)

    def _check(self, instrument: str) -> None:
        if instrument != self._key:
            raise KeyError(f"this environment trades {self._key}, not {instrument}")
