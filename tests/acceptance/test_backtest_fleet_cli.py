"""`fleet backtest` answers the question asked (issue 13, part 3): every flag honoured or
refused in one line; a bot with several symbols replayed on all of them as one portfolio;
several bots (or the whole config) replayed together as the fleet runs them; the brakes'
days (denials, halts) in the summary and the JSON."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetkit.cli.app import main
from tests.acceptance.cli_support import assert_user_error

CONFIG = """
defaults: {position_size_usd: 20000}
risk: {daily_loss_limit_usd: 25}
bots:
  - {name: pair, market: CRYPTO, symbols: ["BTC/USDT", "ETH/USDT"], strategy: sma_cross,
     params: {fast: 3, slow: 8}}
  - {name: us-ko, market: NYSE, symbols: ["KO"], strategy: sma_cross,
     params: {fast: 3, slow: 8}, bar_interval: 5m}
  - {name: hold, market: CRYPTO, symbols: ["SOL/USDT"], strategy: buy_and_hold,
     exits: {trailing_stop_pct: 0.5}}
"""
Fleet = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    for name in ("FLEET_DB_URL", "FLEET_CONFIG", "TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "fleet.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def fleet(capsys: pytest.CaptureFixture[str], config: Path) -> Fleet:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["backtest", "--config", str(config), *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["fleet", "backtest", *args], code, out, err)

    return run


def test_a_bot_with_two_symbols_is_backtested_on_both_as_one_portfolio(fleet: Fleet) -> None:
    result = fleet("--bot", "pair", "--bars", "600", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["instruments"] == ["CRYPTO:BTC/USDT", "CRYPTO:ETH/USDT"]
    assert summary["bars"] == 1200
    traded = {t.split(" ")[0] for t in summary["final_positions"]}
    assert traded == {"CRYPTO:BTC/USDT", "CRYPTO:ETH/USDT"}


def test_symbol_with_a_bot_replays_that_symbol_alone(fleet: Fleet) -> None:
    result = fleet("--bot", "pair", "--symbol", "ETH/USDT", "--bars", "300", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["instruments"] == ["CRYPTO:ETH/USDT"]


@pytest.mark.parametrize(("args", "fragments"), [
    (["--bot", "pair", "--symbol", "SOL/USDT"], ("trades BTC/USDT, ETH/USDT", "--symbol")),
    (["--bot", "pair", "--market", "NYSE"], ("trades on CRYPTO, not NYSE", "drop --market")),
    (["--bot", "pair", "--strategy", "sma_cross"], ("--strategy and --bot",)),
    (["--bot", "pair", "-p", "fast=2"], ("--param",)),
    (["--bots", "pair,hold", "--symbol", "BTC/USDT"], ("--symbol and --market", "--bot")),
    (["--bots", "pair,nobody"], ("no bot named 'nobody'",)),
    (["--bot", "pair", "--csv", "bars.csv"], ("--csv holds one instrument",)),
])
def test_flags_that_cannot_be_honoured_are_refused_in_one_line(
        fleet: Fleet, args: list[str], fragments: tuple[str, ...]) -> None:
    assert_user_error(fleet(*args), *fragments)


def test_interval_with_a_bot_replays_bars_of_that_interval(fleet: Fleet) -> None:
    result = fleet("--bot", "hold", "--interval", "1h", "--bars", "50", "--json")
    summary = json.loads(result.stdout)
    hours = (summary["last_bar"], summary["first_bar"])
    assert summary["bars"] == 50
    assert hours[0][11:13] != hours[1][11:13] and hours[0][14:16] == "00"


def test_several_bots_replay_together_with_a_fleet_total(fleet: Fleet, tmp_path: Path) -> None:
    trades = tmp_path / "trades.csv"
    result = fleet("--bots", "pair,hold", "--bars", "400", "--json", "--trades", str(trades))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [b["bot"] for b in summary["bots"]] == ["pair", "hold"]
    fleet_row = summary["fleet"]
    assert fleet_row["currency"] == "USD"
    assert fleet_row["fills"] == sum(b["fills"] for b in summary["bots"])
    with trades.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["bot"] for r in rows} == {"pair", "hold"}


def test_the_whole_config_replays_with_all(fleet: Fleet) -> None:
    result = fleet("--all", "--bars", "200")
    assert result.returncode == 0, result.stderr
    assert "backtest of 3 bots together" in result.stdout
    for name in ("pair", "us-ko", "hold", "fleet"):
        assert name in result.stdout


def test_a_breaker_day_and_the_exits_show_in_the_summary_and_the_json(fleet: Fleet) -> None:
    """The brakes run in a backtest as live: a small daily-loss limit halts the bot, and the
    day it happened is reported with its reason."""
    result = fleet("--bot", "pair", "--bars", "3000", "--json")
    summary = json.loads(result.stdout)
    assert summary["halts"], "the 25 USD daily-loss limit must trip"
    halt = summary["halts"][0]
    assert halt["source"] == "circuit_breaker" and "daily loss" in halt["reason"]
    day = next(d for d in summary["days"] if d["halts"])
    assert day["day"] == halt["ts"][:10]
    text = fleet("--bot", "pair", "--bars", "3000", "--no-progress")
    assert "days the brakes acted" in text.stdout and "daily loss" in text.stdout
    held = json.loads(fleet("--bot", "hold", "--bars", "2000", "--json").stdout)
    assert held["orders"] >= 2  # bought, then the trailing stop sold


@pytest.mark.parametrize(("bot", "says"), [
    ("  - {name: fut, market: NFO, symbols: [NIFTY], contract: front_future,\n"
     "     signal: 'NSE:NIFTY 50', strategy: sma_cross}\n",
     "bot fut trades NFO futures month by month"),
    ("  - {name: perp, market: CRYPTO, symbols: ['BTC/USDT:USDT'], signal: 'CRYPTO:BTC/USDT',\n"
     "     strategy: sma_cross}\n",
     "bot perp trades CRYPTO:BTC/USDT:USDT, a perpetual"),
])
def test_a_futures_or_perpetual_bot_is_refused_in_one_line_naming_what_to_replay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], bot: str, says: str) -> None:
    config = tmp_path / "derivatives.yaml"
    config.write_text("bots:\n" + bot, encoding="utf-8")
    name = "fut" if "fut" in bot else "perp"
    code = main(["backtest", "--config", str(config), "--bot", name, "--bars", "100"])
    out, err = capsys.readouterr()
    assert_user_error(subprocess.CompletedProcess([], code, out, err), says)
