"""Markets and instruments: what can be traded, in which currency, in what increments."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from fleetkit.core.numbers import floor_to_step, round_to_step, truncate_toward_zero


class AssetClass(StrEnum):
    EQUITY = "equity"
    CRYPTO = "crypto"
    DERIVATIVE = "derivative"


ALWAYS_OPEN = "24/7"


@dataclass(frozen=True, slots=True)
class Market:
    """A venue's trading calendar and home currency.

    `calendar` is a pandas_market_calendars name, or "24/7" for markets that never close.
    """

    code: str
    name: str
    calendar: str
    timezone: str
    currency: str
    asset_class: AssetClass

    @property
    def always_open(self) -> bool:
        return self.calendar == ALWAYS_OPEN


MARKETS: dict[str, Market] = {
    m.code: m
    for m in (
        Market("NYSE", "New York Stock Exchange", "XNYS", "America/New_York", "USD",
               AssetClass.EQUITY),
        Market("NSE", "National Stock Exchange of India", "XNSE", "Asia/Kolkata", "INR",
               AssetClass.EQUITY),
        # BSE lists SENSEX; NFO and BFO are NSE's and BSE's futures-and-options segments
        # (their codes in Indian brokers' APIs). BSE shares NSE's holidays, so its calendar.
        Market("BSE", "BSE (Bombay Stock Exchange)", "XNSE", "Asia/Kolkata", "INR",
               AssetClass.EQUITY),
        Market("NFO", "NSE futures and options", "XNSE", "Asia/Kolkata", "INR",
               AssetClass.DERIVATIVE),
        Market("BFO", "BSE futures and options", "XNSE", "Asia/Kolkata", "INR",
               AssetClass.DERIVATIVE),
        Market("LSE", "London Stock Exchange", "XLON", "Europe/London", "GBX", AssetClass.EQUITY),
        Market("JPX", "Tokyo Stock Exchange", "XTKS", "Asia/Tokyo", "JPY", AssetClass.EQUITY),
        Market("XETRA", "Deutsche Börse Xetra", "XETR", "Europe/Berlin", "EUR", AssetClass.EQUITY),
        Market("CRYPTO", "Crypto (24/7)", ALWAYS_OPEN, "UTC", "USDT", AssetClass.CRYPTO),
    )
}


def market(code: str) -> Market:
    try:
        return MARKETS[code]
    except KeyError:
        known = ", ".join(sorted(MARKETS))
        raise ValueError(f"unknown market {code!r}; known markets: {known}") from None


def instrument_key(market_code: str, symbol: str) -> str:
    """The one string that names an instrument everywhere: "NYSE:AAPL", "CRYPTO:BTC/USDT"."""
    return f"{market_code}:{symbol}"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable thing. Prices move in `tick_size`, quantities in `lot_size`."""

    symbol: str
    market: str
    asset_class: AssetClass
    currency: str
    tick_size: Decimal
    lot_size: Decimal
    calendar: str
    min_quantity: Decimal | None = None

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.key}: tick_size and lot_size must be positive")

    @property
    def key(self) -> str:
        return instrument_key(self.market, self.symbol)

    @property
    def margined(self) -> bool:
        """Traded on margin (futures, perpetuals): a fill moves cash by its realized P&L and
        fee, never its notional, and a short needs no borrow."""
        return self.asset_class is AssetClass.DERIVATIVE

    @property
    def smallest_quantity(self) -> Decimal:
        return self.min_quantity if self.min_quantity is not None else self.lot_size

    def round_price(self, price: Decimal) -> Decimal:
        return round_to_step(price, self.tick_size)

    def floor_quantity(self, quantity: Decimal) -> Decimal:
        """Whole lots, never more than asked: sizing must not round a position up."""
        return floor_to_step(quantity, self.lot_size)

    def lots_toward_zero(self, quantity: Decimal) -> Decimal:
        return truncate_toward_zero(quantity, self.lot_size)
