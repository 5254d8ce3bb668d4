"""Positions and P&L derived from fills: average-cost accounting, pure, in Decimal.

Exact to Decimal's 28 significant digits: an average price can be a repeating fraction
(1/3), so a realized figure may differ from a cash-flow computation in the last digit.

Realized P&L is gross of fees; fees accumulate separately so both can be reported.
Net P&L = realized + unrealized - fees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, Order, OrderStatus, status_after_fill
from fleetkit.core.records import evolve


@dataclass(frozen=True, slots=True)
class Position:
    """Signed quantity (negative is short) at an average entry price, with running P&L."""

    instrument: str
    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def is_flat(self) -> bool:
        return self.quantity == ZERO

    def unrealized_pnl(self, mark: Decimal | None) -> Decimal:
        if mark is None or self.quantity == ZERO:
            return ZERO
        return (mark - self.average_price) * self.quantity

    def net_pnl(self, mark: Decimal | None) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl(mark) - self.fees


def apply_fill(position: Position, fill: Fill) -> Position:
    """The position after `fill`: adds at average cost, reduces realizing P&L, flips cleanly."""
    if fill.instrument != position.instrument:
        raise ValueError(f"fill for {fill.instrument} applied to {position.instrument}")
    if fill.quantity <= ZERO or fill.price <= ZERO:
        raise ValueError(f"fill {fill.broker_fill_id}: quantity and price must be positive")
    qty = position.quantity
    delta = fill.signed_quantity
    fees = position.fees + fill.fee
    if qty == ZERO or (qty > ZERO) == (delta > ZERO):
        new_qty = qty + delta
        average = (position.average_price * abs(qty) + fill.price * abs(delta)) / abs(new_qty)
        return Position(position.instrument, new_qty, average, position.realized_pnl, fees)
    closing = min(abs(delta), abs(qty))
    direction = Decimal(1) if qty > ZERO else Decimal(-1)
    realized = position.realized_pnl + (fill.price - position.average_price) * closing * direction
    new_qty = qty + delta
    if new_qty == ZERO:
        average = ZERO
    elif (new_qty > ZERO) == (qty > ZERO):
        average = position.average_price
    else:
        average = fill.price  # flipped: the remainder opened at this fill's price
    return Position(position.instrument, new_qty, average, realized, fees)


def position_from_fills(instrument: str, fills: Iterable[Fill]) -> Position:
    position = Position(instrument)
    for fill in fills:
        position = apply_fill(position, fill)
    return position


def positions_from_fills(fills: Iterable[Fill]) -> dict[str, Position]:
    positions: dict[str, Position] = {}
    for fill in fills:
        current = positions.get(fill.instrument) or Position(fill.instrument)
        positions[fill.instrument] = apply_fill(current, fill)
    return positions


@dataclass(frozen=True, slots=True)
class PnlTotals:
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.realized + self.unrealized - self.fees


def pnl_totals(marked: Iterable[tuple[Position, Decimal | None]]) -> PnlTotals:
    """Sum realized, unrealized (at each mark) and fees over (position, mark) pairs."""
    realized = unrealized = fees = ZERO
    for position, mark in marked:
        realized += position.realized_pnl
        unrealized += position.unrealized_pnl(mark)
        fees += position.fees
    return PnlTotals(realized, unrealized, fees)


def day_start_value(previous_day: str | None, previous_day_start: Decimal,
                    previous_value: Decimal, day: str) -> Decimal:
    """Where a day's change of a running figure (net or realized P&L) is measured from:
    kept within a day, rolled to the last known value when a new day begins, zero for a bot
    never seen before."""
    if previous_day is None:
        return ZERO
    if previous_day == day:
        return previous_day_start
    return previous_value


def fill_refusal(order: Order | None, fill: Fill) -> str | None:
    """Why a broker fill must not be applied to this order, or None if it may."""
    if order is None:
        return f"no order with client id {fill.client_order_id!r} belongs to this bot"
    if fill.instrument != order.instrument:
        return (f"fill {fill.broker_fill_id} is for {fill.instrument} but order "
                f"{order.client_order_id} is for {order.instrument}")
    if fill.side is not order.side:
        return f"fill {fill.broker_fill_id} side {fill.side} differs from the order's {order.side}"
    if not (fill.quantity.is_finite() and fill.price.is_finite() and fill.fee.is_finite()):
        return f"fill {fill.broker_fill_id} has a non-finite number"
    if fill.quantity <= ZERO or fill.price <= ZERO or fill.fee < ZERO:
        return f"fill {fill.broker_fill_id} has a non-positive quantity/price or negative fee"
    if order.filled_quantity + fill.quantity > order.quantity:
        return (f"fill {fill.broker_fill_id} of {fill.quantity} would overfill order "
                f"{order.client_order_id} ({order.filled_quantity}/{order.quantity} filled)")
    return None


def order_after_fill(order: Order, fill: Fill, now: datetime) -> Order:
    """The order once `fill` is counted: filled quantity, average price and status."""
    filled = order.filled_quantity + fill.quantity
    previous_value = (order.average_fill_price or ZERO) * order.filled_quantity
    average = (previous_value + fill.price * fill.quantity) / filled
    status = status_after_fill(order.quantity, filled, order.status)
    return evolve(order, filled_quantity=filled, average_fill_price=average, status=status,
                   updated_at=now)


def status_from_report(current: OrderStatus, reported: OrderStatus, filled: Decimal,
                       quantity: Decimal) -> OrderStatus:
    """Merge a broker's status with what the ledger has applied.

    The ledger's own fills decide between acknowledged / partially filled / filled, so an
    order never counts as filled before its fills are in the ledger (which would make the
    trader under-count exposure); a cancel or reject from the broker is final.
    """
    if current.is_terminal:
        return current
    if reported in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
        return OrderStatus.CANCELLED if filled > ZERO else reported
    if filled >= quantity:
        return OrderStatus.FILLED
    if filled > ZERO:
        return OrderStatus.PARTIALLY_FILLED
    return OrderStatus.ACKNOWLEDGED
