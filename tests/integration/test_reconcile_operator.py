"""Operator reconciliation: seeing ledger vs broker, and adopting the broker's truth, on
both backends against an in-process sandbox venue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import TradingState
from fleetkit.core.errors import UserError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest
from fleetkit.engine.reconcile import DifferenceKind
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.reconcile import Reconciler
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import events, position_adjustments
from tests.support import migrated_database

START = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
BTC = "CRYPTO:BTC/USDT"
CONFIG = """
bots:
  - {name: hold, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}
"""


class Setup:
    def __init__(self, database: Any, venue: SandboxVenue, clock: ManualClock,
                 loaded: LoadedConfig, url: str) -> None:
        self.database, self.venue, self.clock, self.loaded, self.url = (database, venue, clock,
                                                                        loaded, url)
        self.broker = SandboxBroker(venue, "hold")

    def trade_once(self) -> BotRunner:
        def connect(settings: BotSettings) -> BrokerConnection:
            broker = SandboxBroker(self.venue, settings.name)
            return BrokerConnection(broker, broker)

        runner = BotRunner(self.loaded, "hold", self.url, connect, clock=self.clock)
        runner.boot()
        runner.step()
        return runner

    def reconciler(self) -> Reconciler:
        return Reconciler(self.loaded.config, self.loaded.config.bot("hold"), self.database,
                          self.broker)

    def ledger(self) -> SqlLedger:
        return SqlLedger(self.database.engine, self.database.fleet_tag())

    def halt(self) -> None:
        FleetStore(self.database.engine).set_state("hold", TradingState.HALTED, "checking",
                                                  "test", self.clock.now())


@pytest.fixture
def setup(database_url: str, tmp_path: Path) -> Iterator[Setup]:
    database = migrated_database(database_url)
    clock = ManualClock(START)
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), MemoryBook(),
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)
    yield Setup(database, venue, clock, loaded, database_url)
    database.dispose()


def trade_behind_its_back(setup: Setup, quantity: str = "0.01") -> None:
    setup.broker.submit(OrderRequest(f"manual-{quantity}", BTC, Side.BUY, OrderType.MARKET,
                                     Decimal(quantity)))


def test_a_bot_in_step_with_its_broker_reconciles_clean(setup: Setup) -> None:
    setup.trade_once().shutdown()
    result = setup.reconciler().inspect()
    assert result.clean
    (line,) = result.positions
    assert line.ledger == line.broker > 0


def test_a_trade_behind_the_bots_back_shows_as_a_difference_and_changes_nothing(
        setup: Setup) -> None:
    setup.trade_once().shutdown()
    trade_behind_its_back(setup)
    before = setup.ledger().positions(FleetStore(setup.database.engine).bot("hold").id)

    result = setup.reconciler().inspect()

    assert not result.clean
    (difference,) = result.differences
    assert difference.kind is DifferenceKind.POSITION
    assert difference.broker_quantity - difference.ledger_quantity == Decimal("0.01")
    assert setup.ledger().positions(FleetStore(setup.database.engine).bot("hold").id) == before
    assert result.as_json()["clean"] is False


def test_adopting_is_refused_while_the_bot_is_trading(setup: Setup) -> None:
    runner = setup.trade_once()  # running: fresh heartbeat, not halted
    trade_behind_its_back(setup)
    with pytest.raises(UserError, match="halt it first"):
        setup.reconciler().adopt_broker("ops fix", "test", setup.clock.now())
    runner.shutdown()


def test_adopting_the_broker_makes_the_ledger_match_and_audits_every_change(
        setup: Setup) -> None:
    runner = setup.trade_once()
    trade_behind_its_back(setup)
    setup.halt()
    runner.shutdown()

    after = setup.reconciler().adopt_broker("manual trade on the desk", "ops", setup.clock.now())

    assert after.clean
    bot_id = FleetStore(setup.database.engine).bot("hold").id
    held = setup.ledger().positions(bot_id)[BTC]
    assert held.quantity == setup.broker.positions()[0].quantity
    with setup.database.engine.connect() as conn:
        (adjustment,) = conn.execute(select(position_adjustments)).all()
        kinds = [row.kind for row in conn.execute(select(events.c.kind))]
    assert adjustment.quantity_after - adjustment.quantity_before == Decimal("0.01")
    assert adjustment.reason == "manual trade on the desk" and adjustment.actor == "ops"
    assert "reconcile.adjusted" in kinds


def test_an_order_only_the_broker_knows_is_taken_into_the_ledger(setup: Setup) -> None:
    setup.trade_once().shutdown()
    price = setup.broker.quote(BTC).price
    setup.broker.submit(OrderRequest("desk-limit", BTC, Side.BUY, OrderType.LIMIT,
                                     Decimal("0.01"), (price / 2).quantize(Decimal("0.01"))))
    setup.halt()
    assert not setup.reconciler().inspect().clean

    after = setup.reconciler().adopt_broker("desk order", "ops", setup.clock.now())

    assert after.clean
    bot_id = FleetStore(setup.database.engine).bot("hold").id
    adopted = [o for o in setup.ledger().open_orders(bot_id) if o.client_order_id == "desk-limit"]
    assert adopted and "adopted from the broker" in adopted[0].reason


def test_an_order_only_the_ledger_knows_is_closed(setup: Setup) -> None:
    setup.trade_once().shutdown()
    ledger = setup.ledger()
    bot_id = FleetStore(setup.database.engine).bot("hold").id
    from fleetkit.core.orders import OrderIntent
    from fleetkit.engine.ports import OrderReport

    ghost = ledger.write_ahead(bot_id, OrderIntent(BTC, Side.BUY, Decimal("0.01"),
                                                   OrderType.MARKET, Decimal(1)), None,
                               setup.clock.now())
    ledger.record_report(bot_id, ghost, OrderReport(
        ghost.client_order_id, "B-ghost", BTC, Side.BUY, OrderType.MARKET, Decimal("0.01"),
        None, OrderStatus.ACKNOWLEDGED, Decimal(0), None), setup.clock.now())
    setup.halt()
    setup.clock.advance(timedelta(minutes=1))

    after = setup.reconciler().adopt_broker("ghost order", "ops", setup.clock.now())

    assert after.clean
    assert all(o.client_order_id != ghost.client_order_id for o in ledger.open_orders(bot_id))
