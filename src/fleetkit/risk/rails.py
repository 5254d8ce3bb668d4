"""Pre-trade risk rails: one pure function decides whether an order may leave.

Nothing here does I/O. The engine gathers a RiskContext (controls read fresh from the
database, a fresh quote from the broker, the ledger position, today's P&L) and asks
`check_order`. Every denial carries a reason code and a sentence for the operator; a
denial that must stop the bot (the daily-loss breaker) also says which scope to halt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from fleetkit.core.controls import Controls, TradingState
from fleetkit.core.ledger import FillChecks
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import OrderIntent

# A quote stamped slightly ahead of our clock is clock skew; far ahead is a broken feed.
FUTURE_TOLERANCE_S = 5.0


class DenialReason(StrEnum):
    FLEET_HALTED = "fleet_halted"
    BOT_HALTED = "bot_halted"
    REDUCE_ONLY = "reduce_only"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    STALE_PRICE = "stale_price"
    PRICE_COLLAR = "price_collar"
    MAX_ORDER_VALUE = "max_order_value"
    MAX_POSITION = "max_position"
    DAILY_LOSS_BOT = "daily_loss_bot"
    DAILY_LOSS_FLEET = "daily_loss_fleet"


class HaltScope(StrEnum):
    BOT = "bot"
    FLEET = "fleet"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-bot limits. Values in USD are converted with the fleet's reference FX rates.

    None disables a limit (only allowed where the config says so explicitly).
    """

    max_order_value_usd: Decimal
    max_position_value_usd: Decimal
    price_collar_pct: Decimal
    max_price_age_s: float
    daily_loss_limit_usd: Decimal | None
    fleet_daily_loss_limit_usd: Decimal | None
    # How far a broker's fill may stray (core.ledger.FillChecks); None: the price collar.
    fill_price_tolerance_pct: Decimal | None = None
    max_fee_pct: Decimal = Decimal(1)

    @property
    def fill_checks(self) -> FillChecks:
        tolerance = self.fill_price_tolerance_pct or self.price_collar_pct
        return FillChecks(market_price_tolerance_pct=tolerance, max_fee_pct=self.max_fee_pct)

    def __post_init__(self) -> None:
        for name in ("max_order_value_usd", "max_position_value_usd", "price_collar_pct"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_price_age_s <= 0:
            raise ValueError("max_price_age_s must be positive")
        for name in ("daily_loss_limit_usd", "fleet_daily_loss_limit_usd"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class RiskContext:
    """Everything the rails look at, gathered just before the order would be written.

    `open_quantity` is the signed net quantity of this bot's orders in the instrument that
    could still fill. `open_buy_quantity` and `open_sell_quantity` (both >= 0) are the two
    sides apart: max position assumes every same-side order fills and none of the opposite
    side does, so an in-flight sell that may yet be cancelled never makes room for a buy.
    When they are not given they are derived from the net figure.
    Daily P&L figures are in USD; a loss is negative.
    """

    controls: Controls
    now: datetime
    last_price: Decimal | None
    last_price_ts: datetime | None
    position_quantity: Decimal
    open_quantity: Decimal
    usd_per_unit: Decimal
    bot_daily_pnl_usd: Decimal
    fleet_daily_pnl_usd: Decimal
    open_buy_quantity: Decimal | None = None
    open_sell_quantity: Decimal | None = None

    @property
    def open_buys(self) -> Decimal:
        if self.open_buy_quantity is not None:
            return self.open_buy_quantity
        return max(self.open_quantity, ZERO)

    @property
    def open_sells(self) -> Decimal:
        if self.open_sell_quantity is not None:
            return self.open_sell_quantity
        return max(-self.open_quantity, ZERO)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: DenialReason | None = None
    detail: str = ""
    halt: HaltScope | None = None

    @classmethod
    def allow(cls) -> Decision:
        return _ALLOW if cls is Decision else cls(True)

    @classmethod
    def deny(cls, reason: DenialReason, detail: str, halt: HaltScope | None = None) -> Decision:
        return cls(False, reason, detail, halt)


_ALLOW = Decision(True)
_HALTED, _REDUCING = TradingState.HALTED, TradingState.REDUCING


def check_order(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision:
    """Run every rail in order of severity; the first that says no decides."""
    for rail in _RAILS:
        decision = rail(intent, ctx, limits)
        if decision is not None:
            return decision
    return Decision.allow()


def _reduces_position(intent: OrderIntent, ctx: RiskContext) -> bool:
    if not intent.quantity.is_finite():
        return False  # comparing a NaN raises; such an order never reduces (and is denied)
    exposure = ctx.position_quantity + ctx.open_quantity
    after = exposure + intent.signed_quantity
    return exposure != ZERO and abs(after) <= abs(exposure) and (after == ZERO or
                                                                 (after > 0) == (exposure > 0))


def _kill_switch(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    fleet, bot = ctx.controls.fleet, ctx.controls.bot
    if fleet.state is _HALTED:
        return Decision.deny(DenialReason.FLEET_HALTED, f"fleet halted: {fleet.reason}")
    if bot.state is _HALTED:
        return Decision.deny(DenialReason.BOT_HALTED, f"bot halted: {bot.reason}")
    reducing = fleet.state is _REDUCING or bot.state is _REDUCING
    if reducing and not _reduces_position(intent, ctx):
        reason = fleet.reason if fleet.state is _REDUCING else bot.reason
        return Decision.deny(DenialReason.REDUCE_ONLY,
                             f"reduce-only ({reason}): order would not shrink the position")
    return None


def _quantity(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    if not intent.quantity.is_finite() or intent.quantity <= ZERO:
        return Decision.deny(DenialReason.INVALID_QUANTITY,
                             f"order quantity {intent.quantity} is not a positive number")
    return None


def _price_sanity(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    price = ctx.last_price
    if price is None or not price.is_finite() or price <= ZERO:
        return Decision.deny(DenialReason.INVALID_PRICE,
                             f"last price {price} is not a positive finite number")
    own = intent.price_for_checks
    if not own.is_finite() or own <= ZERO:
        return Decision.deny(DenialReason.INVALID_PRICE,
                             f"order price {own} is not a positive finite number")
    if ctx.last_price_ts is None:
        return Decision.deny(DenialReason.STALE_PRICE, "last price has no timestamp")
    age_s = (ctx.now - ctx.last_price_ts).total_seconds()
    if age_s < -FUTURE_TOLERANCE_S:
        return Decision.deny(DenialReason.STALE_PRICE,
                             f"last price is stamped {-age_s:.0f}s in the future: clocks disagree")
    if age_s > limits.max_price_age_s:
        return Decision.deny(DenialReason.STALE_PRICE,
                             f"last price is {age_s:.0f}s old (limit {limits.max_price_age_s:g}s)")
    return None


def _collar(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    last = ctx.last_price
    if last is None:
        return None  # _price_sanity, which runs first, has denied it already
    deviation_pct = abs(intent.price_for_checks - last) / last * 100
    if deviation_pct > limits.price_collar_pct:
        return Decision.deny(
            DenialReason.PRICE_COLLAR,
            f"order price {intent.price_for_checks} is {deviation_pct:.2f}% from last trade "
            f"{last} (collar {limits.price_collar_pct}%)",
        )
    return None


def _order_value(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    if ctx.last_price is None:
        return None  # denied by _price_sanity
    # The worse of our price and the market's: a market order fills near the last trade.
    price = max(intent.price_for_checks, ctx.last_price)
    value_usd = intent.quantity * price * ctx.usd_per_unit
    limit = limits.max_order_value_usd
    if value_usd > limit:
        return Decision.deny(DenialReason.MAX_ORDER_VALUE,
                             f"order value ${value_usd:,.2f} exceeds ${limit:,}")
    return None


def _position(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    if ctx.last_price is None:
        return None
    # Worst case on this order's side: every same-side order in flight fills, none of the
    # other side does. An order that leaves that worst case no further from flat is allowed.
    if intent.side.sign > 0:
        before = ctx.position_quantity + ctx.open_buys
    else:
        before = ctx.position_quantity - ctx.open_sells
    after = before + intent.signed_quantity
    if abs(after) <= abs(before):
        return None
    price = max(intent.price_for_checks, ctx.last_price)
    value_usd = abs(after) * price * ctx.usd_per_unit
    if value_usd > limits.max_position_value_usd:
        return Decision.deny(
            DenialReason.MAX_POSITION,
            f"position after fill ${value_usd:,.2f} exceeds ${limits.max_position_value_usd:,}",
        )
    return None


def _daily_loss(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> Decision | None:
    breach = daily_loss_breach(ctx.bot_daily_pnl_usd, ctx.fleet_daily_pnl_usd, limits)
    if breach is None:
        return None
    scope, detail = breach
    reason = (DenialReason.DAILY_LOSS_FLEET if scope is HaltScope.FLEET
              else DenialReason.DAILY_LOSS_BOT)
    return Decision.deny(reason, detail, halt=scope)


def daily_loss_breach(bot_pnl_usd: Decimal, fleet_pnl_usd: Decimal,
                      limits: RiskLimits) -> tuple[HaltScope, str] | None:
    """The circuit breaker on its own, so the runner can trip it between orders too."""
    fleet_limit = limits.fleet_daily_loss_limit_usd
    if fleet_limit is not None and fleet_pnl_usd <= -fleet_limit:
        return HaltScope.FLEET, (f"fleet daily loss ${-fleet_pnl_usd:,.2f} reached the limit "
                                 f"${fleet_limit:,}")
    bot_limit = limits.daily_loss_limit_usd
    if bot_limit is not None and bot_pnl_usd <= -bot_limit:
        return HaltScope.BOT, f"daily loss ${-bot_pnl_usd:,.2f} reached the limit ${bot_limit:,}"
    return None


_RAILS = (_kill_switch, _quantity, _price_sanity, _daily_loss, _collar, _order_value, _position)
