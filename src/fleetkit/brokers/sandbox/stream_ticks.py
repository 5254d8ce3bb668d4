"""What the quote stream says about an instrument: the venue's quote made into a full tick.

The venue quotes a last price (`SandboxVenue.quote`, the same path the REST quote and every
bot's rails use), so every instrument it prices — options included — can be streamed. The
best bid and ask are what a market order would pay there now (`matching.taker_price`), the
volume is the day's so far in completed one-minute bars (days in UTC), and the quantities at
the bid and ask are a few lots, invented, as the sandbox has no order book of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleetkit.core.instruments import Instrument
from fleetkit.core.numbers import floor_minute
from fleetkit.core.orders import Side
from fleetkit.core.ticks import Tick

from .derivatives import SandboxDerivatives
from .errors import UnknownInstrumentError
from .matching import taker_price
from .venue import SandboxVenue

LOTS_AT_BEST = 10  # what the invented book shows at its best bid and ask, in lots


class VenueTicks:
    """Full-mode ticks (seq 0: the server numbers them per connection) from `venue`."""

    def __init__(self, venue: SandboxVenue) -> None:
        self._venue = venue
        # Listed option contracts are not in the venue's catalog: their ticks are the REST
        # chain's quotes (same prices, same spreads), so a tracker can stream its legs.
        self._options = SandboxDerivatives(venue)
        self._lock = threading.Lock()
        # instrument -> (minute asked for, first bar start not yet summed, the day's volume
        # so far as a float, as Decimal): each minute sums only the bars completed since.
        self._volumes: dict[str, tuple[datetime, datetime, float, Decimal]] = {}

    def instruments(self) -> Mapping[str, Instrument]:
        return _CatalogAndOptions(self._venue.instruments(), self._options)

    def tick(self, instrument: str) -> Tick:
        """The instrument's tick now; UnknownInstrumentError if the venue does not price it,
        DatabaseUnavailableError when its book is down."""
        if instrument not in self._venue.instruments():
            return self._option_tick(instrument)
        quote = self._venue.quote(instrument)
        found = self._venue.instruments()[instrument]
        slippage = self._venue.config.slippage_bps
        bid = taker_price(quote.price, Side.SELL, slippage, found.tick_size)
        ask = taker_price(quote.price, Side.BUY, slippage, found.tick_size)
        depth = found.lot_size * LOTS_AT_BEST
        return Tick(instrument, 0, quote.ts, quote.price, "full", bid, ask,
                    self._day_volume(instrument, quote.ts), depth, depth)

    def _option_tick(self, instrument: str) -> Tick:
        try:
            quote = self._options.quotes([instrument])[0]
        except ValueError as exc:  # off the contract rules: not an instrument here
            raise UnknownInstrumentError(str(exc)) from None
        depth = Decimal(quote.lot_size * LOTS_AT_BEST)
        return Tick(instrument, 0, quote.ts, quote.last, "full", quote.bid, quote.ask,
                    Decimal(quote.volume), depth, depth)

    def _day_volume(self, instrument: str, at: datetime) -> Decimal:
        minute = floor_minute(at)
        day = datetime(minute.year, minute.month, minute.day, tzinfo=UTC)
        with self._lock:
            cached = self._volumes.get(instrument)
        if cached is not None and cached[0] == minute:
            return cached[3]
        # Another minute of the same day: carry on from the first bar not summed yet (bar by
        # bar onto the same float, so the total is what summing the whole day gives).
        start, total = ((cached[1], cached[2]) if cached is not None and cached[1] >= day
                        else (day, 0))
        bars = self._venue.bars(instrument, 60, start, minute + timedelta(minutes=1))
        for bar in bars:
            total += bar.volume
        if bars:
            start = bars[-1].ts + timedelta(minutes=1)
        volume = Decimal(str(total))
        with self._lock:
            self._volumes[instrument] = (minute, start, total, volume)
        return volume


class _CatalogAndOptions(Mapping[str, Instrument]):
    """What the stream accepts a subscription to: the catalog's instruments, and any option
    contract listed now (asked of the derivatives, which refuse an expired or unknown key).
    Iterating gives the catalog only: the listed options are too many to spell out."""

    def __init__(self, catalog: Mapping[str, Instrument], options: SandboxDerivatives) -> None:
        self._catalog = catalog
        self._options = options

    def __contains__(self, key: object) -> bool:
        if key in self._catalog:
            return True
        return isinstance(key, str) and self._options.is_listed(key)

    def __getitem__(self, key: str) -> Instrument:
        return self._catalog[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._catalog)

    def __len__(self) -> int:
        return len(self._catalog)
