"""Risk rails: every denial by a minimal case, precedence, boundaries, and a reference model
that `check_order` must never out-permit."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.controls import Control, Controls, HaltSource, TradingState
from fleetkit.core.orders import OrderIntent, OrderType, Side
from fleetkit.risk.rails import (
    Decision,
    DenialReason,
    HaltScope,
    RiskContext,
    RiskLimits,
    check_order,
    daily_loss_breach,
)

R = DenialReason
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
T = TypeVar("T")
PROPERTY = settings(max_examples=300, deadline=None, database=None)
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
LIMITS = RiskLimits(
    max_order_value_usd=Decimal(10_000),
    max_position_value_usd=Decimal(20_000),
    price_collar_pct=Decimal(5),
    max_price_age_s=60.0,
    daily_loss_limit_usd=Decimal(1_000),
    fleet_daily_loss_limit_usd=Decimal(5_000),
)


def controls(fleet: TradingState = ACTIVE, bot: TradingState = ACTIVE, *,
             fleet_reason: str = "fleet reason", bot_reason: str = "bot reason") -> Controls:
    return Controls(fleet=Control(fleet, fleet_reason, HaltSource.OPERATOR),
                    bot=Control(bot, bot_reason, HaltSource.OPERATOR))


def context(*, fleet: TradingState = ACTIVE, bot: TradingState = ACTIVE,
            last_price: str | None = "100", age_s: float | None = 0, position: str = "0",
            open_quantity: str = "0", usd_per_unit: str = "1", bot_pnl: str = "0",
            fleet_pnl: str = "0") -> RiskContext:
    return RiskContext(
        controls=controls(fleet, bot),
        now=T0,
        last_price=None if last_price is None else Decimal(last_price),
        last_price_ts=None if age_s is None else T0 - timedelta(seconds=age_s),
        position_quantity=Decimal(position),
        open_quantity=Decimal(open_quantity),
        usd_per_unit=Decimal(usd_per_unit),
        bot_daily_pnl_usd=Decimal(bot_pnl),
        fleet_daily_pnl_usd=Decimal(fleet_pnl),
    )


def buy(quantity: str = "10", limit: str | None = None, reference: str = "100") -> OrderIntent:
    return order(Side.BUY, quantity, limit, reference)


def sell(quantity: str = "10", limit: str | None = None, reference: str = "100") -> OrderIntent:
    return order(Side.SELL, quantity, limit, reference)


def order(side: Side, quantity: str, limit: str | None, reference: str) -> OrderIntent:
    return OrderIntent(
        instrument="NYSE:AAPL", side=side, quantity=Decimal(quantity),
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        reference_price=Decimal(reference),
        limit_price=None if limit is None else Decimal(limit),
    )


def denied(decision: Decision, reason: DenialReason) -> bool:
    return not decision.allowed and decision.reason is reason


# --- the happy path ----------------------------------------------------------------------


def test_an_ordinary_order_is_allowed() -> None:
    decision = check_order(buy(), context(), LIMITS)
    assert decision == Decision.allow()
    assert (decision.allowed, decision.reason, decision.halt) == (True, None, None)


# --- each denial by a minimal case -------------------------------------------------------


def test_order_denied_when_fleet_halted() -> None:
    decision = check_order(buy(), context(fleet=HALTED), LIMITS)
    assert denied(decision, R.FLEET_HALTED)
    assert decision.detail == "fleet halted: fleet reason"
    assert decision.halt is None


def test_order_denied_when_bot_halted() -> None:
    decision = check_order(buy(), context(bot=HALTED), LIMITS)
    assert denied(decision, R.BOT_HALTED)
    assert decision.detail == "bot halted: bot reason"


def test_growing_order_denied_when_bot_is_reduce_only() -> None:
    decision = check_order(buy(), context(bot=REDUCING, position="5"), LIMITS)
    assert denied(decision, R.REDUCE_ONLY)
    assert "reduce-only (bot reason)" in decision.detail
    assert "would not shrink the position" in decision.detail


def test_reduce_only_detail_names_the_fleet_reason_when_the_fleet_is_reducing() -> None:
    decision = check_order(buy(), context(fleet=REDUCING, bot=REDUCING, position="5"), LIMITS)
    assert denied(decision, R.REDUCE_ONLY)
    assert "reduce-only (fleet reason)" in decision.detail


@pytest.mark.parametrize("quantity", ["0", "-1", "NaN", "Infinity"])
def test_order_denied_for_a_quantity_that_is_not_a_positive_number(quantity: str) -> None:
    decision = check_order(buy(quantity), context(), LIMITS)
    assert denied(decision, R.INVALID_QUANTITY)
    assert f"order quantity {Decimal(quantity)} is not a positive number" == decision.detail


@pytest.mark.parametrize("quantity", ["0", "-1", "NaN", "Infinity"])
@pytest.mark.parametrize("state", [REDUCING, ACTIVE])
def test_invalid_quantity_never_raises_whatever_the_trading_state(quantity: str,
                                                                  state: TradingState) -> None:
    decision = check_order(sell(quantity), context(bot=state, position="5"), LIMITS)
    assert not decision.allowed
    assert decision.reason in (R.INVALID_QUANTITY, R.REDUCE_ONLY)


@pytest.mark.parametrize("last_price", [None, "0", "-1", "NaN", "Infinity"])
def test_order_denied_when_the_last_price_is_not_usable(last_price: str | None) -> None:
    decision = check_order(buy(), context(last_price=last_price), LIMITS)
    assert denied(decision, R.INVALID_PRICE)
    assert decision.detail.startswith("last price")


@pytest.mark.parametrize("limit", ["0", "-5", "NaN"])
def test_order_denied_when_its_own_limit_price_is_not_usable(limit: str) -> None:
    decision = check_order(buy(limit=limit), context(), LIMITS)
    assert denied(decision, R.INVALID_PRICE)
    assert decision.detail.startswith("order price")


def test_market_order_denied_when_its_reference_price_is_not_usable() -> None:
    decision = check_order(buy(reference="0"), context(), LIMITS)
    assert denied(decision, R.INVALID_PRICE)


def test_order_denied_when_the_last_price_has_no_timestamp() -> None:
    decision = check_order(buy(), context(age_s=None), LIMITS)
    assert denied(decision, R.STALE_PRICE)
    assert decision.detail == "last price has no timestamp"


def test_order_denied_when_the_last_price_is_stale() -> None:
    decision = check_order(buy(), context(age_s=61), LIMITS)
    assert denied(decision, R.STALE_PRICE)
    assert decision.detail == "last price is 61s old (limit 60s)"


def test_order_denied_outside_the_price_collar() -> None:
    decision = check_order(buy(limit="106"), context(), LIMITS)
    assert denied(decision, R.PRICE_COLLAR)
    assert decision.detail == "order price 106 is 6.00% from last trade 100 (collar 5%)"


def test_order_denied_above_max_order_value() -> None:
    decision = check_order(buy("101"), context(), LIMITS)
    assert denied(decision, R.MAX_ORDER_VALUE)
    assert decision.detail == "order value $10,100.00 exceeds $10,000"


def test_order_denied_above_max_position_value() -> None:
    decision = check_order(buy("60"), context(position="150"), LIMITS)
    assert denied(decision, R.MAX_POSITION)
    assert decision.detail == "position after fill $21,000.00 exceeds $20,000"


def test_order_denied_and_bot_halted_at_the_bot_daily_loss_limit() -> None:
    decision = check_order(buy(), context(bot_pnl="-1000"), LIMITS)
    assert denied(decision, R.DAILY_LOSS_BOT)
    assert decision.halt is HaltScope.BOT
    assert decision.detail == "daily loss $1,000.00 reached the limit $1,000"


def test_order_denied_and_fleet_halted_at_the_fleet_daily_loss_limit() -> None:
    decision = check_order(buy(), context(fleet_pnl="-5000"), LIMITS)
    assert denied(decision, R.DAILY_LOSS_FLEET)
    assert decision.halt is HaltScope.FLEET
    assert decision.detail == "fleet daily loss $5,000.00 reached the limit $5,000"


def test_only_the_daily_loss_breaker_asks_for_a_halt() -> None:
    cases = [context(fleet=HALTED), context(bot=HALTED), context(age_s=None),
             context(last_price=None), context(position="190")]
    for ctx in cases:
        decision = check_order(buy("50"), ctx, LIMITS)
        assert not decision.allowed
        assert decision.halt is None


# --- precedence --------------------------------------------------------------------------

def everything_wrong(fleet: TradingState, bot: TradingState) -> RiskContext:
    """A context that breaks every other rail too: no price time, huge losses and position."""
    return context(fleet=fleet, bot=bot, age_s=None, bot_pnl="-99999", fleet_pnl="-99999",
                   position="10000")


def test_bot_halt_beats_every_other_problem() -> None:
    decision = check_order(buy("NaN"), everything_wrong(ACTIVE, HALTED), LIMITS)
    assert denied(decision, R.BOT_HALTED)


def test_fleet_halt_beats_bot_halt() -> None:
    decision = check_order(buy(), context(fleet=HALTED, bot=HALTED), LIMITS)
    assert denied(decision, R.FLEET_HALTED)


def test_fleet_halt_beats_every_other_problem() -> None:
    decision = check_order(buy("-3"), everything_wrong(HALTED, REDUCING), LIMITS)
    assert denied(decision, R.FLEET_HALTED)


def test_bot_halt_beats_fleet_reduce_only() -> None:
    decision = check_order(buy(), context(fleet=REDUCING, bot=HALTED), LIMITS)
    assert denied(decision, R.BOT_HALTED)


def test_fleet_daily_loss_beats_bot_daily_loss() -> None:
    decision = check_order(buy(), context(bot_pnl="-2000", fleet_pnl="-6000"), LIMITS)
    assert denied(decision, R.DAILY_LOSS_FLEET)
    assert decision.halt is HaltScope.FLEET


def test_daily_loss_beats_collar_order_value_and_position() -> None:
    decision = check_order(buy("500", limit="200"), context(bot_pnl="-1000", position="1000"),
                           LIMITS)
    assert denied(decision, R.DAILY_LOSS_BOT)


def test_daily_loss_stops_even_a_reducing_order() -> None:
    decision = check_order(sell("5"), context(position="10", bot_pnl="-1500"), LIMITS)
    assert denied(decision, R.DAILY_LOSS_BOT)


def test_stale_price_beats_daily_loss() -> None:
    decision = check_order(buy(), context(age_s=999, bot_pnl="-1500"), LIMITS)
    assert denied(decision, R.STALE_PRICE)


def test_collar_beats_order_value_and_order_value_beats_position() -> None:
    assert denied(check_order(buy("500", limit="200"), context(), LIMITS), R.PRICE_COLLAR)
    assert denied(check_order(buy("500"), context(position="1000"), LIMITS), R.MAX_ORDER_VALUE)


# --- reduce-only -------------------------------------------------------------------------


@pytest.mark.parametrize(("position", "intent"), [
    ("10", sell("5")),    # shrinks a long
    ("10", sell("10")),   # closes a long
    ("-10", buy("4")),    # shrinks a short
    ("-10", buy("10")),   # closes a short
])
def test_reduce_only_lets_shrinking_orders_through(position: str, intent: OrderIntent) -> None:
    assert check_order(intent, context(bot=REDUCING, position=position), LIMITS).allowed
    assert check_order(intent, context(fleet=REDUCING, position=position), LIMITS).allowed


@pytest.mark.parametrize(("position", "intent"), [
    ("10", buy("1")),     # grows a long
    ("10", sell("15")),   # flips a long into a short
    ("-10", sell("1")),   # grows a short
    ("-10", buy("11")),   # flips a short into a long
    ("0", buy("1")),      # opens from flat
    ("0", sell("1")),
])
def test_reduce_only_blocks_growing_and_flipping_orders(position: str,
                                                        intent: OrderIntent) -> None:
    decision = check_order(intent, context(bot=REDUCING, position=position), LIMITS)
    assert denied(decision, R.REDUCE_ONLY)


def test_reduce_only_counts_orders_already_in_flight() -> None:
    # Long 10 with a sell of 10 in flight: another sell would flip the position short.
    ctx = context(bot=REDUCING, position="10", open_quantity="-10")
    assert denied(check_order(sell("5"), ctx, LIMITS), R.REDUCE_ONLY)
    ctx = context(bot=REDUCING, position="10", open_quantity="-6")
    assert check_order(sell("4"), ctx, LIMITS).allowed
    assert denied(check_order(sell("5"), ctx, LIMITS), R.REDUCE_ONLY)


# --- boundaries --------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["105", "95"])
def test_price_exactly_at_the_collar_is_allowed(limit: str) -> None:
    assert check_order(buy("1", limit=limit), context(), LIMITS).allowed


@pytest.mark.parametrize("limit", ["105.01", "94.99"])
def test_price_just_outside_the_collar_is_denied(limit: str) -> None:
    assert denied(check_order(buy("1", limit=limit), context(), LIMITS), R.PRICE_COLLAR)


def test_market_order_is_collared_on_its_reference_price() -> None:
    assert check_order(buy("1", reference="105"), context(), LIMITS).allowed
    assert denied(check_order(buy("1", reference="105.01"), context(), LIMITS), R.PRICE_COLLAR)


def test_collar_boundary_holds_at_prices_that_do_not_divide_evenly() -> None:
    # 7 * 1.05 = 7.35: exact in decimal, so the boundary must be exact too.
    assert check_order(buy("1", limit="7.35"), context(last_price="7"), LIMITS).allowed
    assert denied(check_order(buy("1", limit="7.3501"), context(last_price="7"), LIMITS),
                  R.PRICE_COLLAR)


def test_price_exactly_at_the_age_limit_is_fresh() -> None:
    assert check_order(buy(), context(age_s=60), LIMITS).allowed


def test_price_a_millisecond_past_the_age_limit_is_stale() -> None:
    assert denied(check_order(buy(), context(age_s=60.001), LIMITS), R.STALE_PRICE)


def test_order_value_exactly_at_the_limit_is_allowed() -> None:
    assert check_order(buy("100"), context(), LIMITS).allowed


def test_max_order_value_uses_the_last_price_when_it_is_higher_than_the_order_price() -> None:
    # Sell limit at 96 while the market trades at 100: 101 x 96 = 9,696 but 101 x 100 = 10,100.
    assert check_order(sell("100", limit="96"), context(), LIMITS).allowed
    assert denied(check_order(sell("101", limit="96"), context(), LIMITS), R.MAX_ORDER_VALUE)


def test_max_order_value_uses_the_order_price_when_it_is_higher_than_the_last() -> None:
    # Buy limit at 104: 96 x 104 = 9,984 fits, 97 x 104 = 10,088 does not.
    assert check_order(buy("96", limit="104"), context(), LIMITS).allowed
    assert denied(check_order(buy("97", limit="104"), context(), LIMITS), R.MAX_ORDER_VALUE)


def test_max_order_value_converts_to_usd() -> None:
    # 600 shares at 2,500 JPY is 1.5M JPY = 9,900 USD at 0.0066; 700 is 11,550 USD.
    ctx = context(last_price="2500", usd_per_unit="0.0066")
    assert check_order(buy("600", reference="2500"), ctx, LIMITS).allowed
    assert denied(check_order(buy("700", reference="2500"), ctx, LIMITS), R.MAX_ORDER_VALUE)


def test_position_exactly_at_the_limit_is_allowed() -> None:
    assert check_order(buy("50"), context(position="150"), LIMITS).allowed


def test_max_position_counts_orders_in_flight() -> None:
    assert check_order(buy("10"), context(position="150", open_quantity="40"), LIMITS).allowed
    decision = check_order(buy("20"), context(position="150", open_quantity="40"), LIMITS)
    assert denied(decision, R.MAX_POSITION)


def test_max_position_applies_to_shorts() -> None:
    assert denied(check_order(sell("60"), context(position="-150"), LIMITS), R.MAX_POSITION)


def test_max_position_lets_a_reducing_order_through_even_when_over_the_limit() -> None:
    assert check_order(sell("10"), context(position="300"), LIMITS).allowed
    assert check_order(buy("10"), context(position="-300"), LIMITS).allowed


def test_max_position_judges_a_flip_by_the_position_it_lands_on() -> None:
    big_orders = replace(LIMITS, max_order_value_usd=Decimal(100_000))
    # Long 150 selling 300 lands short 150 ($15,000): within the limit.
    assert check_order(sell("300"), context(position="150"), big_orders).allowed
    # Long 150 selling 500 lands short 350 ($35,000): over it.
    assert denied(check_order(sell("500"), context(position="150"), big_orders), R.MAX_POSITION)


def test_daily_loss_just_inside_the_limit_is_allowed() -> None:
    assert check_order(buy(), context(bot_pnl="-999.99", fleet_pnl="-4999.99"), LIMITS).allowed


def test_disabled_daily_loss_limits_never_trip() -> None:
    no_breakers = replace(LIMITS, daily_loss_limit_usd=None, fleet_daily_loss_limit_usd=None)
    assert check_order(buy(), context(bot_pnl="-1e9", fleet_pnl="-1e9"), no_breakers).allowed


# --- the breaker on its own --------------------------------------------------------------


def test_daily_loss_breach_is_none_inside_the_limits() -> None:
    assert daily_loss_breach(Decimal(-999), Decimal(-4999), LIMITS) is None
    assert daily_loss_breach(Decimal(50_000), Decimal(50_000), LIMITS) is None


def test_daily_loss_breach_names_the_bot_scope() -> None:
    breach = daily_loss_breach(Decimal(-1200), Decimal(-1200), LIMITS)
    assert breach == (HaltScope.BOT, "daily loss $1,200.00 reached the limit $1,000")


def test_daily_loss_breach_names_the_fleet_scope_first() -> None:
    breach = daily_loss_breach(Decimal(-1200), Decimal(-5000), LIMITS)
    assert breach is not None
    assert breach[0] is HaltScope.FLEET
    assert "fleet daily loss $5,000.00" in breach[1]


def test_daily_loss_breach_with_only_a_fleet_limit() -> None:
    fleet_only = replace(LIMITS, daily_loss_limit_usd=None)
    assert daily_loss_breach(Decimal(-10_000), Decimal(-10), fleet_only) is None
    breach = daily_loss_breach(Decimal(0), Decimal(-5000), fleet_only)
    assert breach is not None
    assert breach[0] is HaltScope.FLEET


# --- limits validation -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["max_order_value_usd", "max_position_value_usd",
                                   "price_collar_pct", "daily_loss_limit_usd",
                                   "fleet_daily_loss_limit_usd"])
@pytest.mark.parametrize("value", [Decimal(0), Decimal(-1)])
def test_limits_must_be_positive(field: str, value: Decimal) -> None:
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        changes: dict[str, Any] = {field: value}
        replace(LIMITS, **changes)


def test_max_price_age_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_price_age_s must be positive"):
        replace(LIMITS, max_price_age_s=0.0)


# --- reference model ---------------------------------------------------------------------


def exact(value: Decimal) -> Fraction:
    return Fraction(value)


def reduces(position: Decimal, open_quantity: Decimal, signed: Decimal) -> bool:
    before = exact(position) + exact(open_quantity)
    after = before + exact(signed)
    if before == 0:
        return False
    return abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0))


def reference_denials(intent: OrderIntent, ctx: RiskContext,
                      limits: RiskLimits) -> set[DenialReason]:
    """Every rail the order breaks, judged on its own with exact arithmetic."""
    states = (ctx.controls.fleet.state, ctx.controls.bot.state)
    broken: set[DenialReason] = set()
    if ctx.controls.fleet.state is HALTED:
        broken.add(R.FLEET_HALTED)
    if ctx.controls.bot.state is HALTED:
        broken.add(R.BOT_HALTED)
    quantity_ok = intent.quantity.is_finite() and intent.quantity > 0
    if REDUCING in states and not (quantity_ok and reduces(
            ctx.position_quantity, ctx.open_quantity, intent.signed_quantity)):
        broken.add(R.REDUCE_ONLY)
    if not quantity_ok:
        broken.add(R.INVALID_QUANTITY)
        return broken  # nothing below can be judged without a quantity
    last, own = ctx.last_price, intent.price_for_checks
    if last is None or not last.is_finite() or last <= 0 or not own.is_finite() or own <= 0:
        broken.add(R.INVALID_PRICE)
        return broken
    if ctx.last_price_ts is None or (ctx.now - ctx.last_price_ts).total_seconds() > \
            limits.max_price_age_s:
        broken.add(R.STALE_PRICE)
    fleet_limit, bot_limit = limits.fleet_daily_loss_limit_usd, limits.daily_loss_limit_usd
    if fleet_limit is not None and ctx.fleet_daily_pnl_usd <= -fleet_limit:
        broken.add(R.DAILY_LOSS_FLEET)
    if bot_limit is not None and ctx.bot_daily_pnl_usd <= -bot_limit:
        broken.add(R.DAILY_LOSS_BOT)
    if abs(exact(own) - exact(last)) * 100 > exact(limits.price_collar_pct) * exact(last):
        broken.add(R.PRICE_COLLAR)
    worse = max(exact(own), exact(last))
    fx = exact(ctx.usd_per_unit)
    if exact(intent.quantity) * worse * fx > exact(limits.max_order_value_usd):
        broken.add(R.MAX_ORDER_VALUE)
    before, after = worst_case(ctx.position_quantity, ctx.open_buys, ctx.open_sells, intent)
    if abs(after) > abs(before) and abs(after) * worse * fx > exact(limits.max_position_value_usd):
        broken.add(R.MAX_POSITION)
    return broken


def worst_case(position: Decimal, open_buys: Decimal, open_sells: Decimal,
               intent: OrderIntent) -> tuple[Decimal, Decimal]:
    """Exposure before and after the order if every order on its side in flight fills and
    none of the other side does (an in-flight sell may be cancelled: it makes no room)."""
    if intent.side is Side.BUY:
        before = exact(position) + exact(open_buys)
    else:
        before = exact(position) - exact(open_sells)
    return before, before + exact(intent.signed_quantity)


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5_000), places=2)
signed_quantities = st.decimals(min_value=Decimal(-400), max_value=Decimal(400), places=2)
positive_money = st.decimals(min_value=Decimal(1), max_value=Decimal(200_000), places=2)
optional_money = st.none() | positive_money
states = st.sampled_from([ACTIVE] * 8 + [REDUCING, HALTED])


def mostly(usual: st.SearchStrategy[T], unusual: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`usual` nine times in ten: the rails are only interesting when most inputs are sane."""
    return st.integers(0, 9).flatmap(lambda n: unusual if n == 9 else usual)


@st.composite
def intents(draw: st.DrawFn, last: Decimal | None) -> OrderIntent:
    anchor = last if last is not None and last.is_finite() and last > 0 else Decimal(100)
    # Prices near the last trade, often exactly on a collar-sized step from it.
    move_pct = draw(st.sampled_from([Decimal(0), Decimal(5), Decimal(-5), Decimal("0.5")])
                    | st.decimals(min_value=Decimal(-12), max_value=Decimal(12), places=2))
    price = (anchor * (1 + move_pct / 100)).quantize(Decimal("0.0001"))
    bad_quantities = [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity")]
    quantity = draw(mostly(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(300),
                                       places=2),
                           st.sampled_from(bad_quantities)))
    as_limit = draw(st.booleans())
    return OrderIntent(
        instrument="NYSE:AAPL", side=draw(st.sampled_from(Side)), quantity=quantity,
        order_type=OrderType.LIMIT if as_limit else OrderType.MARKET,
        reference_price=price if not as_limit else anchor,
        limit_price=price if as_limit else None,
    )


@st.composite
def contexts(draw: st.DrawFn) -> RiskContext:
    age = draw(mostly(st.integers(-5, 70) | st.floats(0, 70, allow_nan=False),
                      st.none() | st.integers(70, 300)))
    return RiskContext(
        controls=controls(draw(states), draw(states)),
        now=T0,
        last_price=draw(mostly(prices, st.sampled_from([None, Decimal(0), Decimal("NaN")]))),
        last_price_ts=None if age is None else T0 - timedelta(seconds=age),
        position_quantity=draw(signed_quantities),
        open_quantity=draw(signed_quantities | st.just(Decimal(0))),
        usd_per_unit=draw(st.sampled_from([Decimal(1), Decimal("0.0066"), Decimal("1.08"),
                                           Decimal("0.0127"), Decimal("0.0119")])),
        bot_daily_pnl_usd=draw(st.decimals(min_value=Decimal(-3_000), max_value=Decimal(1_000),
                                           places=2)),
        fleet_daily_pnl_usd=draw(st.decimals(min_value=Decimal(-20_000),
                                             max_value=Decimal(1_000), places=2)),
    )


@st.composite
def limits_sets(draw: st.DrawFn) -> RiskLimits:
    return RiskLimits(
        max_order_value_usd=draw(positive_money),
        max_position_value_usd=draw(positive_money),
        price_collar_pct=draw(st.sampled_from([Decimal(5), Decimal("0.5"), Decimal(10)])
                              | st.decimals(min_value=Decimal("0.01"), max_value=Decimal(30),
                                            places=2)),
        max_price_age_s=draw(st.sampled_from([60.0, 180.0, 1.0, 240.0])),
        daily_loss_limit_usd=draw(optional_money),
        fleet_daily_loss_limit_usd=draw(optional_money),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[OrderIntent, RiskContext, RiskLimits]:
    ctx = draw(contexts())
    return draw(intents(ctx.last_price)), ctx, draw(limits_sets())


@given(cases())
@PROPERTY
def test_check_order_never_allows_what_the_reference_forbids(
        case: tuple[OrderIntent, RiskContext, RiskLimits]) -> None:
    intent, ctx, limits = case
    decision = check_order(intent, ctx, limits)
    broken = reference_denials(intent, ctx, limits)
    if decision.allowed:
        assert broken == set()
    else:
        assert decision.reason in broken


@given(cases())
@PROPERTY
def test_check_order_allows_whatever_the_reference_allows(
        case: tuple[OrderIntent, RiskContext, RiskLimits]) -> None:
    intent, ctx, limits = case
    if not reference_denials(intent, ctx, limits):
        assert check_order(intent, ctx, limits).allowed


@given(cases(), st.sampled_from([(HALTED, ACTIVE), (ACTIVE, HALTED), (HALTED, HALTED),
                                 (HALTED, REDUCING), (REDUCING, HALTED)]))
@PROPERTY
def test_a_halted_context_never_allows_anything(
        case: tuple[OrderIntent, RiskContext, RiskLimits],
        fleet_and_bot: tuple[TradingState, TradingState]) -> None:
    intent, ctx, limits = case
    halted = replace(ctx, controls=controls(*fleet_and_bot))
    decision = check_order(intent, halted, limits)
    assert not decision.allowed
    expected = R.FLEET_HALTED if fleet_and_bot[0] is HALTED else R.BOT_HALTED
    assert decision.reason is expected
    assert decision.halt is None


@given(cases())
@PROPERTY
def test_a_halt_is_requested_only_by_the_daily_loss_breaker(
        case: tuple[OrderIntent, RiskContext, RiskLimits]) -> None:
    decision = check_order(*case)
    if decision.reason is R.DAILY_LOSS_BOT:
        assert decision.halt is HaltScope.BOT
    elif decision.reason is R.DAILY_LOSS_FLEET:
        assert decision.halt is HaltScope.FLEET
    else:
        assert decision.halt is None


# --- a bot's stream of orders ------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    side: Side
    quantity: Decimal
    limit_move_pct: Decimal | None
    price_move_pct: Decimal
    age_s: int
    fill_fraction: Decimal


steps = st.builds(
    Step,
    st.sampled_from(Side),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(200), places=2),
    st.none() | st.decimals(min_value=Decimal(-8), max_value=Decimal(8), places=1),
    st.decimals(min_value=Decimal(-3), max_value=Decimal(3), places=1),
    st.integers(0, 120),
    st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(1)]),
)


@given(st.lists(steps, min_size=1, max_size=40), limits_sets(),
       st.sampled_from([Decimal(1), Decimal("0.0066"), Decimal("1.08")]))
@PROPERTY
def test_no_allowed_order_in_a_stream_breaches_a_limit(stream: list[Step], limits: RiskLimits,
                                                       usd_per_unit: Decimal) -> None:
    """A bot sends orders as prices drift and earlier orders fill; every order the rails let
    through keeps within order value, position (counting orders in flight), collar and age."""
    last = Decimal(100)
    position = open_quantity = Decimal(0)
    for step in stream:
        last = (last * (1 + step.price_move_pct / 100)).quantize(Decimal("0.01"))
        limit = None if step.limit_move_pct is None else \
            (last * (1 + step.limit_move_pct / 100)).quantize(Decimal("0.01"))
        intent = order(step.side, str(step.quantity), None if limit is None else str(limit),
                       str(last))
        ctx = RiskContext(controls(), T0, last, T0 - timedelta(seconds=step.age_s), position,
                          open_quantity, usd_per_unit, Decimal(0), Decimal(0))
        decision = check_order(intent, ctx, limits)
        if decision.allowed:
            worse = max(intent.price_for_checks, last)
            assert step.age_s <= limits.max_price_age_s
            assert abs(intent.price_for_checks - last) * 100 <= limits.price_collar_pct * last
            assert intent.quantity * worse * usd_per_unit <= limits.max_order_value_usd
            before, after = worst_case(position, max(open_quantity, Decimal(0)),
                                       max(-open_quantity, Decimal(0)), intent)
            assert (abs(after) <= abs(before)
                    or abs(after) * exact(worse) * exact(usd_per_unit)
                    <= exact(limits.max_position_value_usd))
            open_quantity += intent.signed_quantity
        # Part of what is in flight fills and moves into the position.
        filled = (open_quantity * step.fill_fraction).quantize(Decimal("0.01"))
        position += filled
        open_quantity -= filled


def test_an_in_flight_sell_makes_no_room_for_a_new_buy() -> None:
    """The sell may yet be cancelled; if it is, the buy alone must still fit the limit."""
    flat = context(position="0")
    crowded = RiskContext(flat.controls, flat.now, flat.last_price, flat.last_price_ts,
                          Decimal(150), Decimal(-100), flat.usd_per_unit, Decimal(0),
                          Decimal(0), open_buy_quantity=Decimal(0),
                          open_sell_quantity=Decimal(100))
    # Limit $20,000 at $100. Netted, 150 - 100 + 90 = 140 units would pass; if the sell is
    # cancelled the bot holds 240 ($24,000), so the buy must be denied.
    decision = check_order(buy("90"), crowded, LIMITS)
    assert denied(decision, R.MAX_POSITION)
