"""MemoryLedger remembers three things between calls — the Controls it handed out, the P&L
totals over positions at their marks, and the UTC day of the last moment asked about — and
each answers exactly as if computed afresh: after a switch is set, a fill, a new mark, a new
day, or a moment given in another time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Fill, OrderIntent, OrderType, Side
from fleetkit.engine.ports import OrderReport
from fleetkit.risk.rails import Decision, HaltScope
from fleetkit.store.memory import MemoryLedger

T0 = datetime(2026, 11, 20, 23, 58, tzinfo=UTC)
KEY = "NYSE:AAPL"
USD = Decimal(1)


def allow(_inputs: object) -> Decision:
    return Decision.allow()


def bought(ledger: MemoryLedger, bot_id: int, quantity: str, price: str,
           at: datetime = T0) -> None:
    """An order for `quantity` admitted and filled at `price`."""
    order = ledger.admit(bot_id, OrderIntent(KEY, Side.BUY, Decimal(quantity), OrderType.MARKET,
                                             Decimal(price)), None, USD, at, allow).order
    assert order is not None
    fill = Fill(f"{bot_id}-{order.id}", order.client_order_id, KEY, Side.BUY, Decimal(quantity),
                Decimal(price), Decimal(0), at)
    ledger.record_report(bot_id, order, OrderReport(
        order.client_order_id, f"B-{order.id}", KEY, Side.BUY, OrderType.MARKET,
        Decimal(quantity), None, order.status, Decimal(0), None, fills=(fill,)), at)


def quote(price: str, at: datetime = T0) -> dict[str, Quote]:
    return {KEY: Quote(KEY, Decimal(price), at)}


def test_controls_are_handed_out_again_until_a_switch_is_set() -> None:
    ledger = MemoryLedger()
    first = ledger.controls(1)
    assert ledger.controls(1) is first

    ledger.set_control(1, TradingState.REDUCING, "trim", HaltSource.OPERATOR, "ops", T0)
    assert ledger.controls(1).bot.state is TradingState.REDUCING
    assert ledger.controls(1).fleet.state is TradingState.ACTIVE


def test_a_fleet_halt_reaches_every_bot_whose_controls_were_read_before() -> None:
    ledger = MemoryLedger()
    before = [ledger.controls(bot) for bot in (1, 2)]

    assert ledger.halt(1, HaltScope.FLEET, "too much", HaltSource.CIRCUIT_BREAKER, "risk", T0)

    for bot, old in zip((1, 2), before, strict=True):
        now = ledger.controls(bot)
        assert now is not old
        assert now.fleet.state is TradingState.HALTED
        assert ledger.risk_inputs(bot, KEY, USD, T0).controls.fleet.state is TradingState.HALTED
    ledger.set_control(None, TradingState.ACTIVE, "resumed", HaltSource.OPERATOR, "ops", T0)
    assert ledger.controls(2).fleet.state is TradingState.ACTIVE


def test_todays_pnl_follows_each_new_mark_and_each_fill() -> None:
    ledger = MemoryLedger()
    bought(ledger, 1, "10", "100")
    assert ledger.mark(1, quote("101"), USD, T0).daily_usd == Decimal(10)
    assert ledger.risk_inputs(1, KEY, USD, T0).bot_daily_pnl_usd == Decimal(10)

    assert ledger.mark(1, quote("99"), USD, T0).daily_usd == Decimal(-10)
    assert ledger.risk_inputs(1, KEY, USD, T0).bot_daily_pnl_usd == Decimal(-10)

    bought(ledger, 1, "10", "99")  # the average falls to 99.5; the mark stays 99
    inputs = ledger.risk_inputs(1, KEY, USD, T0)
    assert (inputs.position_quantity, inputs.bot_daily_pnl_usd) == (Decimal(20), Decimal(-10))
    assert ledger.mark(1, quote("100"), USD, T0).daily_usd == Decimal(10)


def test_the_day_rolls_at_utc_midnight_whatever_zone_the_moment_is_given_in() -> None:
    ledger = MemoryLedger()
    bought(ledger, 1, "1", "100")
    assert ledger.mark(1, quote("110"), USD, T0).day == "2026-11-20"
    after_midnight = T0 + timedelta(minutes=3)
    # The same instant written in New York time (UTC-5) is still the 21st in UTC.
    new_york = after_midnight.astimezone(timezone(timedelta(hours=-5)))
    snapshot = ledger.mark(1, quote("112", after_midnight), USD, new_york)
    assert (snapshot.day, snapshot.daily_usd) == ("2026-11-21", Decimal(2))
    back = ledger.mark(1, quote("111"), USD, T0)  # a moment of the day before, asked again
    assert back.day == "2026-11-20"


def test_the_fleets_pnl_adds_up_every_other_bot_of_the_day() -> None:
    ledger = MemoryLedger()
    for bot, mark in ((1, "101"), (2, "98"), (3, "103")):
        bought(ledger, bot, "1", "100")
        ledger.mark(bot, quote(mark), USD, T0)
    ledger.mark(3, quote("100", T0 - timedelta(days=1)), USD, T0 - timedelta(days=1))

    assert ledger.risk_inputs(1, KEY, USD, T0).fleet_daily_pnl_usd == Decimal(1 - 2)
    assert ledger.mark(2, quote("98"), USD, T0).fleet_daily_usd == Decimal(-1)
