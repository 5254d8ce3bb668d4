"""Positions and P&L derived from fills: average-cost accounting, pure, in Decimal.

Exact to Decimal's 28 significant digits: an average price can be a repeating fraction
(1/3), so a realized figure may differ from a cash-flow computation in the last digit.

Realized P&L is gross of fees; fees accumulate separately so both can be reported.
Net P&L = realized + unrealized - fees.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
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


_ONE, _MINUS_ONE = Decimal(1), Decimal(-1)


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
    direction = _ONE if qty > ZERO else _MINUS_ONE
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


@dataclass(frozen=True, slots=True)
class FillChecks:
    """How far a broker's fill may stray before we refuse to believe it.

    `market_price_tolerance_pct`: a market order's fill price may differ from the order's
    reference price (what it was decided on) by at most this percentage; a limit order's fill
    must be at its limit or better, exactly. `max_fee_pct`: a fee above this percentage of the
    fill's notional is refused (a venue charging 1% is extreme; a fee x10^6 is a lie).
    """

    market_price_tolerance_pct: Decimal = Decimal(5)
    max_fee_pct: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if self.market_price_tolerance_pct <= ZERO or self.max_fee_pct < ZERO:
            raise ValueError("fill tolerances must be positive")


DEFAULT_FILL_CHECKS = FillChecks()
_HUNDRED = Decimal(100)


def fill_refusal(order: Order | None, fill: Fill,
                 checks: FillChecks = DEFAULT_FILL_CHECKS) -> str | None:
    """Why a broker fill must not be applied to this order, or None if it may.

    The broker is the source of truth for what happened, not a licence to write any number
    into the ledger: a fill must be the order's (instrument, side, no overfill), finite and
    positive, priced as the order allows and charged a plausible fee.
    """
    if order is None:
        return f"no order with client id {fill.client_order_id!r} belongs to this bot"
    return (_identity_refusal(order, fill) or _price_refusal(order, fill, checks)
            or _fee_refusal(fill, checks))


def _identity_refusal(order: Order, fill: Fill) -> str | None:
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


def _price_refusal(order: Order, fill: Fill, checks: FillChecks) -> str | None:
    if order.limit_price is not None:
        worse = (fill.price > order.limit_price if order.side.sign > 0
                 else fill.price < order.limit_price)
        if worse:
            return (f"fill {fill.broker_fill_id} at {fill.price} is worse than the {order.side} "
                    f"limit {order.limit_price} of order {order.client_order_id}")
        return None
    reference = order.reference_price
    if reference is None or reference <= ZERO:
        return None  # adopted from the broker: nothing of ours to judge the price by
    off_pct = abs(fill.price - reference) / reference * _HUNDRED
    if off_pct > checks.market_price_tolerance_pct:
        return (f"fill {fill.broker_fill_id} at {fill.price} is {off_pct:.2f}% from the "
                f"reference price {reference} of market order {order.client_order_id} "
                f"(tolerance {checks.market_price_tolerance_pct}%)")
    return None


def _fee_refusal(fill: Fill, checks: FillChecks) -> str | None:
    if fill.fee > fill.notional * checks.max_fee_pct / _HUNDRED:
        return (f"fill {fill.broker_fill_id} charges a fee of {fill.fee} on a notional of "
                f"{fill.notional} (more than {checks.max_fee_pct}%)")
    return None


def fill_contents_differ(stored: Fill, reported: Fill) -> list[str]:
    """What a broker changed in a fill it reported before under the same fill id: names of
    the fields whose values differ (empty when it is a plain repeat)."""
    changed = []
    for name in ("client_order_id", "instrument", "side", "quantity", "price", "fee"):
        if getattr(stored, name) != getattr(reported, name):
            changed.append(name)
    return changed


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
    if reported is _CANCELLED or reported is _REJECTED:
        return _CANCELLED if filled > ZERO else reported
    if filled >= quantity:
        return _FILLED
    if filled > ZERO:
        return _PARTIALLY_FILLED
    return _ACKNOWLEDGED


# Enum members as module constants: looking one up on its class (through EnumType's
# __getattr__ hook) costs more than the comparison, on the path every order takes.
_ACKNOWLEDGED, _FILLED = OrderStatus.ACKNOWLEDGED, OrderStatus.FILLED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_CANCELLED, _REJECTED = OrderStatus.CANCELLED, OrderStatus.REJECTED


def cash_flow(position: Position, *, margined: bool = False) -> Decimal:
    """The cash the fills behind `position` moved (negative: spent), from the position alone:
    realized P&L less fees less what the open quantity cost. Exact for average-cost
    accounting (a buy of 1 @ 100 with a fee of 0.1 moved -100.1). A `margined` position (a
    future, a perpetual) never pays its notional: only its realized P&L (funding included)
    and its fees move cash; the open quantity's P&L is margin's, not cash's, until closed."""
    if margined:
        return position.realized_pnl - position.fees
    return position.realized_pnl - position.fees - position.quantity * position.average_price


def cash_flows(positions: Iterable[Position], currencies: Mapping[str, str],
               margined: Collection[str] = ()) -> dict[str, Decimal]:
    """Cash moved per currency by every position whose instrument's currency is known;
    `margined`: the instruments traded on margin (see cash_flow)."""
    flows: dict[str, Decimal] = {currency: ZERO for currency in currencies.values()}
    for position in positions:
        currency = currencies.get(position.instrument)
        if currency is not None:
            flows[currency] += cash_flow(position,
                                         margined=position.instrument in margined)
    return flows
