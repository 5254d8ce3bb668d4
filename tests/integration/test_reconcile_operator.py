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
                 loaded: LoadedConfig, url: str, book: MemoryBook) -> None:
        self.database, self.venue, self.clock, self.loaded, self.url = (database, venue, clock,
                                                                        loaded, url)
        self.book = book
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
    book = MemoryBook()
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), book,
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)
    yield Setup(database, venue, clock, loaded, database_url, book)
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
    (difference, cash) = result.differences  # the trade moved the broker's cash too
    assert difference.kind is DifferenceKind.POSITION
    assert difference.broker_quantity - difference.ledger_quantity == Decimal("0.01")
    assert cash.kind is DifferenceKind.CASH
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


# --- beyond quantities: cash and average prices (issue 12) --------------------------------


def bot_id_of(setup: Setup) -> int:
    return FleetStore(setup.database.engine).bot("hold").id


def tamper_book(setup: Setup, change: Any) -> None:
    """Change the venue's own book behind everyone's back (a broker's records moving)."""
    with setup.book.write() as txn:
        change(txn)


def test_the_first_clean_reconciliation_takes_a_cash_baseline_and_later_ones_agree(
        setup: Setup) -> None:
    runner = setup.trade_once()
    bot = bot_id_of(setup)
    baseline = setup.ledger().cash_baseline(bot)
    assert set(baseline) == {"USDT"}
    setup.clock.advance(timedelta(minutes=3))
    runner.step()  # more fills, fees included
    report = runner.sync.run()
    [expected] = runner.sync.expected_cash().values()
    runner.shutdown()
    assert report.clean and report.differences == []
    assert setup.ledger().cash_baseline(bot) == baseline  # taken once, then only compared
    assert abs(expected - setup.broker.cash()["USDT"]) < Decimal("0.000001")


def test_cash_moved_behind_the_ledgers_back_is_a_difference_that_halts(setup: Setup) -> None:
    runner = setup.trade_once()
    bot = bot_id_of(setup)
    cash = setup.broker.cash()["USDT"]
    tamper_book(setup, lambda txn: txn.set_balance("hold", "USDT", cash - 1_000_000))
    report = runner.sync.run()
    runner.shutdown()
    [difference] = report.differences
    assert difference.kind is DifferenceKind.CASH and difference.instrument == "USDT"
    control = setup.ledger().controls(bot).bot
    assert control.state is TradingState.HALTED and "USDT cash" in control.reason
    result = setup.reconciler().inspect()
    assert result.as_json()["clean"] is False
    assert result.as_json()["differences"][0]["kind"] == "cash"


def test_an_average_price_the_broker_disagrees_with_is_a_difference_that_halts(
        setup: Setup) -> None:
    from fleetkit.brokers.sandbox.book import StoredPosition

    runner = setup.trade_once()
    [held] = setup.broker.positions()
    tamper_book(setup, lambda txn: txn.set_position("hold", StoredPosition(
        BTC, held.quantity, held.average_price * 1000)))
    report = runner.sync.run()
    runner.shutdown()
    assert [d.kind for d in report.differences] == [DifferenceKind.AVERAGE_PRICE]
    assert "average price" in setup.ledger().controls(bot_id_of(setup)).bot.reason


def test_adopting_the_broker_takes_its_cash_and_average_price_as_the_new_truth(
        setup: Setup) -> None:
    from fleetkit.brokers.sandbox.book import StoredPosition

    runner = setup.trade_once()
    [held] = setup.broker.positions()
    cash = setup.broker.cash()["USDT"]
    tamper_book(setup, lambda txn: txn.set_balance("hold", "USDT", cash + 500))
    tamper_book(setup, lambda txn: txn.set_position("hold", StoredPosition(
        BTC, held.quantity, held.average_price * Decimal("1.01"))))
    setup.halt()
    runner.shutdown()
    assert {d.kind for d in setup.reconciler().inspect().differences} == {
        DifferenceKind.CASH, DifferenceKind.AVERAGE_PRICE}

    after = setup.reconciler().adopt_broker("deposit and a venue correction", "ops",
                                            setup.clock.now())

    assert after.clean, after.differences
    bot = bot_id_of(setup)
    assert setup.ledger().positions(bot)[BTC].average_price == held.average_price * Decimal("1.01")
    with setup.database.engine.connect() as conn:
        kinds = [row.kind for row in conn.execute(select(events.c.kind))]
    assert kinds.count("ledger.cash_baseline") == 2  # the first clean one, then the adopted


def test_a_broker_that_does_not_report_its_own_cash_is_never_compared_on_cash(
        setup: Setup) -> None:
    """A live exchange account's cash is shared with deposits and other use (ccxt: None)."""
    class SharedAccount(SandboxBroker):
        def cash(self) -> None:  # type: ignore[override]
            return None

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SharedAccount(setup.venue, settings.name)
        return BrokerConnection(broker, broker)

    runner = BotRunner(setup.loaded, "hold", setup.url, connect, clock=setup.clock)
    runner.boot()
    runner.step()
    tamper_book(setup, lambda txn: txn.set_balance("hold", "USDT", Decimal(-5)))
    assert runner.sync.run().clean
    runner.shutdown()
    assert setup.ledger().cash_baseline(bot_id_of(setup)) == {}
