"""BotRunner on a real database (SQLite and PostgreSQL) against an in-process sandbox venue
with invented prices, driven step by step on a manual clock.

Crash windows are simulated at the broker seam: an answer that never came back (the process
died after sending), or an order that never left (it died before sending).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.errors import TransientBrokerError, UserError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderReport, OrderRequest
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import events, orders
from fleetkit.strategy.base import StrategyParams, register, unregister
from tests.support import BrokerSeam, DiesAfterSending, Killed

START = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)  # a Friday; crypto never closes
BTC = "CRYPTO:BTC/USDT"

CONFIG = """
runtime: {heartbeat_interval_s: 5, stale_after_s: 30}
risk: {max_order_value_usd: 50000, max_position_value_usd: 100000, daily_loss_limit_usd: 5000}
bots:
  - {name: hold, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}
  - {name: sma, market: CRYPTO, symbols: ["ETH/USDT"], strategy: sma_cross,
     params: {fast: 3, slow: 8}}
  - {name: boom, market: CRYPTO, symbols: ["SOL/USDT"], strategy: explodes_in_tests}
  - {name: tight, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold,
     risk: {daily_loss_limit_usd: 0.01}}
"""


class _ExplodesParams(StrategyParams):
    pass


class _Explodes:
    name = "explodes_in_tests"

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Any, ctx: Any) -> None:
        raise RuntimeError("bug in user strategy")


@pytest.fixture(autouse=True)
def explodes_in_tests() -> Iterator[None]:
    """A strategy that raises, registered only while these tests run."""
    register("explodes_in_tests", "raises on every bar", _ExplodesParams)(lambda p: _Explodes())
    yield
    unregister("explodes_in_tests")


@dataclass
class World:
    """One venue and one database shared by successive runners (restarts)."""

    loaded: LoadedConfig
    db_url: str
    venue: SandboxVenue
    clock: ManualClock
    database: Any

    def runner(self, name: str, wrap: Callable[[SandboxBroker], Any] | None = None) -> BotRunner:
        def connect(settings: BotSettings) -> BrokerConnection:
            broker = SandboxBroker(self.venue, settings.name)
            wrapped = wrap(broker) if wrap else broker
            return BrokerConnection(wrapped, broker)

        def sleep(seconds: float) -> bool:  # waiting moves the manual clock instead
            self.clock.advance(timedelta(seconds=seconds))
            return False

        return BotRunner(self.loaded, name, self.db_url, connect, clock=self.clock, sleep=sleep)

    def ledger(self) -> SqlLedger:
        return SqlLedger(self.database.engine, self.database.fleet_tag())

    def bot_id(self, name: str) -> int:
        return FleetStore(self.database.engine).bot(name).id

    def ledger_orders(self, name: str) -> list[Any]:
        with self.database.engine.connect() as conn:
            return list(conn.execute(orders.select().where(orders.c.bot_id == self.bot_id(name))
                                     .order_by(orders.c.id)))


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    from tests.support import migrated_database

    database = migrated_database(database_url)
    clock = ManualClock(START)
    prices = InventedPrices(7, load_catalog(), MarketCalendars())
    venue = SandboxVenue(prices, MemoryBook(), clock,
                         VenueConfig(seed=7, partial_fill_probability=0.0))
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)
    yield World(loaded, database_url, venue, clock, database)
    database.dispose()


class DiesBeforeSending(BrokerSeam):
    """The order row is written ahead, then the process dies before sending it."""

    def submit(self, request: OrderRequest) -> OrderReport:
        raise Killed


class AnswerLostOnce(BrokerSeam):
    """The order reaches the broker but the answer is lost (timeout); the process lives."""

    def __init__(self, broker: SandboxBroker) -> None:
        super().__init__(broker)
        self.lost = 0

    def submit(self, request: OrderRequest) -> OrderReport:
        report = self._broker.submit(request)
        if self.lost == 0:
            self.lost += 1
            raise TransientBrokerError("read timed out")
        return report


class RefusedOnce(BrokerSeam):
    """The first send is refused (never arrives); the process lives."""

    def __init__(self, broker: SandboxBroker) -> None:
        super().__init__(broker)
        self.refused = 0

    def submit(self, request: OrderRequest) -> OrderReport:
        if self.refused == 0:
            self.refused += 1
            raise TransientBrokerError("connection refused")
        return self._broker.submit(request)


def booted(world: World, name: str, wrap: Callable[[SandboxBroker], Any] | None = None
           ) -> BotRunner:
    runner = world.runner(name, wrap)
    runner.boot()
    return runner


def test_a_fresh_bot_reconciles_warms_up_and_trades_its_first_bar(world: World) -> None:
    runner = booted(world, "hold")
    runner.step()
    runner.shutdown()

    broker = SandboxBroker(world.venue, "hold")
    (held,) = broker.positions()
    assert held.instrument == BTC and held.quantity > 0
    ledger_position = world.ledger().positions(world.bot_id("hold"))[BTC]
    assert ledger_position.quantity == held.quantity
    (order,) = world.ledger_orders("hold")
    assert order.status == OrderStatus.FILLED.value


def test_a_restarted_bot_continues_without_a_second_entry(world: World) -> None:
    first = booted(world, "hold")
    first.step()
    first.shutdown()
    world.clock.advance(timedelta(minutes=5))

    second = booted(world, "hold")
    second.step()
    world.clock.advance(timedelta(minutes=1))
    second.step()
    second.shutdown()

    assert len(world.ledger_orders("hold")) == 1
    assert len(SandboxBroker(world.venue, "hold").fills_since(None).fills) == 1


def crash(runner: BotRunner) -> None:
    with pytest.raises(Killed):
        runner.step()
    runner.database.dispose()  # what the OS does for a killed process: sockets closed


def test_a_bot_killed_after_sending_finds_its_order_by_lookup_on_restart(world: World) -> None:
    crash(booted(world, "hold", DiesAfterSending))
    (pending,) = world.ledger_orders("hold")
    assert pending.status == OrderStatus.PENDING.value

    restarted = booted(world, "hold")  # at once: the order is at the broker already
    world.clock.advance(timedelta(minutes=1))
    restarted.step()
    restarted.shutdown()

    (order,) = world.ledger_orders("hold")
    assert order.status == OrderStatus.FILLED.value
    broker = SandboxBroker(world.venue, "hold")
    assert len(broker.fills_since(None).fills) == 1
    assert world.ledger().positions(world.bot_id("hold"))[BTC].quantity == \
        broker.positions()[0].quantity


def test_a_bot_killed_before_sending_voids_the_order_after_the_grace_and_decides_again(
        world: World) -> None:
    crash(booted(world, "hold", DiesBeforeSending))
    assert SandboxBroker(world.venue, "hold").lookup(
        world.ledger_orders("hold")[0].client_order_id) is None

    restarted = booted(world, "hold")  # waits out the grace: the request might be in flight
    restarted.step()
    restarted.shutdown()

    first, second = world.ledger_orders("hold")
    assert first.status == OrderStatus.CANCELLED.value
    assert "never reached the broker" in first.reason
    assert second.status == OrderStatus.FILLED.value
    assert len(SandboxBroker(world.venue, "hold").fills_since(None).fills) == 1


def test_a_lost_answer_is_resolved_by_lookup_and_the_entry_is_not_repeated(world: World) -> None:
    runner = booted(world, "hold", AnswerLostOnce)
    runner.step()  # the answer is lost: resolve by lookup, then carry on
    world.clock.advance(timedelta(minutes=1))
    runner.step()
    runner.shutdown()

    (order,) = world.ledger_orders("hold")
    assert order.status == OrderStatus.FILLED.value
    assert len(SandboxBroker(world.venue, "hold").fills_since(None).fills) == 1


def test_a_refused_send_is_voided_after_the_grace_and_the_entry_still_happens(
        world: World) -> None:
    runner = booted(world, "hold", RefusedOnce)
    runner.step()  # refused: the order never arrives; voided once the grace has passed
    world.clock.advance(timedelta(minutes=1))
    runner.step()
    runner.shutdown()

    statuses = [o.status for o in world.ledger_orders("hold")]
    assert statuses == [OrderStatus.CANCELLED.value, OrderStatus.FILLED.value]
    assert len(SandboxBroker(world.venue, "hold").fills_since(None).fills) == 1


def test_a_position_the_ledger_does_not_know_halts_the_bot_at_boot(world: World) -> None:
    first = booted(world, "hold")
    first.step()
    first.shutdown()
    # Someone trades the bot's account behind its back.
    SandboxBroker(world.venue, "hold").submit(
        OrderRequest("manual-1", BTC, Side.BUY, OrderType.MARKET, Decimal("0.01")))

    restarted = booted(world, "hold")
    controls = world.ledger().controls(world.bot_id("hold"))
    assert controls.bot.state is TradingState.HALTED
    assert controls.bot.source is HaltSource.RECONCILIATION
    assert "ledger holds" in controls.bot.reason and "broker holds" in controls.bot.reason
    world.clock.advance(timedelta(minutes=1))
    restarted.step()
    restarted.shutdown()
    assert len(world.ledger_orders("hold")) == 1


def test_a_halted_bot_does_not_trade_until_resumed(world: World) -> None:
    runner = booted(world, "hold")
    store = FleetStore(world.database.engine)
    store.set_state("hold", TradingState.HALTED, "maintenance", "test", START)
    runner.step()
    assert world.ledger_orders("hold") == []

    store.set_state("hold", TradingState.ACTIVE, "done", "test", START)
    world.clock.advance(timedelta(minutes=1))
    runner.step()
    runner.shutdown()
    assert len(world.ledger_orders("hold")) == 1


def test_a_fleet_wide_halt_stops_every_bot(world: World) -> None:
    runner = booted(world, "hold")
    FleetStore(world.database.engine).set_state(None, TradingState.HALTED, "all stop", "t", START)
    runner.step()
    runner.shutdown()
    assert world.ledger_orders("hold") == []


def test_the_daily_loss_breaker_halts_the_bot_and_persists_why(world: World) -> None:
    runner = booted(world, "tight")
    runner.step()  # buys; fees and slippage make today's P&L negative
    world.clock.advance(timedelta(minutes=1))
    runner.step()
    runner.shutdown()
    control = world.ledger().controls(world.bot_id("tight")).bot
    assert control.state is TradingState.HALTED
    assert control.source is HaltSource.CIRCUIT_BREAKER
    assert "daily loss" in control.reason


def test_a_strategy_that_raises_halts_only_its_own_bot(world: World) -> None:
    broken = booted(world, "boom")
    broken.step()
    healthy = booted(world, "hold")
    healthy.step()
    broken.shutdown()
    healthy.shutdown()

    ledger = world.ledger()
    assert ledger.controls(world.bot_id("boom")).bot.source is HaltSource.STRATEGY_ERROR
    assert "bug in user strategy" in ledger.controls(world.bot_id("boom")).bot.reason
    assert ledger.controls(world.bot_id("hold")).bot.state is TradingState.ACTIVE
    assert len(world.ledger_orders("hold")) == 1
    with world.database.engine.connect() as conn:
        kinds = [row.kind for row in conn.execute(events.select())]
    assert "strategy.error" in kinds


def test_a_second_instance_of_a_running_bot_refuses_to_start(world: World) -> None:
    first = booted(world, "hold")
    second = world.runner("hold")
    second.owner = "another-host:4242"  # a second process, here or elsewhere
    with pytest.raises(UserError, match="already running"):
        second.boot()
    first.shutdown()


def test_heartbeats_say_what_the_bot_is_doing(world: World) -> None:
    runner = booted(world, "sma")
    runner.step()
    beats = {b.component: b for b in FleetStore(world.database.engine).heartbeats()}
    assert beats["bot:sma"].status == "trading"
    assert beats["bot:sma"].cycles == 1
    runner.shutdown()
    beats = {b.component: b for b in FleetStore(world.database.engine).heartbeats()}
    assert beats["bot:sma"].status == "stopped"


def test_the_sma_bot_trades_as_the_trend_changes_over_many_bars(world: World) -> None:
    runner = booted(world, "sma")
    for _ in range(240):
        runner.step()
        world.clock.advance(timedelta(minutes=1))
    runner.shutdown()
    placed = world.ledger_orders("sma")
    assert len(placed) >= 2
    assert all(o.status == OrderStatus.FILLED.value for o in placed)
    broker = SandboxBroker(world.venue, "sma")
    broker_qty = {p.instrument: p.quantity for p in broker.positions()}
    ledger_qty = {k: p.quantity for k, p in world.ledger().positions(world.bot_id("sma")).items()
                  if p.quantity}
    assert ledger_qty == broker_qty


def test_a_bot_whose_lease_was_taken_stops_and_leaves_the_heartbeat_alone(world: World) -> None:
    from fleetkit.runtime.runner import LeaseLostError

    runner = booted(world, "hold")
    store = FleetStore(world.database.engine)
    bot_id = world.bot_id("hold")
    assert store.force_lease(bot_id, runner.owner, "other-host:77", 3600, world.clock.now())
    store.beat(Heartbeat("bot:hold", "bot", bot_id, "trading", "the other instance", 77,
                         "other-host", world.clock.now(), world.clock.now(), 5))

    with pytest.raises(LeaseLostError, match="other-host:77"):
        runner.step()
    runner.shutdown()

    assert runner.stop.is_set()
    (beat,) = [b for b in store.heartbeats() if b.component == "bot:hold"]
    assert beat.detail == "the other instance"
    assert store.lease_holder(bot_id)[0] == "other-host:77"
