"""The rl_policy strategy through the live runner (`fleet bot run`'s BotRunner, a SQLite
ledger, the in-process sandbox): a model changed by one byte halts the bot with the reason,
records a critical strategy.error event and its alert in the outbox, and sends nothing to
the venue."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.ml.model_dir import MODEL_FILE
from fleetkit.ml.training import train
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import events, orders, outbox
from fleetkit.strategy.learned import RlPolicyStrategy
from tests.support import migrated_database
from tests.unit.ml.envs import coin_market, fast_env

START = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)


def test_a_changed_model_halts_the_bot_alerts_and_sends_nothing(tmp_path: Path) -> None:
    market = coin_market(bars=200)
    model = train(lambda: fast_env(market), "mlp", 64, 3, out_dir=tmp_path / "m", n_envs=1)
    changed = tmp_path / "changed"
    shutil.copytree(model.directory, changed)
    data = bytearray((changed / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (changed / MODEL_FILE).write_bytes(bytes(data))

    config = f"""
runtime: {{heartbeat_interval_s: 5, stale_after_s: 30}}
risk: {{max_order_value_usd: 50000, max_position_value_usd: 100000,
       daily_loss_limit_usd: 5000}}
bots:
  - {{name: learned, market: CRYPTO, symbols: ["BTC/USDT"], strategy: rl_policy,
     params: {{model: {json.dumps(str(changed))}}}}}
"""
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    clock = ManualClock(START)
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), MemoryBook(),
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))
    loaded = LoadedConfig(parse_config(config, "test.yaml"), "test.yaml", tmp_path)

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SandboxBroker(venue, settings.name)
        return BrokerConnection(broker, broker)

    def sleep(seconds: float) -> bool:
        clock.advance(timedelta(seconds=seconds))
        return False

    runner = BotRunner(loaded, "learned", str(database.engine.url), connect, clock=clock,
                       sleep=sleep)
    try:
        runner.boot()
        for _ in range(3):
            runner.step()
            clock.advance(timedelta(minutes=1))
        (slot,) = runner.bot.slots.values()
        assert isinstance(slot.strategy, RlPolicyStrategy)
        assert slot.strategy.refused is not None
        # The runner handed it the calendars with the config's overrides.
        assert isinstance(slot.strategy._sessions, MarketCalendars)
    finally:
        runner.shutdown()

    bot_id = FleetStore(database.engine).bot("learned").id
    control = SqlLedger(database.engine, database.fleet_tag()).controls(bot_id).bot
    assert control.state is TradingState.HALTED
    assert control.source is HaltSource.STRATEGY_ERROR
    assert "model.zip has sha256" in control.reason
    with database.engine.connect() as conn:
        errors = list(conn.execute(select(events).where(events.c.kind == "strategy.error")))
        alerts = list(conn.execute(select(outbox).where(outbox.c.kind == "strategy.error")))
        sent = list(conn.execute(select(orders)))
    assert len(errors) == 1 and errors[0].severity == "critical"
    assert "model.zip has sha256" in errors[0].message
    assert len(alerts) == 1 and alerts[0].severity == "critical"
    assert "model.zip has sha256" in alerts[0].text
    assert sent == []
    broker = SandboxBroker(venue, "learned")
    assert broker.positions() == [] and broker.open_orders() == []
    database.dispose()

