"""The venue's pure arithmetic: what an order may be, what it fills at, what it costs.

No state and no I/O: SandboxVenue decides *when* to fill; this module says *how*.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation

from fleetkit.core.instruments import Instrument
from fleetkit.core.ledger import Position, apply_fill
from fleetkit.core.numbers import ZERO, ceil_to_step, floor_to_step
from fleetkit.core.orders import Fill, OrderType, Side
from fleetkit.engine.ports import OrderRequest

from .book import StoredPosition

BPS = Decimal(10_000)
# Fees round up to this step (the venue's favour, like a real one); average prices are kept
# to AVERAGE_PRICE_STEP because a division may not terminate. Both fit NUMERIC(38, 12).
FEE_STEP = Decimal("1e-8")
AVERAGE_PRICE_STEP = Decimal("1e-10")

_ONE = Decimal(1)
# Enum members as module constants: looking one up on its class (through EnumType's
# __getattr__ hook) costs more than the comparison, on the path every order takes.
_BUY, _MARKET = Side.BUY, OrderType.MARKET

PARTIAL_FRACTION_MIN = 0.2
PARTIAL_FRACTION_SPAN = 0.6
PARTIAL_DELAY_MIN_S = 5
PARTIAL_DELAY_SPAN_S = 115  # the rest fills within two minutes of the first part


def is_multiple(value: Decimal, step: Decimal) -> bool:
    try:
        return value % step == 0
    except InvalidOperation:  # quotient too large for the context: absurd, not a multiple
        return False


def order_problem(request: OrderRequest, instrument: Instrument | None) -> str | None:
    """Why the venue can never accept `request`, whatever the market does; None if it can."""
    if instrument is None:
        return f"unknown instrument {request.instrument!r}"
    quantity = request.quantity
    if quantity <= ZERO or not is_multiple(quantity, instrument.lot_size):
        return (f"quantity {quantity} is not a positive multiple of the lot size "
                f"{instrument.lot_size}")
    if instrument.min_quantity is not None and quantity < instrument.min_quantity:
        return f"quantity {quantity} is below the minimum quantity {instrument.min_quantity}"
    return _limit_price_problem(request, instrument.tick_size)


def _limit_price_problem(request: OrderRequest, tick: Decimal) -> str | None:
    price = request.limit_price
    if request.order_type is _MARKET:
        return None if price is None else "a market order takes no limit price"
    if price is None:
        return "a limit order needs a limit price"
    if price <= ZERO:
        return f"limit price {price} is not positive"
    if not is_multiple(price, tick):
        return f"limit price {price} is not a multiple of the tick size {tick}"
    return None


def taker_price(last: Decimal, side: Side, slippage_bps: Decimal, tick: Decimal) -> Decimal:
    """`last` moved by slippage against the taker, rounded to the tick in the taker's
    disfavour: a buy pays up, a sell receives less (never less than one tick)."""
    slip = last * slippage_bps / BPS
    if side is _BUY:
        return ceil_to_step(last + slip, tick)
    return max(floor_to_step(last - slip, tick), tick)


def execution_price(side: Side, order_type: OrderType, limit_price: Decimal | None,
                    last: Decimal, slippage_bps: Decimal, tick: Decimal) -> Decimal | None:
    """What the order fills at against a last trade of `last`, or None if it does not.

    A limit order fills once the last trade reaches its limit, at the better of the slipped
    price and the limit: never worse than the limit.
    """
    price = taker_price(last, side, slippage_bps, tick)
    if order_type is _MARKET or limit_price is None:
        return price
    if side is _BUY:
        return min(price, limit_price) if last <= limit_price else None
    return max(price, limit_price) if last >= limit_price else None


def fee_for(notional: Decimal, fee_bps: Decimal) -> Decimal:
    return (notional * fee_bps / BPS).quantize(FEE_STEP, rounding=ROUND_CEILING)


def cost_to_buy(quantity: Decimal, price: Decimal, fee_bps: Decimal) -> Decimal:
    notional = quantity * price
    return notional + fee_for(notional, fee_bps)


def cash_change(side: Side, notional: Decimal, fee: Decimal) -> Decimal:
    """How a fill moves cash: a buy pays notional and fee, a sell receives notional less fee."""
    return -(notional + fee) if side is _BUY else notional - fee


def position_after(current: StoredPosition | None, fill: Fill) -> StoredPosition:
    """Average-cost accounting (core.ledger's), with the average kept to a fixed precision."""
    before = (Position(fill.instrument) if current is None
              else Position(fill.instrument, current.quantity, current.average_price))
    after = apply_fill(before, fill)
    return StoredPosition(fill.instrument, after.quantity, round_average_price(after.average_price))


def round_average_price(price: Decimal) -> Decimal:
    return plain_decimal(price.quantize(AVERAGE_PRICE_STEP, rounding=ROUND_HALF_EVEN))


def plain_decimal(value: Decimal) -> Decimal:
    """`value` without trailing zeros, but whole numbers stay whole (10, not normalize's 1E+1),
    so the same amount reads the same whichever book it came from."""
    if value == ZERO:
        return ZERO
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(_ONE) if isinstance(exponent, int) and exponent > 0 else normal


@dataclass(frozen=True, slots=True)
class FirstFill:
    """How much of an order fills the first time it can; `rest_delay_s` is set when only
    part of it does, and says how long the rest waits before it may fill."""

    quantity: Decimal
    rest_delay_s: int | None = None


def plan_first_fill(seed: int, account: str, client_order_id: str, quantity: Decimal,
                    lot_size: Decimal, partial_fill_probability: float) -> FirstFill:
    """Decide whether the first fill is partial. Deterministic in (seed, account, client order
    id), so a replay, a restart or a resent order all make the same decision."""
    if partial_fill_probability <= 0.0:
        return FirstFill(quantity)  # backtests: no hashing per order
    lots = int(quantity / lot_size)
    if lots < 2 or _draw(seed, account, client_order_id, "partial") >= partial_fill_probability:
        return FirstFill(quantity)
    fraction = PARTIAL_FRACTION_MIN + PARTIAL_FRACTION_SPAN * _draw(
        seed, account, client_order_id, "fraction")
    now_lots = min(max(int(lots * fraction), 1), lots - 1)
    delay_s = PARTIAL_DELAY_MIN_S + int(
        PARTIAL_DELAY_SPAN_S * _draw(seed, account, client_order_id, "delay"))
    return FirstFill(lot_size * now_lots, delay_s)


def _draw(seed: int, account: str, client_order_id: str, purpose: str) -> float:
    """A uniform number in [0, 1) derived from its inputs alone (no shared RNG state)."""
    material = "\x1f".join((str(seed), account, client_order_id, purpose)).encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64
