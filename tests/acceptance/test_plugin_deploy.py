"""A fleet with its own strategy, deployed: what the generated systemd units and Compose
services would run, run here from the generated files alone (the user's originals deleted
first) — the migration, the broker and the bot from the units' ExecStart= and Environment=,
the Compose service's environment with its config and plugins directory — against a scratch
SQLite home. And a broken plugin: one line naming it, its file and its line."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetkit.testing.loopback import free_port
from tests.acceptance.cli_support import assert_user_error, fleet
from tests.acceptance.deploy_support import Unit, compose_service
from tests.plugin_kit import decorated_source, installed_dist, strategy_source

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def write_fleet(root: Path, *, plugins: str = "[my_strategies:strategies]",
                strategy: str = "momentum") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "my_strategies.py").write_text(strategy_source("momentum"), encoding="utf-8")
    config = root / "fleet.yaml"
    config.write_text(f"""
fleet: {{name: mine}}
plugins: {plugins}
sandbox: {{port: {free_port()}}}
runtime: {{heartbeat_interval_s: 1, bar_settle_s: 0.2}}
defaults: {{bar_interval: 5s, position_size_usd: 1000}}
bots:
  - {{name: mom, market: CRYPTO, symbols: [BTC/USDT], strategy: {strategy}}}
""", encoding="utf-8")
    return config


def wait_for(path: Path, action: str, timeout_s: float = 60) -> dict[str, object]:
    """The first JSON log line in `path` with this action."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line) if line.startswith("{") else {}
            except ValueError:  # a line still being written
                continue
            if record.get("action") == action:
                return dict(record)
        time.sleep(0.2)
    raise AssertionError(f"no {action} in {path}:\n{path.read_text(encoding='utf-8')}")


def test_a_fleet_with_its_own_strategy_runs_from_the_generated_systemd_units(
        tmp_path: Path) -> None:
    config, out, home = write_fleet(tmp_path / "mine"), tmp_path / "out", tmp_path / "home"
    generated = fleet("deploy", "systemd", "--out", str(out), "--config", str(config),
                      "--fleet-bin", str(BIN / "fleet"), "--home", str(home), cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    shutil.rmtree(tmp_path / "mine")  # from here on, only what the deployment carries
    home.mkdir()  # install.sh makes it

    bot = Unit(out, "fleet-bot@.service", "mom")
    assert bot.argv == [str(BIN / "fleet"), "bot", "run", "mom"]
    assert bot.env["PYTHONPATH"] == str(out / "plugins")  # /etc/fleet/plugins, installed
    migrated = Unit(out, "fleet-migrate.service").run()
    assert migrated.returncode == 0, migrated.stderr
    logs = {name: (tmp_path / f"{name}.log").open("w", encoding="utf-8")
            for name in ("broker", "bot")}
    processes = [Unit(out, "fleet-broker.service").start(logs["broker"])]
    try:
        wait_for(tmp_path / "broker.log", "broker.serve")  # systemd orders the bot after it
        processes.insert(0, bot.start(logs["bot"]))
        started = wait_for(tmp_path / "bot.log", "bot.start")
        assert started["strategy"] == "momentum"
        wait_for(tmp_path / "bot.log", "order.submitted")  # the plugin's signal, traded
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in processes]
        for log in logs.values():
            log.close()
    assert codes[0] == 0, (tmp_path / "bot.log").read_text(encoding="utf-8")


def test_a_fleet_with_its_own_strategy_loads_it_from_the_generated_compose_project(
        tmp_path: Path) -> None:
    config, out = write_fleet(tmp_path / "mine"), tmp_path / "out"
    generated = fleet("deploy", "compose", "--out", str(out), "--config", str(config),
                      cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    shutil.rmtree(tmp_path / "mine")
    command, env = compose_service(out, "bot-mom", tmp_path / "home")
    assert command == ["bot", "run", "mom"]
    assert env["PYTHONPATH"] == str(out / "config" / "plugins")
    # The container's environment alone finds the config and the plugin (FLEET_CONFIG,
    # PYTHONPATH): replay the bot's strategy through the engine, as `bot run` would trade it.
    replay = subprocess.run([str(BIN / "fleet"), "backtest", "--bot", "mom", "--bars", "200",
                             "--json", "--no-progress"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout)
    assert summary["strategy"] == "momentum" and summary["fills"] >= 1


def test_a_broken_plugin_module_stops_the_bot_with_one_line_naming_file_and_line(
        tmp_path: Path) -> None:
    config = write_fleet(tmp_path)
    (tmp_path / "my_strategies.py").write_text("def strategies(:\n", encoding="utf-8")
    result = fleet("bot", "run", "mom", "--config", str(config), cwd=tmp_path)
    assert_user_error(result, "plugins: 'my_strategies:strategies' failed to load: SyntaxError",
                      f"{tmp_path / 'my_strategies.py'}:1")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_broken_package_is_skipped_unless_the_config_needs_what_it_would_provide(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    installed_dist(site, "good-strategies", "good_strategies", strategy_source("good_long"))
    installed_dist(site, "broken-strategies", "broken_strategies",
                   "import os\nraise RuntimeError('ACME_KEY is not set')\n")
    # An entry point naming a module, which registers with @register as it is imported.
    installed_dist(site, "legacy-strategies", "legacy_strategies", decorated_source("hold_on"),
                   value="legacy_strategies")
    env = {"PYTHONPATH": str(site)}
    listed = fleet("strategies", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "good_long" in listed.stdout and "(package good-strategies 1.0)" in listed.stdout
    assert "hold_on" in listed.stdout and "(package legacy-strategies 1.0)" in listed.stdout
    assert listed.stderr.strip() == (
        "warning: package broken-strategies 1.0 (entry point broken_strategies) failed to "
        f"load: RuntimeError: ACME_KEY is not set at {site / 'broken_strategies.py'}:2")

    for strategy in ("sma_cross", "good_long"):  # a built-in, and the good package's
        config = write_fleet(tmp_path / strategy, plugins="[]", strategy=strategy)
        ran = fleet("backtest", "--config", str(config), "--bot", "mom", "--bars", "100",
                    "--no-progress", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr

    config = write_fleet(tmp_path / "acme", plugins="[]", strategy="acme_long")
    refused = fleet("bot", "run", "mom", "--config", str(config), cwd=tmp_path, env=env)
    assert_user_error(refused, "unknown strategy 'acme_long'",
                      "from plugins: good_long, hold_on",
                      "package broken-strategies 1.0 (entry point broken_strategies) failed to "
                      "load: RuntimeError: ACME_KEY is not set at ")
