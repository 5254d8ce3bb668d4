"""One kernel: the same bot over the same price tape, once live and once as a backtest, does
exactly the same things (issue 13, part 1).

Live: `BotRunner` (what `fleet bot run` runs) on SQLite or PostgreSQL, talking over HTTP to a
real `SandboxService` whose venue prices from the tape, on a simulated clock stepped from
one bar close to the next. Backtest: the config's bot as `fleet backtest` replays it
(`runtime.wiring.bot_recipe` -> `backtest.run_fleet_backtest`), every mark kept. Compared:
orders, fills, every P&L mark, the day's P&L, the halts (a day that trips the daily-loss
breaker is in the tape), and the final ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.backtest.replay import FleetReplay, ReplayBot
from fleetkit.backtest.tape import BarTape, generated_tape
from fleetkit.backtest.venue import TapesPrices
from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.runtime.wiring import bot_instruments, bot_recipe, sandbox_catalog
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.schema import events, fills, orders, pnl_snapshots
from tests.support import migrated_database

BTC = "CRYPTO:BTC/USDT"
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
INTERVAL_S = 300
BARS = 12 * 24 * 2 + 60  # two days and five hours of five-minute bars
CONFIG = """
runtime: {heartbeat_interval_s: 3000, stale_after_s: 6000, reconcile_interval_s: 864000,
          bar_settle_s: 1}
risk: {max_order_value_usd: 1000000, max_position_value_usd: 1000000,
       daily_loss_limit_usd: 150}
fleet_risk: {daily_loss_limit_usd: 1000000}
reconcile: {compare_cash: false}
defaults: {bar_interval: 5m, position_size_usd: 10000}
bots:
  - {name: parity, market: CRYPTO, symbols: ["BTC/USDT"], strategy: sma_cross,
     params: {fast: 5, slow: 20}}
"""
VENUE = VenueConfig(seed=7, fee_bps=Decimal(1), slippage_bps=Decimal(1),
                    partial_fill_probability=0.0)


@dataclass(frozen=True)
class Record:
    orders: list[tuple[Any, ...]]
    fills: list[tuple[Any, ...]]
    marks: list[tuple[Any, ...]]
    halts: list[tuple[Any, ...]]
    positions: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]]


@pytest.fixture(scope="module")
def tape() -> BarTape:
    catalog = load_catalog()
    prices = InventedPrices(10, catalog, MarketCalendars())  # a seed whose day two is bad
    return generated_tape(prices, catalog[BTC].instrument, START, BARS, INTERVAL_S)


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return LoadedConfig(parse_config(CONFIG, "parity.yaml"), "parity.yaml", tmp_path)


def live(loaded: LoadedConfig, tape: BarTape, url: str, restart_every: int = 0) -> Record:
    """The bot live; `restart_every` bars, stopped and started again (a new process would
    do no more: everything it knows comes from the database)."""
    clock = ManualClock(START + timedelta(seconds=INTERVAL_S + 1))
    venue = SandboxVenue(TapesPrices({BTC: tape}), MemoryBook(), clock, VENUE)

    def connect(settings: BotSettings) -> BrokerConnection:
        client = SandboxClient(service.url, settings.name)
        return BrokerConnection(client, client, client.close)

    def sleep(seconds: float) -> bool:
        clock.advance(timedelta(seconds=seconds))
        return False

    migrated_database(url).dispose()
    last_close = START + timedelta(seconds=INTERVAL_S * BARS)
    with SandboxService(venue, match_interval_s=3600) as service:
        runner = BotRunner(loaded, "parity", url, connect, clock=clock, sleep=sleep)
        runner.boot()
        try:
            while clock.now() <= last_close + timedelta(seconds=1):
                wake = runner.step()
                clock.set(max(wake, clock.now() + timedelta(milliseconds=1)))
                if restart_every and runner.cycles >= restart_every:
                    runner.shutdown()
                    runner = BotRunner(loaded, "parity", url, connect, clock=clock,
                                       sleep=sleep)
                    runner.boot()
        finally:
            runner.shutdown()
    database: Database = migrated_database(url)
    try:
        return _from_database(database)
    finally:
        database.dispose()


def _from_database(database: Database) -> Record:
    bot = FleetStore(database.engine).bot("parity").id
    with database.engine.connect() as conn:
        placed = [(r.instrument, r.side, r.order_type, r.quantity, r.status, r.filled_quantity,
                   r.reason) for r in conn.execute(select(orders).where(orders.c.bot_id == bot)
                                                   .order_by(orders.c.id))]
        filled = [(r.instrument, r.side, r.quantity, r.price, r.fee) for r in conn.execute(
            select(fills).where(fills.c.bot_id == bot).order_by(fills.c.id))]
        marks = [(_bar_of(r.ts), r.day, r.realized, r.unrealized, r.fees, r.daily)
                 for r in conn.execute(select(pnl_snapshots).where(
                     pnl_snapshots.c.bot_id == bot).order_by(pnl_snapshots.c.id))]
        halts = [(_bar_of(r.created_at), r.code, r.message) for r in conn.execute(
            select(events).where(events.c.kind == "control.halted").order_by(events.c.id))]
    from fleetkit.store.ledger import SqlLedger

    positions = SqlLedger(database.engine, database.fleet_tag()).positions(bot)
    return Record(placed, filled, marks, halts, {k: (p.quantity, p.average_price,
                                                     p.realized_pnl, p.fees)
                                                 for k, p in positions.items()})


def backtest(loaded: LoadedConfig, tape: BarTape) -> Record:
    config = loaded.config
    settings = config.bot("parity")
    recipe = bot_recipe(config, settings, 1,
                        bot_instruments(settings, sandbox_catalog(config)))
    # What run_fleet_backtest (and so `fleet backtest`) does, keeping the replay's ledger.
    replay = FleetReplay([ReplayBot(recipe, {BTC: tape})], VENUE, keep_marks=True)
    replay.run()
    ledger = replay.ledger
    placed = [(o.instrument, o.side.value, o.order_type.value, o.quantity, o.status.value,
               o.filled_quantity, o.reason) for o in ledger.orders(1)]
    filled = [(f.instrument, f.side.value, f.quantity, f.price, f.fee) for f in ledger.fills(1)]
    marks = [(_bar_of(at), s.day, s.realized, s.unrealized, s.fees, s.daily)
             for _, at, s in ledger.snapshots]
    halts = [(_bar_of(e.at), e.event.code, e.event.message) for e in ledger.events
             if e.event.kind == "control.halted"]
    return Record(placed, filled, marks, halts, {k: (p.quantity, p.average_price,
                                                     p.realized_pnl, p.fees)
                                                 for k, p in ledger.positions(1).items()})


def _bar_of(at: datetime) -> int:
    """Which bar close a moment belongs to (live acts a settle second after the close)."""
    return int((at.timestamp() - START.timestamp()) // INTERVAL_S)


def test_a_bot_live_and_in_a_backtest_does_exactly_the_same(loaded: LoadedConfig, tape: BarTape,
                                                            database_url: str) -> None:
    expected = backtest(loaded, tape)
    got = live(loaded, tape, database_url)
    assert len(expected.fills) > 20, "the tape must make the bot trade"
    assert [h[1] for h in expected.halts] == ["circuit_breaker"], expected.halts
    assert expected.halts[0][0] > 12 * 24, "the breaker trips on the second day"
    assert got.orders == expected.orders
    assert got.fills == expected.fills
    assert got.marks == expected.marks
    assert got.halts == expected.halts
    assert got.positions == expected.positions


def test_restarting_the_live_bot_changes_nothing_it_does(loaded: LoadedConfig, tape: BarTape,
                                                        database_url: str) -> None:
    """Stopped and started every 37 bars, positions held across most restarts: the trailing
    stop's best close, the ATR and the day's P&L start come back from the database."""
    expected = backtest(loaded, tape)
    got = live(loaded, tape, database_url, restart_every=37)
    assert (got.orders, got.fills, got.halts, got.positions) == (
        expected.orders, expected.fills, expected.halts, expected.positions)
