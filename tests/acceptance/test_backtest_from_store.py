"""`fleet backtest --from-store` replays the bars the fleet recorded: the same result as
the same bars from a CSV file, aggregated timeframes on the exchange's sessions, and one
clear line for what the store cannot serve — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fleetkit.cli.app import main
from fleetkit.core.bars import BarRecord
from fleetkit.store.bars import BarStore
from tests.acceptance.cli_support import assert_user_error
from tests.support import migrated_database

STRATEGY = ["--strategy", "sma_cross", "-p", "fast=3", "-p", "slow=8", "--market", "CRYPTO",
            "--symbol", "BTC/USDT", "--no-progress", "--json"]
BTC = "CRYPTO:BTC/USDT"
START = datetime(2024, 1, 5, tzinfo=UTC)
MINUTES = 600

Fleet = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def fleet(capsys: pytest.CaptureFixture[str], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Fleet:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    for name in ("FLEET_DB_URL", "FLEET_CONFIG", "FLEET_MARKET_DATA_DB_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = main(["backtest", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["fleet", "backtest", *args], code, out, err)

    return run


def wave(count: int) -> list[BarRecord]:
    bars = []
    for i in range(count):
        price = Decimal(42000) + Decimal((i % 50 - 25) * (1 if (i // 50) % 2 else -1)) * 7
        bars.append(BarRecord(START + timedelta(minutes=i), price, price + 5, price - 5, price,
                              Decimal("1.5")))
    return bars


@pytest.fixture
def recorded(database_url: str) -> Any:
    database = migrated_database(database_url)
    BarStore(database.engine).write(BTC, "1m", wave(MINUTES), source="sandbox",
                                      recorded_at=START)
    yield database
    database.dispose()


def test_the_store_replays_like_the_same_bars_from_a_csv(
        fleet: Fleet, recorded: Any, database_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "btc.csv"
    csv.write_text("time,open,high,low,close,volume\n" + "".join(
        f"{b.open_time.isoformat()},{b.open},{b.high},{b.low},{b.close},{b.volume}\n"
        for b in wave(MINUTES)), encoding="utf-8")
    from_store = fleet(*STRATEGY, "--from-store", "--db", database_url)
    from_csv = fleet(*STRATEGY, "--csv", str(csv))
    assert from_store.returncode == 0, from_store.stderr
    assert from_csv.returncode == 0, from_csv.stderr
    stored, read = json.loads(from_store.stdout), json.loads(from_csv.stdout)
    assert stored["bars"] == MINUTES and stored["fills"] > 0
    for key in ("bars", "first_bar", "fills", "net_pnl", "fees", "max_drawdown"):
        assert stored[key] == read[key], key
    assert "600 1m bars from the store" in from_store.stderr


def test_a_window_and_an_aggregated_timeframe(fleet: Fleet, recorded: Any,
                                              database_url: str) -> None:
    # --start/--to are whole days in the exchange's zone (UTC for crypto).
    result = fleet(*STRATEGY, "--from-store", "--db", database_url, "--interval", "15m",
                   "--start", "2024-01-05", "--to", "2024-01-05")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bars"] == MINUTES // 15
    assert summary["first_bar"] == START.isoformat()


@pytest.mark.parametrize(("extra", "fragments"), [
    (["--interval", "30s"], ("not every 30 s", "--interval 1m")),
    (["--start", "2023-01-01", "--to", "2023-01-02"], ("no bars of CRYPTO:BTC/USDT between",
                                                        "widen --start/--to")),
    (["--csv", "x.csv"], ("--from-store and --csv",)),
])
def test_what_the_store_cannot_serve_is_one_line(fleet: Fleet, recorded: Any,
                                                 database_url: str, extra: list[str],
                                                 fragments: tuple[str, ...]) -> None:
    assert_user_error(fleet(*STRATEGY, "--from-store", "--db", database_url, *extra),
                      *fragments)


def test_an_instrument_never_recorded_says_how_to_record_it(fleet: Fleet, recorded: Any,
                                                            database_url: str) -> None:
    args = [a if a != "BTC/USDT" else "ETH/USDT" for a in STRATEGY]
    assert_user_error(fleet(*args, "--from-store", "--db", database_url),
                      "no bars of CRYPTO:ETH/USDT", "fleet data backfill")


def test_store_options_without_from_store_are_refused(fleet: Fleet) -> None:
    assert_user_error(fleet(*STRATEGY, "--to", "2024-01-05"), "--to goes only with --from-store")
