"""What the quote stream says about an instrument: the venue's quote made into a full tick.

The venue quotes a last price (`SandboxVenue.quote`, the same path the REST quote and every
bot's rails use), so every instrument it prices — options included — can be streamed. The
best bid and ask are what a market order would pay there now (`matching.taker_price`), the
volume is the day's so far in completed one-minute bars (days in UTC), and the quantities at
the bid and ask are a few lots, invented, as the sandbox has no order book of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleetkit.core.instruments import Instrument
from fleetkit.core.orders import Side
from fleetkit.core.ticks import Tick

from .matching import taker_price
from .venue import SandboxVenue

LOTS_AT_BEST = 10  # what the invented book shows at its best bid and ask, in lots


class VenueTicks:
    """Full-mode ticks (seq 0: the server numbers them per connection) from `venue`."""

    def __init__(self, venue: SandboxVenue) -> None:
        self._venue = venue
        self._lock = threading.Lock()
        # instrument -> (minute it was summed up to, that day's volume): one bars call per
        # instrument a minute, not one a tick.
        self._volumes: dict[str, tuple[datetime, Decimal]] = {}

    def instruments(self) -> Mapping[str, Instrument]:
        return self._venue.instruments()

    def tick(self, instrument: str) -> Tick:
        """The instrument's tick now; UnknownInstrumentError if the venue does not price it,
        DatabaseUnavailableError when its book is down."""
        quote = self._venue.quote(instrument)  # raises for an unknown instrument
        found = self._venue.instruments()[instrument]
        slippage = self._venue.config.slippage_bps
        bid = taker_price(quote.price, Side.SELL, slippage, found.tick_size)
        ask = taker_price(quote.price, Side.BUY, slippage, found.tick_size)
        depth = found.lot_size * LOTS_AT_BEST
        return Tick(instrument, 0, quote.ts, quote.price, "full", bid, ask,
                    self._day_volume(instrument, quote.ts), depth, depth)

    def _day_volume(self, instrument: str, at: datetime) -> Decimal:
        minute = at.replace(second=0, microsecond=0)
        with self._lock:
            cached = self._volumes.get(instrument)
        if cached is not None and cached[0] == minute:
            return cached[1]
        day = datetime(minute.year, minute.month, minute.day, tzinfo=UTC)
        bars = self._venue.bars(instrument, 60, day, minute + timedelta(minutes=1))
        volume = Decimal(str(sum(bar.volume for bar in bars)))
        with self._lock:
            self._volumes[instrument] = (minute, volume)
        return volume
