"""Index futures as a venue quotes them: each listed month, and which one is the front."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class FutureQuote:
    """One future's quote. Prices per unit of the index; `volume` (today's) and
    `open_interest` in units; `basis` is the price minus the spot."""

    instrument: str  # "NFO:NIFTY26DECFUT"
    underlying: str  # "NIFTY"
    expiry: date
    bid: Decimal
    ask: Decimal
    last: Decimal
    volume: int
    open_interest: int
    underlying_price: Decimal
    lot_size: int
    ts: datetime

    @property
    def basis(self) -> Decimal:
        return self.last - self.underlying_price


@dataclass(frozen=True, slots=True)
class FuturesCurve:
    """Every listed future of one underlying, nearest first; `front` is the contract a
    continuous series holds now (the near month until its roll, then the next)."""

    underlying: str
    spot_instrument: str
    spot: Decimal
    front: str
    roll_at: datetime  # when the front next rolls to the following month (UTC)
    ts: datetime
    futures: tuple[FutureQuote, ...]


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """A perpetual's funding settlement: longs pay shorts `rate` x position value when it is
    positive, shorts pay longs when negative."""

    at: datetime
    rate: Decimal


@dataclass(frozen=True, slots=True)
class PerpetualQuote:
    """A perpetual swap's prices and funding now. `predicted_funding_rate` is what the
    running period would settle at if it ended now."""

    instrument: str  # "CRYPTO:BTC/USDT:USDT": BASE/QUOTE:SETTLE, a linear perpetual
    index_instrument: str  # "CRYPTO:BTC/USDT"
    index_price: Decimal
    mark_price: Decimal
    bid: Decimal
    ask: Decimal
    last_funding: FundingPayment
    predicted_funding_rate: Decimal
    next_funding_at: datetime
    funding_interval_s: int
    ts: datetime
