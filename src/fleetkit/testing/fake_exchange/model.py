"""Value types of the fake Binance: markets, orders, trades, and the errors it answers with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_EIGHT_PLACES = Decimal("0.00000001")

Clock = Callable[[], datetime]
PriceSource = Callable[[str, datetime], Decimal]
Bar = tuple[datetime, Decimal, Decimal, Decimal, Decimal, Decimal]
BarSource = Callable[[str, int, datetime, datetime], list[Bar]]


def to_ms(at: datetime) -> int:
    """Milliseconds since the epoch, computed exactly (no float rounding)."""
    if at.tzinfo is None:
        raise ValueError(f"the fake exchange needs tz-aware datetimes, got naive {at!r}")
    return (at - EPOCH) // _ONE_MS


def from_ms(ms: int) -> datetime:
    return EPOCH + ms * _ONE_MS


def fmt(value: Decimal) -> str:
    """A decimal as Binance writes it: eight places ("60000.00000000") when that is exact,
    otherwise every digit, never an exponent (ccxt parses either, but not "1E-8")."""
    if value == value.quantize(_EIGHT_PLACES):
        return f"{value:.8f}"
    return format(value, "f")


class BinanceError(Exception):
    """A refusal in Binance's own words: the HTTP status and the {"code", "msg"} body."""

    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.http_status = http_status
        self.code = code
        self.msg = msg


def filter_failure(filter_type: str) -> BinanceError:
    return BinanceError(400, -1013, f"Filter failure: {filter_type}")


def insufficient_balance() -> BinanceError:
    return BinanceError(400, -2010, "Account has insufficient balance for requested action.")


def invalid_symbol() -> BinanceError:
    return BinanceError(400, -1121, "Invalid symbol.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


@dataclass(frozen=True, slots=True)
class FakeMarket:
    """One spot symbol and the filters Binance would enforce on it."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("5")
    max_qty: Decimal = Decimal("9000")
    max_price: Decimal = Decimal("1000000")
    max_notional: Decimal = Decimal("9000000")

    def __post_init__(self) -> None:
        if min(self.tick_size, self.step_size) <= 0 or self.min_qty < 0 or self.min_notional < 0:
            raise ValueError(f"market {self.symbol}: sizes must be positive")


class OrderStatus(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"  # never produced: fills here are always whole
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"  # never stored: a rejected order is an error reply, as on Binance
    EXPIRED = "EXPIRED"  # an IOC/FOK limit that could not fill at once


@dataclass(frozen=True, slots=True)
class FakeOrder:
    """An order as the fake holds it; a new copy replaces it on every change."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str  # "BUY" / "SELL"
    type: str  # "MARKET" / "LIMIT"
    time_in_force: str | None  # "GTC" / "IOC" / "FOK" for limits, None for market orders
    price: Decimal  # limit price; 0 for market orders, as Binance reports them
    orig_qty: Decimal
    executed_qty: Decimal
    cummulative_quote_qty: Decimal  # Binance's spelling
    status: OrderStatus
    time: datetime
    update_time: datetime
    reserved: Decimal  # what is still locked for it, in `reserved_asset`
    reserved_asset: str

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class FakeTrade:
    """One fill of one of our orders."""

    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: datetime
    is_buyer: bool
    is_maker: bool


@dataclass(frozen=True, slots=True)
class Balance:
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class Submission:
    """One POST /api/v3/order as it arrived, before any fault or check.

    `duplicate` says its clientOrderId was already used by an order the fake accepted
    (open or not): the mark of a client that resent an order it had no answer for.
    `fault` is the kind of fault injected into this request, if any.
    """

    client_order_id: str | None
    time: datetime
    duplicate: bool
    fault: str | None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new-order request, parsed and typed but not yet checked against the book."""

    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None
