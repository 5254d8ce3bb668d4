"""The ATM straddle and strangles around it, as a tracker follows them: which legs make each
structure, and one snapshot of a structure's price. Pure: no I/O.

Width 0 is the ATM straddle (call and put at the strike nearest spot); width k is the
strangle k strikes each side (call at ATM + k steps, put at ATM - k steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from fleetkit.core.option_quotes import mark
from fleetkit.core.options import OptionKind, implied_volatility

SnapshotSource = Literal["stream", "rest"]

# NSE and BSE index options both stop trading at 15:30 IST on their expiry day: the moment
# their time value runs out, which is what implied volatility is measured against.
EXPIRY_CLOSE = time(15, 30)
EXPIRY_ZONE = ZoneInfo("Asia/Kolkata")
YEAR = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class LegQuote:
    """One option leg's latest prices; None where the venue sent no side (or no trade)."""

    instrument: str
    strike: Decimal
    kind: OptionKind
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None

    @property
    def mark(self) -> Decimal | None:
        return mark(self.bid, self.ask, self.last)


@dataclass(frozen=True, slots=True)
class StraddleSnapshot:
    """A structure's price when one of its legs (or a REST fill) last changed it. `at` is
    the venue's time of the newest leg price; `premium` None when a leg has no price."""

    tracker: str
    underlying: str
    width: int
    at: datetime
    trading_day: date
    expiry: date
    atm_strike: Decimal
    spot: Decimal
    call: LegQuote
    put: LegQuote
    call_iv: float | None
    put_iv: float | None
    source: SnapshotSource

    @property
    def premium(self) -> Decimal | None:
        call, put = self.call.mark, self.put.mark
        return None if call is None or put is None else call + put

    def as_json(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "underlying": self.underlying, "width": self.width,
                "expiry": self.expiry.isoformat(), "atm_strike": str(self.atm_strike),
                "spot": str(self.spot), "call": _leg_json(self.call, self.call_iv),
                "put": _leg_json(self.put, self.put_iv), "premium": _text(self.premium),
                "source": self.source}


def leg_strikes(atm: Decimal, step: Decimal, width: int) -> tuple[Decimal, Decimal]:
    """(call strike, put strike) of the structure `width` strikes each side of `atm`."""
    if width < 0:
        raise ValueError(f"a structure's width is 0 or more strikes, got {width}")
    return atm + step * width, atm - step * width


def years_to_expiry(expiry: date, venue_at: datetime) -> float:
    """Years from `venue_at` (the venue's own time) to the expiry's close; 0 once past."""
    close = datetime.combine(expiry, EXPIRY_CLOSE, tzinfo=EXPIRY_ZONE)
    return max((close - venue_at) / YEAR, 0.0)


def leg_iv(leg: LegQuote, spot: Decimal, years: float) -> float | None:
    """The leg's implied volatility from its mark, or None where none can be computed (no
    price, an expired option, a price no volatility explains)."""
    price = leg.mark
    if price is None or years <= 0 or spot <= 0 or leg.strike <= 0:
        return None
    return implied_volatility(leg.kind, float(price), float(spot), float(leg.strike), years)


def _leg_json(leg: LegQuote, iv: float | None) -> dict[str, object]:
    return {"instrument": leg.instrument, "strike": str(leg.strike), "bid": _text(leg.bid),
            "ask": _text(leg.ask), "last": _text(leg.last), "mark": _text(leg.mark), "iv": iv}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
