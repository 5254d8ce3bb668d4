"""The Ledger contract: MemoryLedger, and SqlLedger on SQLite and PostgreSQL, behave alike."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.ledger import FillChecks, position_from_fills
from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Fill, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.engine.ports import BotState, InstrumentState, Ledger, OrderReport
from fleetkit.risk.rails import Decision, DenialReason, HaltScope
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.memory import MemoryLedger
from tests.support import empty_database_url, migrated_database

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
AAPL = "NYSE:AAPL"


class Env:
    def __init__(self, ledger: Ledger, new_bot: Callable[[str], int]) -> None:
        self.ledger = ledger
        self.new_bot = new_bot


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    if request.param == "memory":
        counter = iter(range(1, 1000))
        yield Env(MemoryLedger(), lambda name: next(counter))
        return
    database: Database = migrated_database(empty_database_url(request.param, request, tmp_path))
    store = FleetStore(database.engine)

    def new_bot(name: str) -> int:
        return store.register_bot(name=name, market="NYSE", currency="USD",
                                  strategy="sma_cross", mode="sandbox", settings={}, now=T0)

    yield Env(SqlLedger(database.engine, database.fleet_tag()), new_bot)
    database.dispose()


def intent(qty: str = "10", side: Side = Side.BUY, instrument: str = AAPL,
           reference: str = "100") -> OrderIntent:
    return OrderIntent(instrument, side, Decimal(qty), OrderType.MARKET, Decimal(reference))


def fill(order_cid: str, fid: str, qty: str, price: str, side: Side = Side.BUY,
         fee: str = "0.1", instrument: str = AAPL) -> Fill:
    return Fill(fid, order_cid, instrument, side, Decimal(qty), Decimal(price), Decimal(fee),
                T0)


def report(order_cid: str, status: OrderStatus, fills: tuple[Fill, ...] = (), qty: str = "10",
           side: Side = Side.BUY) -> OrderReport:
    filled = sum((f.quantity for f in fills), Decimal(0))
    return OrderReport(order_cid, "B1", AAPL, side, OrderType.MARKET, Decimal(qty), None,
                       status, filled, fills[0].price if fills else None, "", fills)


def test_write_ahead_persists_a_pending_order_whose_client_id_is_unique(env: Env) -> None:
    bot = env.new_bot("a")
    first = env.ledger.write_ahead(bot, intent(), None, T0)
    second = env.ledger.write_ahead(bot, intent(), None, T0)
    assert first.status is OrderStatus.PENDING
    assert first.client_order_id != second.client_order_id
    assert str(bot) in first.client_order_id
    assert [o.client_order_id for o in env.ledger.open_orders(bot)] == [
        first.client_order_id, second.client_order_id]


def test_a_filled_report_moves_the_position_and_closes_the_order(env: Env) -> None:
    bot = env.new_bot("a")
    order = env.ledger.write_ahead(bot, intent(), None, T0)
    f = fill(order.client_order_id, "1", "10", "101.5")
    updated = env.ledger.record_report(bot, order, report(order.client_order_id,
                                                          OrderStatus.FILLED, (f,)), T0)
    assert updated.status is OrderStatus.FILLED
    assert updated.filled_quantity == Decimal(10)
    assert updated.average_fill_price == Decimal("101.5")
    position = env.ledger.positions(bot)[AAPL]
    assert (position.quantity, position.average_price, position.fees) == (
        Decimal(10), Decimal("101.5"), Decimal("0.1"))
    assert env.ledger.open_orders(bot) == []


def test_a_fill_reported_twice_is_applied_once(env: Env) -> None:
    bot = env.new_bot("a")
    order = env.ledger.write_ahead(bot, intent(), None, T0)
    f = fill(order.client_order_id, "7", "4", "100")
    env.ledger.record_report(bot, order, report(order.client_order_id,
                                                OrderStatus.PARTIALLY_FILLED, (f,)), T0)
    result = env.ledger.apply_fills(bot, [f, f], "7", T0)
    assert result.applied == () and result.duplicates == 2
    assert env.ledger.positions(bot)[AAPL].quantity == Decimal(4)
    assert env.ledger.fills_cursor(bot) == "7"


def test_an_order_is_not_filled_in_the_ledger_before_its_fills_are(env: Env) -> None:
    bot = env.new_bot("a")
    order = env.ledger.write_ahead(bot, intent(), None, T0)
    claimed = report(order.client_order_id, OrderStatus.FILLED)
    updated = env.ledger.record_report(bot, order, claimed, T0)
    assert updated.status is OrderStatus.ACKNOWLEDGED
    assert [o.id for o in env.ledger.open_orders(bot)] == [order.id]
    env.ledger.apply_fills(bot, [fill(order.client_order_id, "1", "6", "100"),
                                 fill(order.client_order_id, "2", "4", "102")], "2", T0)
    assert env.ledger.open_orders(bot) == []
    assert env.ledger.positions(bot)[AAPL].average_price == Decimal("100.8")


def test_fills_that_match_no_order_of_the_bot_are_refused_and_recorded(env: Env) -> None:
    bot = env.new_bot("a")
    other = env.new_bot("b")
    theirs = env.ledger.write_ahead(other, intent(), None, T0)
    ours = env.ledger.write_ahead(bot, intent(), None, T0)
    result = env.ledger.apply_fills(bot, [
        fill("nobody-knows-me", "1", "1", "100"),
        fill(theirs.client_order_id, "2", "1", "100"),
        fill(ours.client_order_id, "3", "1", "100", instrument="NYSE:MSFT"),
        fill(ours.client_order_id, "4", "11", "100"),
    ], "4", T0)
    assert result.applied == ()
    assert len(result.refused) == 4
    assert "overfill" in result.refused[3][1]
    assert env.ledger.positions(bot) == {}
    assert env.ledger.fills_cursor(bot) == "4"


def test_a_partially_filled_order_counts_its_remainder_as_open(env: Env) -> None:
    bot = env.new_bot("a")
    order = env.ledger.write_ahead(bot, intent("10", Side.SELL), None, T0)
    part = fill(order.client_order_id, "1", "3", "100", Side.SELL)
    env.ledger.record_report(bot, order, report(order.client_order_id,
                                                OrderStatus.PARTIALLY_FILLED, (part,),
                                                side=Side.SELL), T0)
    inputs = env.ledger.risk_inputs(bot, AAPL, Decimal(1), T0)
    assert inputs.position_quantity == Decimal(-3)
    assert inputs.open_quantity == Decimal(-7)


def test_a_flip_from_long_to_short_realizes_pnl_and_reopens_at_the_fill_price(env: Env) -> None:
    bot = env.new_bot("a")
    buy = env.ledger.write_ahead(bot, intent("10"), None, T0)
    env.ledger.apply_fills(bot, [fill(buy.client_order_id, "1", "10", "100", fee="0")], "1", T0)
    sell = env.ledger.write_ahead(bot, intent("15", Side.SELL, reference="110"), None, T0)
    env.ledger.apply_fills(bot, [fill(sell.client_order_id, "2", "15", "110", Side.SELL,
                                      fee="0")], "2", T0)
    position = env.ledger.positions(bot)[AAPL]
    assert position.quantity == Decimal(-5)
    assert position.average_price == Decimal(110)
    assert position.realized_pnl == Decimal(100)


def test_halts_are_read_back_fresh_for_bot_and_fleet(env: Env) -> None:
    bot = env.new_bot("a")
    assert env.ledger.controls(bot).effective.state is TradingState.ACTIVE
    env.ledger.set_control(bot, TradingState.HALTED, "manual", HaltSource.OPERATOR, "ops", T0)
    assert env.ledger.controls(bot).bot.reason == "manual"
    env.ledger.set_control(None, TradingState.HALTED, "all stop", HaltSource.OPERATOR, "ops", T0)
    controls = env.ledger.controls(env.new_bot("b"))
    assert controls.fleet.state is TradingState.HALTED
    assert controls.bot.state is TradingState.ACTIVE
    assert controls.effective.reason == "all stop"


def test_a_denial_that_trips_the_breaker_halts_the_bot_once(env: Env) -> None:
    bot = env.new_bot("a")
    decision = Decision.deny(DenialReason.DAILY_LOSS_BOT, "lost too much", HaltScope.BOT)
    env.ledger.record_denial(bot, intent(), decision, T0)
    env.ledger.record_denial(bot, intent(), decision, T0)
    control = env.ledger.controls(bot).bot
    assert control.state is TradingState.HALTED
    assert control.source is HaltSource.CIRCUIT_BREAKER


def test_bot_state_round_trips(env: Env) -> None:
    bot = env.new_bot("a")
    state = BotState({AAPL: InstrumentState(T0, 3, Decimal("12.5"), {"entered": True})})
    env.ledger.save_state(bot, state, T0)
    env.ledger.apply_fills(bot, [], "42", T0)
    loaded = env.ledger.load_state(bot)
    assert loaded.instruments[AAPL] == state.instruments[AAPL]
    assert env.ledger.fills_cursor(bot) == "42"
    env.ledger.save_state(bot, loaded, T0)
    assert env.ledger.fills_cursor(bot) == "42"


def test_daily_pnl_rolls_over_at_utc_midnight(env: Env) -> None:
    bot = env.new_bot("a")
    buy = env.ledger.write_ahead(bot, intent("10"), None, T0)
    env.ledger.apply_fills(bot, [fill(buy.client_order_id, "1", "10", "100", fee="1")], "1", T0)
    first = env.ledger.mark(bot, {AAPL: Quote(AAPL, Decimal(105), T0)}, Decimal(1), T0)
    assert first.daily == Decimal(49)  # 10 * 5 unrealized - 1 fee
    next_day = T0 + timedelta(days=1)
    second = env.ledger.mark(bot, {AAPL: Quote(AAPL, Decimal(103), next_day)}, Decimal(1),
                             next_day)
    assert second.daily == Decimal(-20)
    assert second.unrealized == Decimal(30)


def test_fleet_daily_pnl_sums_every_bot_marked_today_in_usd(env: Env) -> None:
    a, b = env.new_bot("a"), env.new_bot("b")
    for bot, price in ((a, "90"), (b, "80")):
        buy = env.ledger.write_ahead(bot, intent("10"), None, T0)
        env.ledger.apply_fills(bot, [fill(buy.client_order_id, f"{bot}-1", "10", "100",
                                          fee="0")], None, T0)
        env.ledger.mark(bot, {AAPL: Quote(AAPL, Decimal(price), T0)}, Decimal("0.5"), T0)
    inputs = env.ledger.risk_inputs(a, AAPL, Decimal("0.5"), T0)
    assert inputs.bot_daily_pnl_usd == Decimal(-50)
    assert inputs.fleet_daily_pnl_usd == Decimal(-150)


def test_signals_are_recorded_with_an_id(env: Env) -> None:
    bot = env.new_bot("a")
    first = env.ledger.record_signal(bot, AAPL, T0, Signal.at(SignalLevel.BUY, "x"), T0)
    second = env.ledger.record_signal(bot, AAPL, T0, Signal.target(Decimal(5)), T0)
    assert first is not None and second is not None and second > first


_EXAMPLE_IDS = itertools.count()

fills_strategy = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]),
              st.integers(min_value=1, max_value=50),
              st.integers(min_value=1, max_value=20_000)),
    min_size=1, max_size=12)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=fills_strategy)
def test_positions_in_the_ledger_equal_the_reference_fold_over_fills(
        env: Env, stream: list[tuple[Side, int, int]]) -> None:
    bot = env.new_bot(f"p{next(_EXAMPLE_IDS)}")  # a fresh bot per example, never reused
    applied = []
    for side, qty, cents in stream:
        price = Decimal(cents) / 100
        order = env.ledger.write_ahead(bot, intent(str(qty), side, reference=str(price)), None,
                                       T0)
        f = Fill(f"{bot}-{order.id}", order.client_order_id, AAPL, side, Decimal(qty), price,
                 Decimal("0.01"), T0)
        # The fee is what it is: this is about accounting, not plausibility.
        env.ledger.apply_fills(bot, [f], None, T0, checks=FillChecks(max_fee_pct=Decimal(100)))
        applied.append(f)
    expected = position_from_fills(AAPL, applied)
    actual = env.ledger.positions(bot)[AAPL]
    assert actual == expected
