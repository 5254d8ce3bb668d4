"""Orders, their lifecycle, and fills."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from fleetkit.core.numbers import ZERO


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        # A module constant, not Side.BUY: an enum member looked up on its class costs more
        # than the comparison, and this runs several times per order.
        return 1 if self is _BUY else -1

    @classmethod
    def for_delta(cls, delta: Decimal) -> Side:
        return _BUY if delta > 0 else _SELL


_BUY, _SELL = Side.BUY, Side.SELL


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    """NEW: built in memory. PENDING: written ahead, submission outcome not yet known.
    ACKNOWLEDGED: the broker holds it. Then PARTIALLY_FILLED / FILLED / CANCELLED / REJECTED.
    """

    NEW = "new"
    PENDING = "pending"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        """Could still fill: the broker holds it, or might (PENDING)."""
        return self in _OPEN_STATUSES


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})
# Enum members as module constants: looking one up on its class (through EnumType's
# __getattr__ hook) costs more than the comparison, on the path every order takes.
_FILLED, _PARTIALLY_FILLED = OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED
_CANCELLED, _REJECTED = OrderStatus.CANCELLED, OrderStatus.REJECTED
# Neither terminal nor NEW (is_open), spelled out once so the check is one set lookup.
_OPEN_STATUSES = frozenset(set(OrderStatus) - TERMINAL_STATUSES - {OrderStatus.NEW})

_ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.PENDING, OrderStatus.REJECTED}),
    OrderStatus.PENDING: frozenset(
        {
            OrderStatus.ACKNOWLEDGED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
        }
    ),
    OrderStatus.ACKNOWLEDGED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED,
         OrderStatus.REJECTED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new == current or new in _ALLOWED[current]


def status_after_fill(quantity: Decimal, filled: Decimal, current: OrderStatus) -> OrderStatus:
    """Status once `filled` of `quantity` has been filled. A cancelled order stays cancelled:
    fills that arrive after a cancel are real and still counted, but do not reopen it."""
    if current is _CANCELLED or current is _REJECTED:
        return current
    if filled >= quantity:
        return _FILLED
    if filled > ZERO:
        return _PARTIALLY_FILLED
    return current


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What the trader wants; nothing has been written or sent yet.

    `reference_price` is the price the decision was based on (the bar close), used by the
    price collar and by max-order-value when no limit price is given.
    """

    instrument: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    reference_price: Decimal
    limit_price: Decimal | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a limit order needs a limit_price")

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.side.sign

    @property
    def price_for_checks(self) -> Decimal:
        return self.limit_price if self.limit_price is not None else self.reference_price


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the ledger knows it."""

    id: int
    bot_id: int
    client_order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    broker_order_id: str | None
    created_at: datetime
    updated_at: datetime
    reason: str = ""
    # The price the decision was based on (the intent's reference, e.g. the bar close): what
    # a market order's fills are judged against. None for an order adopted from the broker.
    reference_price: Decimal | None = None

    @property
    def remaining(self) -> Decimal:
        return max(self.quantity - self.filled_quantity, ZERO)

    @property
    def signed_remaining(self) -> Decimal:
        return self.remaining * self.side.sign

    def with_status(self, status: OrderStatus, at: datetime, reason: str = "") -> Order:
        if not can_transition(self.status, status):
            raise ValueError(f"order {self.client_order_id}: {self.status} -> {status} not allowed")
        return replace(self, status=status, updated_at=at, reason=reason or self.reason)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution reported by the broker; `broker_fill_id` is unique per account."""

    broker_fill_id: str
    client_order_id: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity * self.side.sign

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price
