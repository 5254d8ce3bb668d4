"""Option quotes as a chain snapshot records them, and the ATM straddle read back from them.

Pure: no I/O. The store (store/option_quotes.py) writes and reads these; the collector
(coming) builds them from a venue's chain snapshot. The instrument is opaque text: only the
venue knows how its symbols are spelt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

OPTION_TYPES = ("CE", "PE")


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """One instrument's quote in one minute's chain snapshot."""

    instrument: str  # "NFO:NIFTY26D0824000CE", as the venue names it
    underlying: str  # "NIFTY"
    expiry: date
    strike: Decimal
    option_type: str  # "CE" or "PE"
    bid: Decimal | None  # None: the venue sent no bid (an empty book side)
    ask: Decimal | None
    last: Decimal | None
    volume: int
    open_interest: int
    underlying_price: Decimal
    iv: float | None  # None where it could not be computed
    source: str  # "sandbox", a broker's name

    def __post_init__(self) -> None:
        if self.option_type not in OPTION_TYPES:
            raise ValueError(f"{self.instrument}: option_type must be CE or PE, "
                             f"got {self.option_type!r}")
        for name in ("strike", "bid", "ask", "last", "underlying_price"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or not value.is_finite()):
                raise ValueError(f"{self.instrument}: {name} must be a finite Decimal, "
                                 f"got {value!r}")
        if self.iv is not None and not math.isfinite(self.iv):
            raise ValueError(f"{self.instrument}: iv must be finite or None, got {self.iv!r}")


@dataclass(frozen=True, slots=True)
class StraddlePoint:
    """The ATM straddle at one minute: the call and put at the strike nearest the
    underlying. A leg's price is None when that leg was not quoted that minute."""

    minute: datetime
    underlying_price: Decimal
    strike: Decimal
    call: Decimal | None  # the call's mark (mid of bid/ask, else last)
    put: Decimal | None

    @property
    def premium(self) -> Decimal | None:
        if self.call is None or self.put is None:
            return None
        return self.call + self.put

    def as_json(self) -> dict[str, object]:
        return {"minute": self.minute.isoformat(),
                "underlying_price": str(self.underlying_price), "strike": str(self.strike),
                "call": _text(self.call), "put": _text(self.put),
                "premium": _text(self.premium)}


def mark(bid: Decimal | None, ask: Decimal | None, last: Decimal | None) -> Decimal | None:
    """A leg's price: the mid of a two-sided quote, else the last trade, else None."""
    if bid is not None and ask is not None and bid > 0 and ask >= bid:
        return (bid + ask) / 2
    return last


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
