"""Derivatives on margin: what an order must have free, and how a fill moves cash.

A derivative's notional never changes hands. A fill moves cash by the P&L it realizes
(average cost, as core.ledger.apply_fill computes it) less its fee; funding and expiry
settlement move it too (settlement.py). Before accepting an order the venue checks initial
margin instead of cash:

    needed    = |position after the order| x order price x margin rate + the order's fee
    available = cash in the instrument's currency
                - margin held by the account's other derivative positions (at their
                  average price) and by its open derivative orders (at their price)

Limits of the model, on purpose: margin is not marked to market (unrealized losses do not
shrink what is available, and nobody is liquidated), and spot buys do not see the margin
that derivatives hold (keeping the spot order path as fast as it was).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal

from fleetkit.core.ledger import Position, apply_fill
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Side

from .book import BookSession, StoredFill, StoredPosition
from .listing import DerivativeSpec
from .matching import FEE_STEP, fee_for, plain_decimal, round_average_price

SpecOf = Callable[[str], DerivativeSpec | None]


def margin_for(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """Initial margin of `quantity` units (signed or not) at `price`, rounded up."""
    return (abs(quantity) * price * rate).quantize(FEE_STEP, rounding=ROUND_CEILING)


def margin_problem(txn: BookSession, account: str, spec: DerivativeSpec, side: Side,
                   quantity: Decimal, price: Decimal, fee_bps: Decimal,
                   spec_of: SpecOf) -> str | None:
    """Why an order of `quantity` units at `price` does not fit the account's margin now;
    None if it does."""
    key, currency = spec.key, spec.instrument.currency
    held = txn.position(account, key)
    after = (held.quantity if held is not None else ZERO) + (
        quantity if side is Side.BUY else -quantity)
    needed = margin_for(after, price, spec.margin_rate) + fee_for(quantity * price, fee_bps)
    in_use = ZERO
    for position in txn.positions(account):
        other = spec_of(position.instrument) if position.instrument != key else None
        if other is not None and other.instrument.currency == currency:
            in_use += margin_for(position.quantity, position.average_price, other.margin_rate)
    for order in txn.open_orders(account):
        other = spec_of(order.instrument)
        if (other is not None and other.instrument.currency == currency
                and order.reserve_price is not None):
            in_use += margin_for(order.remaining, order.reserve_price, other.margin_rate)
    available = txn.balances(account).get(currency, ZERO) - in_use
    if needed <= available:
        return None
    return (f"insufficient margin: needs {plain_decimal(needed)} {currency}, "
            f"{plain_decimal(available)} available")


def book_derivative_fill(txn: BookSession, fill: StoredFill, currency: str) -> StoredFill:
    """Book a derivative's fill in `txn`: the fill row, the position, and cash moved by the
    realized P&L less the fee (never by the notional)."""
    stored = txn.insert_fill(fill)
    held = txn.position(fill.account, fill.instrument)
    position, realized = position_and_realized(held, stored)
    cash = txn.balances(fill.account).get(currency, ZERO)
    txn.set_balance(fill.account, currency, plain_decimal(cash + realized - fill.fee))
    txn.set_position(fill.account, position)
    return stored


def position_and_realized(current: StoredPosition | None, fill: StoredFill
                          ) -> tuple[StoredPosition, Decimal]:
    """The position after `fill` (average cost, the average kept to a fixed precision) and
    the P&L the fill realized."""
    before = (Position(fill.instrument) if current is None
              else Position(fill.instrument, current.quantity, current.average_price))
    after = apply_fill(before, fill.to_fill())
    return (StoredPosition(fill.instrument, after.quantity,
                           round_average_price(after.average_price)),
            after.realized_pnl)
