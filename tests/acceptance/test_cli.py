"""The CLI doing what the README says, through the real `fleet` command."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.acceptance.cli_support import fleet


def write_csv(path: Path, rows: int, *, iso: bool) -> None:
    lines = ["time,open,high,low,close,volume"]
    for i in range(rows):
        price = 100 + 5 * math.sin(i / 15)
        stamp = (f"2024-01-02T{9 + i // 60:02d}:{i % 60:02d}:00Z" if iso
                 else str(1704186000 + 60 * i))
        lines.append(f"{stamp},{price:.2f},{price + 0.3:.2f},{price - 0.3:.2f},{price:.2f},100")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("iso", [True, False], ids=["iso-8601", "epoch-seconds"])
def test_a_csv_backtest_replays_every_row(tmp_path: Path, iso: bool) -> None:
    csv = tmp_path / "bars.csv"
    write_csv(csv, 400, iso=iso)
    result = fleet("backtest", "--strategy", "sma_cross", "-p", "fast=5", "-p", "slow=20",
                   "--market", "NYSE", "--symbol", "KO", "--csv", str(csv), "--json",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bars"] == 400
    assert summary["first_bar"].startswith("2024-01-02T09:00")
    assert summary["fills"] > 0
    assert summary["params"] == {"fast": 5, "slow": 20}


def test_a_generated_backtest_reports_the_parameters_it_used(tmp_path: Path) -> None:
    result = fleet("backtest", "--strategy", "rsi_reversion", "--bars", "3000", "--json",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] == {"period": 14, "oversold": 30.0,
                                                   "overbought": 70.0}


def test_a_backtest_on_an_equity_market_needs_a_symbol(tmp_path: Path) -> None:
    result = fleet("backtest", "--strategy", "sma_cross", "--market", "NYSE", cwd=tmp_path)
    assert result.returncode == 2
    assert "needs --symbol" in result.stderr


def test_halting_is_audited_and_resuming_a_running_bot_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text('bots:\n  - {name: a, market: CRYPTO, symbols: ["BTC/USDT"], '
                      "strategy: buy_and_hold}\n", encoding="utf-8")
    assert fleet("db", "upgrade", "--config", str(config), cwd=tmp_path).returncode == 0
    # Register the bot the way `fleet up` does, without starting a fleet.
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.fleet import prepare_database

    os.environ["FLEET_HOME"] = str(tmp_path / "var")
    try:
        prepare_database(load_config(config), f"sqlite:///{tmp_path / 'var' / 'fleet.db'}"
                         ).dispose()
    finally:
        del os.environ["FLEET_HOME"]

    quiet = fleet("resume", "a", "--config", str(config), cwd=tmp_path)
    assert quiet.returncode == 0 and "was not halted; nothing changed" in quiet.stdout
    halted = fleet("halt", "a", "--reason", "maintenance", "--config", str(config), cwd=tmp_path)
    assert halted.returncode == 0 and "HALTED" in halted.stdout
    resumed = fleet("resume", "a", "--config", str(config), cwd=tmp_path)
    assert "resumed (was halted: maintenance)" in resumed.stdout

    trail = fleet("events", "a", "--kind", "control", "--json", "--config", str(config),
                  cwd=tmp_path)
    assert trail.returncode == 0, trail.stderr
    kinds = [event["kind"] for event in json.loads(trail.stdout)]
    assert kinds == ["control.active", "control.halted"]  # newest first, nothing for the no-op
    status = json.loads(fleet("status", "--json", "--config", str(config), cwd=tmp_path).stdout)
    assert status["bots"][0]["state"] == "STOPPED"
