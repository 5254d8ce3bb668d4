"""The venue's per-order building blocks: checks of a call's arguments, a new order's
record, the market one order's acceptance sees, and an execution about to be booked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from fleetkit.core.instruments import Instrument
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import OrderStatus
from fleetkit.engine.ports import OrderRequest

from .book import StoredOrder
from .pricing import MarketPrices

MAX_ACCOUNT_LENGTH = 100
MAX_CLIENT_ORDER_ID_LENGTH = 200
MAX_INSTRUMENT_LENGTH = 200
_ACKNOWLEDGED, _REJECTED = OrderStatus.ACKNOWLEDGED, OrderStatus.REJECTED


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill about to be booked; `rest_after` is set when it leaves a remainder, which
    may then fill no sooner than that long after `at`."""

    quantity: Decimal
    price: Decimal
    at: datetime
    rest_after: timedelta | None = None


class MarketMoment:
    """One instrument's market at one venue time, as one order's acceptance sees it: whether
    it is in session and the last trade after the venue's latency, each looked up once (the
    admission and the first fill ask the same questions of the same moment)."""

    __slots__ = ("_instrument", "_is_open", "_last", "_prices", "after_latency", "now")

    def __init__(self, prices: MarketPrices, instrument: Instrument, now: datetime,
                 latency: timedelta) -> None:
        self._prices = prices
        self._instrument = instrument
        self.now = now
        self.after_latency = now + latency if latency else now
        self._is_open: bool | None = None
        self._last: Decimal | None = None

    def is_open(self) -> bool:
        if self._is_open is None:
            self._is_open = self._prices.market_clock(self._instrument.market, self.now).is_open
        return self._is_open

    def last_after_latency(self) -> Decimal:
        if self._last is None:
            self._last = self._prices.last_trade(self._instrument.key, self.after_latency).price
        return self._last


def new_order(account: str, request: OrderRequest, reason: str | None,
               reserve: Decimal | None, now: datetime) -> StoredOrder:
    status = _REJECTED if reason is not None else _ACKNOWLEDGED
    return StoredOrder(  # positional, in StoredOrder's field order: once per order
        0, account, request.client_order_id, request.instrument, request.side,
        request.order_type, request.quantity, request.limit_price, status, ZERO, ZERO, reserve,
        reason or "", None, now, now)


def parse_cursor(cursor: str | None, what: str) -> int:
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()):
        raise ValueError(f"{what} cursor must be a {what} id from this venue, got {cursor!r}")
    return int(cursor)


def check_account(account: str) -> None:
    check_name("account", account, MAX_ACCOUNT_LENGTH)


def check_request(request: OrderRequest) -> None:
    check_name("client_order_id", request.client_order_id, MAX_CLIENT_ORDER_ID_LENGTH)
    check_name("instrument", request.instrument, MAX_INSTRUMENT_LENGTH)
    if not request.quantity.is_finite():
        raise ValueError(f"quantity must be a finite number, got {request.quantity}")
    if request.limit_price is not None and not request.limit_price.is_finite():
        raise ValueError(f"limit_price must be a finite number, got {request.limit_price}")


def check_name(what: str, value: str, max_length: int) -> None:
    if not value or len(value) > max_length or not value.isprintable() or value != value.strip():
        raise ValueError(f"{what} must be 1 to {max_length} printable characters without "
                         f"surrounding spaces, got {value!r}")
