"""Trader: turns a signal into a target position and the order that moves toward it.

The trader acts on changes of signal, not on every bar: while the signal says the same
thing it leaves the position alone (no churn as prices drift), and an order that was
denied or rejected is not retried until the signal changes (no spam). A level signal
sizes the target from the bot's position size at the price of the bar it changed on;
a target-quantity signal is taken as is. The last signal acted on is persisted, so a
restart neither repeats nor forgets a decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fleetkit.core.instruments import Instrument
from fleetkit.core.numbers import ZERO, to_decimal
from fleetkit.core.orders import OrderIntent, OrderType, Side
from fleetkit.core.signals import Signal, SignalLevel

_THIRDS = Decimal(3)
_HOLD = SignalLevel.HOLD
_LIMIT = OrderType.LIMIT


@dataclass(frozen=True, slots=True)
class Sizing:
    """How big a full position is, and how orders are priced.

    `limit_offset_bps` > 0 sends limit orders that far through the reference price
    (a marketable limit); 0 sends market orders.
    """

    position_size_usd: Decimal
    usd_per_unit: Decimal
    allow_short: bool = False
    order_type: OrderType = OrderType.MARKET
    limit_offset_bps: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.position_size_usd <= 0 or self.usd_per_unit <= 0:
            raise ValueError("position_size_usd and usd_per_unit must be positive")


SignalKey = int | str
"""A signal reduced to what matters for "did it change": the level, or "q:<quantity>"."""


def signal_key(signal: Signal) -> SignalKey:
    if signal.level is not None:
        return int(signal.level)
    return f"q:{signal.target_quantity}"


@dataclass(frozen=True, slots=True)
class TradeDecision:
    """`changed` is False when the signal matched the last one acted on (nothing to do)."""

    changed: bool
    key: SignalKey | None = None
    target: Decimal | None = None
    intent: OrderIntent | None = None


_UNCHANGED = TradeDecision(False)


class Trader:
    __slots__ = ("_instrument", "_sizing")

    def __init__(self, instrument: Instrument, sizing: Sizing) -> None:
        self._instrument = instrument
        self._sizing = sizing

    @property
    def sizing(self) -> Sizing:
        return self._sizing

    def target_for(self, signal: Signal, price: Decimal) -> Decimal | None:
        """The position the signal asks for, in whole lots; None means "no change"."""
        if signal.target_quantity is not None:
            target = signal.target_quantity
        elif signal.level is None or signal.level is _HOLD:
            return None
        else:
            # One division: level/3 computed first rounds 1/3 down, so a target of exactly
            # 100 lots came out as 99.99... and floored a whole lot short.
            sizing = self._sizing
            target = (Decimal(int(signal.level)) * sizing.position_size_usd
                      / (_THIRDS * sizing.usd_per_unit * price))
        if target < ZERO and not self._sizing.allow_short:
            target = ZERO
        return self._instrument.lots_toward_zero(target)

    def decide(self, signal: Signal | None, reference_price: float, position: Decimal,
               open_quantity: Decimal, last_key: SignalKey | None) -> TradeDecision:
        """If the signal differs from the last one acted on, size its target and order the
        difference. `open_quantity` is the signed remainder of orders that may still fill,
        so a new target never double-counts an order already in flight.
        """
        if signal is None:
            return _UNCHANGED
        level = signal.level
        if level is _HOLD:
            return _UNCHANGED
        # An IntEnum level compares equal to the int it was persisted as.
        if (level if level is not None else signal_key(signal)) == last_key:
            return _UNCHANGED  # the hot path of a backtest: no Decimal math at all
        key = int(level) if level is not None else signal_key(signal)
        price = to_decimal(reference_price, what="reference price")
        if price <= ZERO:
            return _UNCHANGED
        target = self.target_for(signal, price)
        if target is None:
            return _UNCHANGED
        delta = self._instrument.lots_toward_zero(target - position - open_quantity)
        if abs(delta) < self._instrument.smallest_quantity:
            return TradeDecision(True, key, target, None)
        return TradeDecision(True, key, target, self._intent(delta, price, signal.note))

    def exit_intent(self, position: Decimal, open_quantity: Decimal, reference_price: float,
                    reason: str) -> OrderIntent | None:
        """A market order closing `position` (less what is already on its way out), for a
        protective exit; None when nothing is left to close."""
        delta = self._instrument.lots_toward_zero(-position - open_quantity)
        if abs(delta) < self._instrument.smallest_quantity or (delta > 0) == (position > 0):
            return None
        price = self._instrument.round_price(to_decimal(reference_price,
                                                        what="reference price"))
        return OrderIntent(self._instrument.key, Side.for_delta(delta), abs(delta),
                           OrderType.MARKET, price, None, reason)

    def _intent(self, delta: Decimal, price: Decimal, note: str) -> OrderIntent:
        side = Side.for_delta(delta)
        sizing = self._sizing
        limit_price: Decimal | None = None
        if sizing.order_type is _LIMIT:
            offset = price * sizing.limit_offset_bps / Decimal(10_000)
            limit_price = self._instrument.round_price(price + offset * side.sign)
        return OrderIntent(self._instrument.key, side, abs(delta), sizing.order_type,
                           self._instrument.round_price(price), limit_price, note)
