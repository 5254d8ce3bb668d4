"""A bot that trades the BTC perpetual (on margin, deciding on the spot index's bars) through
the live runner with a SQLite ledger and the in-process sandbox: it holds the perpetual over
funding settlements, each payment lands in its ledger once (realized P&L), and its cash
reconciles with the venue's — the notional never paid, the funding counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

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
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import funding_payments
from tests.support import migrated_database

PERP = "CRYPTO:BTC/USDT:USDT"
START = datetime(2026, 11, 20, 6, 0, 30, tzinfo=UTC)  # two hours before a settlement
CONFIG = """
runtime: {heartbeat_interval_s: 5, stale_after_s: 30, reconcile_interval_s: 600}
risk: {max_order_value_usd: 100000, max_position_value_usd: 100000, daily_loss_limit_usd: 50000}
bots:
  - {name: perp, market: CRYPTO, symbols: ["BTC/USDT:USDT"], signal: "CRYPTO:BTC/USDT",
     strategy: buy_and_hold, position_size_usd: 30000, bar_interval: 1h}
"""


def test_a_perpetual_bot_books_each_funding_payment_once_and_reconciles_its_cash(
        tmp_path: Path) -> None:
    clock = ManualClock(START)
    calendars = MarketCalendars()
    venue = SandboxVenue(InventedPrices(7, load_catalog(), calendars), MemoryBook(), clock,
                         VenueConfig(seed=7, partial_fill_probability=0.0), sessions=calendars)
    contracts = SandboxContracts(SandboxDerivatives(venue).futures, venue.instruments)
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SandboxBroker(venue, settings.name)
        return BrokerConnection(broker, broker, contracts=contracts)

    def sleep(seconds: float) -> bool:
        clock.advance(timedelta(seconds=seconds))
        return False

    runner = BotRunner(loaded, "perp", str(database.engine.url), connect, clock=clock,
                       sleep=sleep)
    try:
        runner.boot()
        runner.step()
        ledger = SqlLedger(database.engine, database.fleet_tag())
        bot_id = FleetStore(database.engine).bot("perp").id
        held = ledger.positions(bot_id)[PERP]
        assert held.quantity > 0
        realized_before = held.realized_pnl
        cash_before = SandboxBroker(venue, "perp").cash()["USDT"]
        # Only the fee left the account: the notional is margin's, not cash's.
        assert cash_before == Decimal(1_000_000) - held.fees
        for _ in range(17):  # to 23:00 UTC: past the settlements at 08:00 and 16:00
            clock.advance(timedelta(hours=1))
            runner.step()
        report = runner.sync.run()
        assert report.differences == []
        again = runner.sync.run()  # a second pass pays nothing again
        assert again.differences == []
    finally:
        runner.shutdown()
    with database.engine.connect() as conn:
        paid = list(conn.execute(select(funding_payments)))
    assert [p.at for p in paid] == [datetime(2026, 11, 20, 8, tzinfo=UTC),
                                    datetime(2026, 11, 20, 16, tzinfo=UTC)]
    assert all(p.quantity == held.quantity for p in paid)
    total = sum((p.amount for p in paid), Decimal(0))
    # Longs pay a positive rate: -rate x quantity x mark, rounded to the venue's 1e-8.
    assert all(abs(p.amount + p.rate * p.quantity * p.mark) < Decimal("1e-8") for p in paid)
    assert total != 0
    after = SqlLedger(database.engine, database.fleet_tag()).positions(bot_id)[PERP]
    assert after.realized_pnl == realized_before + total
    assert SandboxBroker(venue, "perp").cash()["USDT"] == cash_before + total
    control = SqlLedger(database.engine, "-").controls(bot_id).bot
    assert control.state is TradingState.ACTIVE
    database.dispose()
