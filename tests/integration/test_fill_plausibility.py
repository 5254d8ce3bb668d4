"""A broker fill must be plausible before it touches the ledger (issue 12, part 1).

On every ledger (memory, SQLite, PostgreSQL): a fill priced worse than its limit, far from
its market order's reference, charged an implausible fee, for the other side, over the
remainder, or a fill id reported again with other contents is refused — the ledger is left
exactly as it was, the refusal recorded with its reason as a critical event (and, on the
database, its alert in the outbox in the same transaction), and the bot halted with source
broker_reply. A plain repeat stays a harmless duplicate; plausible fills still apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.ledger import FillChecks, Position
from fleetkit.core.orders import Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.engine.ports import Ledger, OrderReport
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.memory import MemoryLedger
from fleetkit.store.schema import events, outbox
from tests.support import empty_database_url, migrated_database

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
BTC = "CRYPTO:BTC/USDT"
ETH = "CRYPTO:ETH/USDT"
LIMIT = Decimal("32080.44")


@dataclass
class Env:
    ledger: Ledger
    new_bot: Callable[[str], int]
    kinds: Callable[[int], list[tuple[str, str]]]  # (kind, severity) of a bot's events
    alerts: Callable[[int], list[str]]  # outbox kinds of a bot (empty for memory)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    if request.param == "memory":
        memory = MemoryLedger()
        counter = iter(range(1, 1000))
        yield Env(memory, lambda name: next(counter),
                  lambda bot: [(e.event.kind, e.event.severity) for e in memory.events
                               if e.bot_id == bot],
                  lambda bot: [])
        return
    database: Database = migrated_database(empty_database_url(request.param, request, tmp_path))
    store = FleetStore(database.engine)

    def new_bot(name: str) -> int:
        return store.register_bot(name=name, market="CRYPTO", currency="USDT",
                                  strategy="buy_and_hold", mode="sandbox", settings={}, now=T0)

    def kinds(bot: int) -> list[tuple[str, str]]:
        with database.engine.connect() as conn:
            return [(k, s) for k, s in conn.execute(
                select(events.c.kind, events.c.severity).where(events.c.bot_id == bot)
                .order_by(events.c.id))]

    def alerts(bot: int) -> list[str]:
        with database.engine.connect() as conn:
            return list(conn.execute(select(outbox.c.kind).where(outbox.c.bot_id == bot)
                                     .order_by(outbox.c.id)).scalars())

    yield Env(SqlLedger(database.engine, database.fleet_tag()), new_bot, kinds, alerts)
    database.dispose()


def limit_buy(env: Env, bot: int, qty: str = "1") -> Order:
    return env.ledger.write_ahead(bot, OrderIntent(BTC, Side.BUY, Decimal(qty), OrderType.LIMIT,
                                                   LIMIT, LIMIT), None, T0)


def market(env: Env, bot: int, side: Side = Side.BUY, qty: str = "1",
           reference: Decimal = LIMIT) -> Order:
    return env.ledger.write_ahead(bot, OrderIntent(BTC, side, Decimal(qty), OrderType.MARKET,
                                                   reference), None, T0)


def fill(order: Order, fid: str, price: Decimal = LIMIT, qty: str = "1", fee: str = "1.20",
         side: Side | None = None, instrument: str = BTC) -> Fill:
    return Fill(fid, order.client_order_id, instrument, side or order.side, Decimal(qty), price,
                Decimal(fee), T0)


def snapshot(env: Env, bot: int) -> tuple[dict[str, Position], list[tuple[str, Decimal]]]:
    return (env.ledger.positions(bot),
            [(o.client_order_id, o.filled_quantity) for o in env.ledger.open_orders(bot)])


def assert_refused_and_halted(env: Env, bot: int, kind: str, before: object,
                              words: str) -> None:
    assert snapshot(env, bot) == before, "the ledger must be unchanged"
    control = env.ledger.controls(bot).bot
    assert control.state is TradingState.HALTED
    assert control.source is HaltSource.BROKER_REPLY
    assert words in control.reason
    assert (kind, "critical") in env.kinds(bot)
    if env.alerts(bot) or not isinstance(env.ledger, MemoryLedger):
        assert kind in env.alerts(bot) and "control.halted" in env.alerts(bot)


BAD_FILLS: dict[str, tuple[Callable[[Env, int], Order], Callable[[Order], Fill], str]] = {
    "a limit buy filled a thousand times above its limit": (
        limit_buy, lambda o: fill(o, "f1", LIMIT * 1000), "worse than the buy limit"),
    "a limit buy filled one tick above its limit": (
        limit_buy, lambda o: fill(o, "f1", LIMIT + Decimal("0.01")), "worse than the buy limit"),
    "a market buy filled far from its reference price": (
        market, lambda o: fill(o, "f1", LIMIT * Decimal("1.2")), "from the reference price"),
    "a market sell filled at a tenth of its reference price": (
        lambda e, b: market(e, b, Side.SELL), lambda o: fill(o, "f1", LIMIT / 10),
        "from the reference price"),
    "a fee of a million on a 32,080 notional": (
        limit_buy, lambda o: fill(o, "f1", fee="1000000"), "charges a fee of 1000000"),
    "a fill for the other side": (
        limit_buy, lambda o: fill(o, "f1", side=Side.SELL), "differs from the order's"),
    "a fill for another instrument": (
        limit_buy, lambda o: fill(o, "f1", instrument=ETH), "is for CRYPTO:ETH/USDT"),
    "a quantity just over the order": (
        lambda e, b: limit_buy(e, b, "1"), lambda o: fill(o, "f1", qty="1.00000001"),
        "would overfill"),
    "a negative fee": (limit_buy, lambda o: fill(o, "f1", fee="-1"), "negative fee"),
}


@pytest.mark.parametrize("case", list(BAD_FILLS))
def test_an_implausible_fill_is_refused_recorded_and_halts_the_bot(env: Env, case: str) -> None:
    bot = env.new_bot("a")
    place, make, words = BAD_FILLS[case]
    order = place(env, bot)
    before = snapshot(env, bot)
    result = env.ledger.apply_fills(bot, [make(order)], "c1", T0)
    assert result.applied == () and len(result.refused) == 1
    assert words in result.refused[0][1]
    assert_refused_and_halted(env, bot, "fill.refused", before, words)
    assert env.ledger.fills_cursor(bot) == "c1"  # refused is settled: never asked again


def test_an_implausible_fill_in_a_submit_answer_is_refused_too(env: Env) -> None:
    bot = env.new_bot("a")
    order = limit_buy(env, bot)
    before = snapshot(env, bot)
    bad = fill(order, "f1", LIMIT * 1000)
    updated = env.ledger.record_report(bot, order, OrderReport(
        order.client_order_id, "B1", BTC, Side.BUY, OrderType.LIMIT, Decimal(1), LIMIT,
        OrderStatus.FILLED, Decimal(1), bad.price, "", (bad,)), T0)
    assert updated.filled_quantity == 0 and updated.status is OrderStatus.ACKNOWLEDGED
    assert snapshot(env, bot)[0] == before[0]
    assert env.ledger.controls(bot).bot.source is HaltSource.BROKER_REPLY


def test_plausible_fills_apply_at_the_limit_or_better_and_within_the_tolerance(env: Env) -> None:
    bot = env.new_bot("a")
    at_limit = limit_buy(env, bot)
    better = limit_buy(env, bot)
    near = market(env, bot, reference=Decimal(100))
    result = env.ledger.apply_fills(bot, [
        fill(at_limit, "f1"), fill(better, "f2", LIMIT - 5),
        fill(near, "f3", Decimal("104.99"), fee="0.1")], "c", T0)
    assert len(result.applied) == 3 and result.refused == ()
    assert env.ledger.controls(bot).bot.state is TradingState.ACTIVE
    assert env.ledger.positions(bot)[BTC].quantity == 3


def test_the_market_tolerance_and_fee_bound_come_from_the_checks_given(env: Env) -> None:
    bot = env.new_bot("a")
    order = market(env, bot, reference=Decimal(100))
    loose = FillChecks(market_price_tolerance_pct=Decimal(25), max_fee_pct=Decimal(5))
    result = env.ledger.apply_fills(bot, [fill(order, "f1", Decimal(120), fee="5")], "c", T0,
                                    checks=loose)
    assert len(result.applied) == 1
    tight = market(env, bot, reference=Decimal(100))
    result = env.ledger.apply_fills(bot, [fill(tight, "f2", Decimal("100.6"), fee="0")], "c",
                                    T0, checks=FillChecks(market_price_tolerance_pct=Decimal(
                                        "0.5")))
    assert "0.60% from the reference price" in result.refused[0][1]


@pytest.mark.parametrize(("field", "changed"), [
    ("price", {"price": LIMIT - 1}), ("quantity", {"qty": "0.5"}), ("fee", {"fee": "2.40"})])
def test_a_fill_id_reported_again_with_other_contents_is_history_rewritten(
        env: Env, field: str, changed: dict[str, object]) -> None:
    bot = env.new_bot("a")
    order = limit_buy(env, bot, "2")
    env.ledger.apply_fills(bot, [fill(order, "f1")], "c1", T0)
    before = snapshot(env, bot)
    rewritten = fill(order, "f1", **changed)  # type: ignore[arg-type]
    result = env.ledger.apply_fills(bot, [rewritten], "c2", T0)
    assert result.applied == () and result.duplicates == 0
    assert f"{field} " in result.refused[0][1]
    assert_refused_and_halted(env, bot, "fill.rewritten", before, "other contents")


def test_a_plain_repeat_of_a_fill_is_a_duplicate_and_halts_nothing(env: Env) -> None:
    bot = env.new_bot("a")
    order = limit_buy(env, bot)
    f = fill(order, "f1")
    env.ledger.apply_fills(bot, [f], "c1", T0)
    result = env.ledger.apply_fills(bot, [f, f], "c2", T0)  # its order is filled by now
    assert result.duplicates == 2 and result.refused == ()
    assert env.ledger.controls(bot).bot.state is TradingState.ACTIVE


def test_a_refusal_keeps_an_operators_halt_and_its_reason(env: Env) -> None:
    bot = env.new_bot("a")
    order = limit_buy(env, bot)
    env.ledger.set_control(bot, TradingState.HALTED, "maintenance", HaltSource.OPERATOR, "ops",
                           T0)
    env.ledger.apply_fills(bot, [fill(order, "f1", LIMIT * 1000)], "c1", T0)
    control = env.ledger.controls(bot).bot
    assert (control.source, control.reason) == (HaltSource.OPERATOR, "maintenance")
    assert ("fill.refused", "critical") in env.kinds(bot)


def test_a_fill_for_no_order_of_ours_is_refused_and_left_to_reconciliation(env: Env) -> None:
    """Someone traded in the bot's account: nothing of ours to judge it by, so it is not
    applied and not a halt by itself; reconciliation halts if the positions now differ."""
    bot = env.new_bot("a")
    stranger = Fill("f9", "desk-1", BTC, Side.BUY, Decimal(1), LIMIT, Decimal(1), T0)
    result = env.ledger.apply_fills(bot, [stranger], "c1", T0)
    assert result.applied == () and "no order" in result.refused[0][1]
    assert env.ledger.controls(bot).bot.state is TradingState.ACTIVE
    assert ("fill.refused", "error") in env.kinds(bot)
    assert env.ledger.positions(bot) == {}


def test_a_broker_reply_halt_is_lifted_from_the_cli_only(database_url: str) -> None:
    """Telegram and the dashboard refuse to resume it, as a reconciliation halt."""
    database = migrated_database(database_url)
    try:
        store = FleetStore(database.engine)
        bot = store.register_bot(name="a", market="CRYPTO", currency="USDT",
                                 strategy="buy_and_hold", mode="sandbox", settings={}, now=T0)
        ledger = SqlLedger(database.engine, database.fleet_tag())
        order = ledger.write_ahead(bot, OrderIntent(BTC, Side.BUY, Decimal(1), OrderType.LIMIT,
                                                    LIMIT, LIMIT), None, T0)
        ledger.apply_fills(bot, [fill(order, "f1", LIMIT * 1000)], "c1", T0)
        assert store.held_by_reconciliation("a")
    finally:
        database.dispose()


def test_a_broker_repeating_the_same_rewritten_fill_is_recorded_once(env: Env) -> None:
    """A rewritten fill in every page would otherwise add a critical event at every poll."""
    bot = env.new_bot("a")
    order = limit_buy(env, bot, "2")
    env.ledger.apply_fills(bot, [fill(order, "f1")], "c1", T0)
    rewritten = fill(order, "f1", LIMIT - 1)
    for cursor in ("c2", "c3", "c4"):
        env.ledger.apply_fills(bot, [rewritten], cursor, T0)
    assert env.kinds(bot).count(("fill.rewritten", "critical")) == 1
