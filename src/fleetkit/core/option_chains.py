"""Option quotes and chain snapshots as a venue answers them: what a collector stores and a
tracker marks, whichever broker (the sandbox, a real one) they came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from fleetkit.core.options import OptionKind


@dataclass(frozen=True, slots=True)
class ChainQuote:
    """One option's quote as a venue answers it (core.option_quotes.OptionQuote is the
    collector's stored record of it). Prices in the underlying's currency per unit;
    `volume` (today's) and `open_interest` in units, not lots; `ts` is when it was quoted
    (UTC)."""

    instrument: str  # "NFO:NIFTY26D0824000CE"
    underlying: str  # the root: "NIFTY"
    expiry: date
    strike: Decimal
    kind: OptionKind
    bid: Decimal
    ask: Decimal
    last: Decimal
    volume: int
    open_interest: int
    underlying_price: Decimal
    implied_volatility: float | None  # None where no volatility explains the mid
    lot_size: int
    ts: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class ChainRow:
    strike: Decimal
    call: ChainQuote
    put: ChainQuote


@dataclass(frozen=True, slots=True)
class OptionChain:
    """Calls and puts of one expiry at strikes around the money, quoted at one moment."""

    underlying: str
    spot_instrument: str  # "NSE:NIFTY 50"
    spot: Decimal
    expiry: date
    expiries: tuple[date, ...]  # every expiry listed now, nearest first
    atm_strike: Decimal
    strike_step: Decimal
    lot_size: int
    ts: datetime
    rows: tuple[ChainRow, ...]

    def row(self, strike: Decimal) -> ChainRow | None:
        return next((r for r in self.rows if r.strike == strike), None)
