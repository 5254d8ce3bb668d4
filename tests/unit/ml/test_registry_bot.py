"""A learning bot that follows the model registry (`params.model: registry`,
runtime.model_follow) through the live runner (`fleet bot run`'s BotRunner, a SQLite ledger
and registry, the in-process sandbox, a file:// artifact store): it trades the active
version, switches at the next bar on an activation and on a rollback without a restart,
keeps trading its version when the new one's stored file is corrupt (an error event and its
infrastructure alert, once), reports the version in `fleet status`, and halts with the
reason when no version is active."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.artifacts import ArtifactStore, open_store
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
from fleetkit.ml.model_dir import MODEL_FILE
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.model_registry import MANIFEST, ModelFile, ModelRegistry, read_manifest
from fleetkit.store.schema import events, outbox
from fleetkit.store.status import fleet_view, traded_models
from fleetkit.strategy.learned import RlPolicyStrategy
from tests.support import migrated_database

START = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
COIN_SET = {"timeframes": {"1h": ["returns", "rsi"]}, "calendar": []}
BOT = "rl-btc"


def config_text(models_dir: str, seed: int = 0) -> str:
    return f"""
runtime: {{heartbeat_interval_s: 5, stale_after_s: 30}}
risk: {{max_order_value_usd: 50000, max_position_value_usd: 100000,
       daily_loss_limit_usd: 5000}}
bots:
  - name: {BOT}
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    bar_interval: 1h
    allow_short: true
    params: {{model: registry}}
    ml:
      features: {json.dumps(COIN_SET)}
      history_bars: 300
      steps: 256
      n_envs: 1
      window: 8
      episode_bars: 64
      seed: {seed}
      models_dir: {json.dumps(models_dir)}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two models of the bot's 1h timeframe, by the real `fleet ml train` (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("trained")
    found = {}
    for seed in (0, 1):
        config = root / f"fleet-{seed}.yaml"
        config.write_text(config_text(str(root / f"seed{seed}"), seed), encoding="utf-8")
        env = {k: v for k, v in os.environ.items()
               if k not in ("FLEET_DB_URL", "FLEET_MARKET_DATA_DB_URL", "FLEET_CONFIG")}
        done = subprocess.run(
            [sys.executable, "-m", "fleetkit", "ml", "train", BOT, "--no-progress", "--json",
             "--config", str(config)], env={**env, "FLEET_HOME": str(root / "home")},
            capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        found[seed] = Path(json.loads(done.stdout)["models"][0]["path"])
    return found


@dataclass
class Fleet:
    runner: BotRunner
    clock: ManualClock
    database: Any
    registry: ModelRegistry
    store: ArtifactStore
    models_dir: Path

    @property
    def strategy(self) -> RlPolicyStrategy:
        (slot,) = self.runner.bot.slots.values()
        assert isinstance(slot.strategy, RlPolicyStrategy)
        return slot.strategy

    def bar(self) -> None:
        """The next hourly bar closes and the runner steps through it."""
        self.clock.advance(timedelta(hours=1))
        self.runner.step()

    def register(self, directory: Path, *, activate: bool = True) -> int:
        """What `fleet model register` + `fleet model activate` do, through the API."""
        manifest, _ = read_manifest(directory)
        key = f"{BOT}/1h/v{len(self.registry.versions(BOT)) + 1}"
        stored = self.store.put_dir(directory, key, [*sorted(manifest.files), MANIFEST])
        manifest_sha = next(f.sha256 for f in stored if f.name == MANIFEST)
        version = self.registry.register(
            BOT, "1h", manifest, manifest_sha, [ModelFile(f.name, f.size, f.sha256)
                                                for f in stored],
            store_url=self.store.url, store_key=key, actor="test")
        if activate:
            self.registry.activate(version.id, actor="test", reason="test")
        return version.id

    def control(self) -> Any:
        bot_id = FleetStore(self.database.engine).bot(BOT).id
        return SqlLedger(self.database.engine, self.database.fleet_tag()).controls(bot_id).bot

    def rows(self, table: Any, kind: str) -> list[Any]:
        with self.database.engine.connect() as conn:
            return list(conn.execute(select(table).where(table.c.kind == kind)))

    def status_models(self) -> dict[str, int]:
        view = fleet_view(self.database.engine, self.clock.now(), 3600)
        (bot,) = view.bots
        assert view.as_json()["bots"][0]["models"] == (bot.models or None)
        return bot.models


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    for name in ("FLEET_DB_URL", "FLEET_MARKET_DATA_DB_URL", "FLEET_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    models_dir = tmp_path / "var" / "models" / BOT
    path = tmp_path / "fleet.yaml"
    path.write_text(config_text(str(models_dir)), encoding="utf-8")
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

    runner = BotRunner(loaded, BOT, str(database.engine.url), connect, clock=clock,
                       sleep=sleep)
    yield Fleet(runner, clock, database, ModelRegistry(database.engine),
                open_store(f"file://{tmp_path / 'store'}"), models_dir)
    database.dispose()


def test_the_bot_trades_the_active_version_and_switches_at_the_next_bar(
        fleet: Fleet, trained: dict[int, Path]) -> None:
    v1 = fleet.register(trained[0])
    fleet.runner.boot()
    try:
        for _ in range(3):
            fleet.bar()
        strategy = fleet.strategy
        assert strategy.versions == {"1h": v1}
        assert strategy.models[0].level is not None  # it decides with v1
        assert fleet.status_models() == {"1h": v1}
        local = fleet.models_dir / "registry" / "1h"
        assert strategy.models[0].policy.directory == local / str(v1)  # type: ignore[attr-defined]

        # Activated between bars: the next bar decides with v2, no restart.
        v2 = fleet.register(trained[1])
        before = strategy.models[0].policy
        fleet.bar()
        assert strategy.versions == {"1h": v2}
        assert strategy.models[0].policy is not before
        assert strategy.models[0].policy.directory == local / str(v2)  # type: ignore[attr-defined]
        assert strategy.models[0].level is not None  # warmed up again: it decided at once
        assert fleet.status_models() == {"1h": v2}

        # Rolled back: the next bar is v1's again (its local copy re-hashed, not fetched).
        fleet.registry.rollback(BOT, "1h", actor="test", reason="v2 trades badly")
        fleet.bar()
        assert strategy.versions == {"1h": v1}
        assert strategy.models[0].level is not None
        assert fleet.status_models() == {"1h": v1}
        assert sorted(p.name for p in local.iterdir()) == sorted([str(v1), str(v2)])

        # v3's stored model changed by one byte after activation: never loaded; the bot
        # keeps trading v1, says so once (error + infrastructure alert), retries each bar.
        v3 = fleet.register(trained[1])
        stored = Path(fleet.store.url.removeprefix("file://")) / fleet.registry.get(
            v3).store_key / MODEL_FILE
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x01
        stored.write_bytes(bytes(data))
        for _ in range(2):
            fleet.bar()
            assert strategy.versions == {"1h": v1}
            assert strategy.models[0].level is not None
        failed = fleet.rows(events, "model.load_failed")
        assert len(failed) == 1 and failed[0].severity == "error"
        assert f"1h:v{v3}" in failed[0].message and "sha256" in failed[0].message
        alerts = fleet.rows(outbox, "model.load_failed")
        assert len(alerts) == 1 and alerts[0].concern == "infrastructure"
        assert not (local / str(v3)).exists()  # nothing unverified left behind
        assert fleet.status_models() == {"1h": v1}
        assert fleet.control().state is TradingState.ACTIVE

        # Its files repaired (stored again), the next bar switches to it.
        stored.write_bytes(bytes(data[: len(data) // 2]) + bytes([data[len(data) // 2] ^ 1])
                           + bytes(data[len(data) // 2 + 1:]))
        fleet.bar()
        assert strategy.versions == {"1h": v3}
        # The newest two per timeframe stay on the production side.
        assert sorted(p.name for p in local.iterdir()) == sorted([str(v1), str(v3)])
    finally:
        fleet.runner.shutdown()
    switched = fleet.rows(events, "model.switched")
    assert [json.loads(r.data)["versions"] if isinstance(r.data, str) else r.data["versions"]
            for r in switched] == [{"1h": v} for v in (v1, v2, v1, v3)]


def test_without_an_active_version_the_bot_halts_with_the_reason(
        fleet: Fleet, trained: dict[int, Path]) -> None:
    fleet.register(trained[0], activate=False)  # a candidate is not traded
    fleet.runner.boot()
    try:
        fleet.bar()
        strategy = fleet.strategy
        assert strategy.versions == {}
        control = fleet.control()
        assert control.state is TradingState.HALTED
        assert control.source is HaltSource.STRATEGY_ERROR
        assert "no active model version of rl-btc 1h" in control.reason
        assert "fleet model activate" in control.reason
        assert len(fleet.rows(events, "strategy.error")) == 1
        assert fleet.status_models() == {}

        # Once one is active the bot loads it at the next bar (the halt is an operator's
        # to lift: `fleet resume`).
        v1 = fleet.registry.versions(BOT)[0].id
        fleet.registry.activate(v1, actor="test", reason="first model")
        fleet.bar()
        assert strategy.versions == {"1h": v1}
        assert strategy.refused is None
    finally:
        fleet.runner.shutdown()


def test_the_status_reads_the_versions_from_the_heartbeat() -> None:
    assert traded_models("next bar 13:00:00 UTC; models 1h:v12 4h:v11") == {"1h": 12,
                                                                            "4h": 11}
    assert traded_models("halted: no model; models none") == {}
    assert traded_models("next bar 13:00:00 UTC") == {}
