"""Real prices for paper trading: an exchange's public quotes and candles as a PriceSource,
so the sandbox venue's matching (fees, slippage, partial fills, its durable book) fills
paper orders at prices that really traded — the familiar dry run, with zero credentials.

Quotes are cached for `quote_ttl_s`: one order asks the price several times (rails,
admission, matching) and should see one price, and the venue's rate limit is shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.engine.ports import Clock

from .broker import CcxtBroker
from .venue import CcxtVenue


class CcxtPrices:
    def __init__(self, venue: CcxtVenue, instruments: Mapping[str, Instrument], clock: Clock,
                 *, quote_ttl_s: float = 1.0) -> None:
        self._feed = CcxtBroker(venue, instruments, clock)  # only its MarketData half is used
        self._instruments = MappingProxyType(dict(instruments))
        self._clock = clock
        self._ttl_s = quote_ttl_s
        self._quotes: dict[str, tuple[datetime, Quote]] = {}

    def instruments(self) -> Mapping[str, Instrument]:
        return self._instruments

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        cached = self._quotes.get(instrument)
        now = self._clock.now()
        if cached is not None and abs((now - cached[0]).total_seconds()) < self._ttl_s:
            return cached[1]
        quote = self._feed.quote(instrument)
        self._quotes[instrument] = (now, quote)
        return quote

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        return self._feed.bars(instrument, interval_s, start, end)

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        return MarketClock(market, at, True, None, None)
