"""The seam between the venue (matching, accounts) and where its prices come from.

`InventedPrices` (a seeded, calendar-aware random walk) is the default; a backtest plugs in
a tape of recorded or generated bars instead. Times given to a PriceSource are venue times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote


@dataclass(frozen=True, slots=True)
class SandboxInstrument:
    """An instrument the sandbox can invent prices for, and the character of its walk."""

    instrument: Instrument
    base_price: Decimal
    annual_volatility: float

    def __post_init__(self) -> None:
        if self.base_price <= 0:
            raise ValueError(f"{self.instrument.key}: base_price must be positive")
        if not 0 < self.annual_volatility < 5:
            raise ValueError(f"{self.instrument.key}: annual_volatility must be in (0, 5)")


class MarketPrices(Protocol):
    """The questions the venue asks about an instrument's prices and its market: of a
    PriceSource for the catalog, of the derivative listing (listing.py) for the rest."""

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        """The last traded price at venue time `at`, tick-rounded, with the time it traded:
        `at` itself while the market is open; the last session's close time when closed."""
        ...

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime,
             now: datetime) -> list[Bar]:
        """Bars starting in [start, end) that are complete at `now` (start + interval <= now),
        oldest first, only for time the market was open."""
        ...

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        """Whether `market` is open at venue time `at`, and when that next changes."""
        ...


class PriceSource(MarketPrices, Protocol):
    def instruments(self) -> Mapping[str, Instrument]:
        """Every instrument this source prices, by key ("NYSE:AAPL")."""
        ...
