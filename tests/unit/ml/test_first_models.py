"""A learning bot's first models (`ml.train_if_missing`, runtime.ml_bootstrap) through the
live runner (`fleet bot run`'s BotRunner, a SQLite ledger, the in-process sandbox): the
real `fleet ml train` runs as a subprocess at boot, then the bot decides with the model;
a training that fails is recorded and the bot halts at its first bar with the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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
from fleetkit.config.loader import load_config
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.ml.model_dir import verify_model_dir
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import events
from fleetkit.strategy.learned import RlPolicyStrategy
from tests.support import migrated_database

START = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
COIN_SET = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}


def config_text(extra_ml: str = "") -> str:
    return f"""
runtime: {{heartbeat_interval_s: 5, stale_after_s: 30}}
risk: {{max_order_value_usd: 50000, max_position_value_usd: 100000,
       daily_loss_limit_usd: 5000}}
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    bar_interval: 1h
    allow_short: true
    ml:
      features: {json.dumps(COIN_SET)}
      history_bars: 300
      steps: 256
      n_envs: 1
      window: 8
      episode_bars: 64
      train_if_missing: true
      {extra_ml}
"""


def boot_and_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_ml: str = ""
                  ) -> dict[str, Any]:
    """Boot the bot on a fresh fleet home (no models), step three hourly bars; what the
    runner did."""
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    for name in ("FLEET_DB_URL", "FLEET_MARKET_DATA_DB_URL", "FLEET_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "fleet.yaml"
    path.write_text(config_text(extra_ml), encoding="utf-8")
    loaded = load_config(path)
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    clock = ManualClock(START)
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), MemoryBook(),
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SandboxBroker(venue, settings.name)
        return BrokerConnection(broker, broker)

    def sleep(seconds: float) -> bool:
        clock.advance(timedelta(seconds=seconds))
        return False

    runner = BotRunner(loaded, "rl-btc", str(database.engine.url), connect, clock=clock,
                       sleep=sleep)
    beats: list[tuple[str, str]] = []
    real_beat = runner.beat

    def beat(status: str, detail: str) -> None:
        beats.append((status, detail))
        real_beat(status, detail)

    runner.beat = beat  # type: ignore[method-assign]
    try:
        runner.boot()
        for _ in range(3):
            runner.step()
            clock.advance(timedelta(hours=1))
        (slot,) = runner.bot.slots.values()
        strategy = slot.strategy
    finally:
        runner.shutdown()
    bot_id = FleetStore(database.engine).bot("rl-btc").id
    control = SqlLedger(database.engine, database.fleet_tag()).controls(bot_id).bot
    with database.engine.connect() as conn:
        recorded = list(conn.execute(select(events).where(events.c.kind.like("ml.%"))))
    database.dispose()
    return {"strategy": strategy, "control": control, "events": recorded, "beats": beats,
            "models": tmp_path / "var" / "models" / "rl-btc"}


def test_a_learning_bot_trains_its_missing_model_at_boot_then_decides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = boot_and_step(tmp_path, monkeypatch)

    manifest = verify_model_dir(done["models"] / "1h")
    assert (manifest.steps, manifest.timeframe) == (256, "1h")
    assert sorted(p.name for p in done["models"].iterdir()) == ["1h"]  # no temporary left
    assert done["beats"][0] == ("training", "training its first models (timeframes 1h)")
    strategy = done["strategy"]
    assert isinstance(strategy, RlPolicyStrategy)
    assert strategy.refused is None
    assert strategy.models[0].decisions > 0
    assert done["control"].state is TradingState.ACTIVE
    (event,) = done["events"]
    assert (event.kind, event.severity) == ("ml.trained", "info")
    data = event.data if isinstance(event.data, dict) else json.loads(event.data)
    assert data["timeframes"] == ["1h"]
    assert data["paths"] == [str(done["models"] / "1h")]
    assert data["seconds"] > 0


def test_a_failed_training_is_recorded_and_the_bot_halts_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox invents no bars for an instrument it does not list: too little history.
    done = boot_and_step(tmp_path, monkeypatch, extra_ml='signal: "CRYPTO:NOPE/USDT"')

    (event,) = done["events"]
    assert (event.kind, event.severity) == ("ml.train_failed", "error")
    assert "training its first models (1h) failed: needs 657 bars of 1h for " \
           "CRYPTO:NOPE/USDT" in event.message
    assert "\n" not in event.message
    assert not (done["models"] / "1h").exists()
    control = done["control"]
    assert control.state is TradingState.HALTED
    assert control.source is HaltSource.STRATEGY_ERROR
    assert "holds no model" in control.reason
