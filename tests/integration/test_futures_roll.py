"""A bot that trades the front-month NIFTY future (`contract: front_future`) and decides on
the NIFTY index (`signal`), through the live runner with a SQLite ledger and the in-process
sandbox on the real NSE calendar: it buys the December future, and when the venue's front
moves to January it rolls — two orders through the rails, the position carried whole,
reconciled clean (positions and cash, futures on margin) — and a roll cut short by a
refused leg finishes after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.contract_source import SandboxContracts
from fleetkit.brokers.sandbox.derivatives import SandboxDerivatives
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import TradingState
from fleetkit.core.errors import OrderRejectedError
from fleetkit.engine.ports import OrderReport, OrderRequest
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import events, orders
from tests.support import migrated_database

DECEMBER, JANUARY = "NFO:NIFTY26DECFUT", "NFO:NIFTY27JANFUT"
BEFORE_ROLL = datetime(2026, 12, 23, 4, 0, 30, tzinfo=UTC)  # Wednesday, 09:30 IST
AFTER_ROLL = datetime(2026, 12, 28, 4, 0, 30, tzinfo=UTC)  # Monday: the 24th's close rolled
CONFIG = """
runtime: {heartbeat_interval_s: 5, stale_after_s: 30}
risk: {max_order_value_usd: 100000, max_position_value_usd: 100000, daily_loss_limit_usd: 50000}
bots:
  - {name: fut, market: NFO, symbols: [NIFTY], contract: front_future,
     signal: "NSE:NIFTY 50", strategy: buy_and_hold, position_size_usd: 50000,
     allow_short: true}
"""
CALENDARS = MarketCalendars()


class Venue:
    def __init__(self, clock: ManualClock) -> None:
        self.venue = SandboxVenue(InventedPrices(7, load_catalog(), CALENDARS), MemoryBook(),
                                  clock, VenueConfig(seed=7, partial_fill_probability=0.0),
                                  sessions=CALENDARS)
        self.contracts = SandboxContracts(SandboxDerivatives(self.venue).futures,
                                          self.venue.instruments)
        self.refuse: set[str] = set()  # instruments whose next order the venue refuses

    def connect(self, settings: BotSettings) -> BrokerConnection:
        broker = RefusingBroker(self.venue, settings.name, self.refuse)
        return BrokerConnection(broker, broker, contracts=self.contracts)


class RefusingBroker(SandboxBroker):
    def __init__(self, venue: SandboxVenue, account: str, refuse: set[str]) -> None:
        super().__init__(venue, account)
        self._refuse = refuse

    def submit(self, request: OrderRequest) -> OrderReport:
        if request.instrument in self._refuse:
            self._refuse.discard(request.instrument)
            raise OrderRejectedError("venue busy: try again")
        return super().submit(request)


@dataclass
class Fleet:
    clock: ManualClock
    venue: Venue
    database: Database
    loaded: LoadedConfig

    def runner(self) -> BotRunner:
        def sleep(seconds: float) -> bool:
            self.clock.advance(timedelta(seconds=seconds))
            return False

        return BotRunner(self.loaded, "fut", str(self.database.engine.url), self.venue.connect,
                         clock=self.clock, sleep=sleep)

    def steps(self, runner: BotRunner, count: int) -> None:
        for _ in range(count):
            runner.step()
            self.clock.advance(timedelta(minutes=1))

    def positions(self) -> dict[str, Decimal]:
        ledger = SqlLedger(self.database.engine, self.database.fleet_tag())
        bot_id = FleetStore(self.database.engine).bot("fut").id
        return {k: p.quantity for k, p in ledger.positions(bot_id).items()}

    def broker_positions(self) -> dict[str, Decimal]:
        return {p.instrument: p.quantity for p in SandboxBroker(self.venue.venue, "fut").positions()
                if p.quantity}

    def events(self, kind: str) -> list[str]:
        with self.database.engine.connect() as conn:
            return [r.message for r in conn.execute(select(events.c.message)
                                                    .where(events.c.kind == kind))]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    clock = ManualClock(BEFORE_ROLL)
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)
    yield Fleet(clock, Venue(clock), database, loaded)
    database.dispose()


def test_the_bot_buys_the_front_future_then_rolls_it_whole_into_the_next(fleet: Fleet) -> None:
    runner = fleet.runner()
    try:
        runner.boot()
        assert list(runner.bot.slots) == [DECEMBER]
        fleet.steps(runner, 3)
        held = fleet.positions()[DECEMBER]
        assert held > 0 and held % 75 == 0  # whole lots of the future, not the index
        fleet.clock.set(AFTER_ROLL)
        fleet.steps(runner, 3)
        assert list(runner.bot.slots) == [JANUARY]
        assert runner.bot.state.of(JANUARY).roll_from is None
        assert fleet.positions() == {DECEMBER: Decimal(0), JANUARY: held}
        assert fleet.broker_positions() == {JANUARY: held}
        report = runner.sync.run()
        assert report.differences == []
    finally:
        runner.shutdown()
    assert fleet.events("roll.started") == [f"rolling {held} from {DECEMBER} to {JANUARY}"]
    assert fleet.events("roll.done") == [f"rolled {held} from {DECEMBER} to {JANUARY}"]
    with fleet.database.engine.connect() as conn:
        sent = [(r.instrument, r.side, r.quantity, r.status) for r in conn.execute(
            select(orders.c.instrument, orders.c.side, orders.c.quantity, orders.c.status)
            .order_by(orders.c.id))]
    assert sent == [(DECEMBER, "buy", held, "filled"), (DECEMBER, "sell", held, "filled"),
                    (JANUARY, "buy", held, "filled")]
    control = SqlLedger(fleet.database.engine, "-").controls(
        FleetStore(fleet.database.engine).bot("fut").id).bot
    assert control.state is TradingState.ACTIVE


def test_a_roll_whose_second_leg_is_refused_finishes_after_a_restart(fleet: Fleet) -> None:
    runner = fleet.runner()
    try:
        runner.boot()
        fleet.steps(runner, 3)
        held = fleet.positions()[DECEMBER]
        fleet.clock.set(AFTER_ROLL)
        fleet.venue.refuse.add(JANUARY)
        fleet.steps(runner, 1)
        # The old month is closed, the new one refused: flat, with the roll still owed.
        assert fleet.broker_positions() == {}
        assert runner.bot.state.of(JANUARY).roll_from == DECEMBER
        assert len(fleet.events("roll.blocked")) == 1
    finally:
        runner.shutdown()
    again = fleet.runner()
    try:
        again.boot()
        fleet.steps(again, 2)
        assert fleet.broker_positions() == {JANUARY: held}
        assert again.bot.state.of(JANUARY).roll_from is None
        assert again.sync.run().differences == []
    finally:
        again.shutdown()
    assert fleet.events("roll.done") == [f"rolled {held} from {DECEMBER} to {JANUARY}"]


def test_a_bot_down_over_the_roll_rolls_when_it_starts_again(fleet: Fleet) -> None:
    runner = fleet.runner()
    try:
        runner.boot()
        fleet.steps(runner, 3)
        held = fleet.positions()[DECEMBER]
    finally:
        runner.shutdown()
    fleet.clock.set(AFTER_ROLL)  # the front moved while it was stopped
    again = fleet.runner()
    try:
        again.boot()
        assert list(again.bot.slots) == [JANUARY]
        fleet.steps(again, 2)
        assert fleet.broker_positions() == {JANUARY: held}
        assert again.sync.run().differences == []
    finally:
        again.shutdown()
