"""The files a backtest writes: fills as CSV, equity and drawdown as PNG, each whole or not
at all, and the paths refused before a run rather than after it."""

from __future__ import annotations

import csv
import os
import stat
import struct
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from fleetkit.backtest.report import (
    chart_points,
    chart_title,
    output_problem,
    trade_columns,
    write_atomically,
    write_equity_chart,
    write_trades,
)
from fleetkit.backtest.run import BacktestResult, BacktestSpec, run_backtest
from fleetkit.backtest.tape import generated_tape
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.calendars import MarketCalendars
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits

BTC = "CRYPTO:BTC/USDT"


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    """A real replay, small enough to take a blink: 600 minutes of sma_cross on BTC."""
    catalog = load_catalog()
    tape = generated_tape(InventedPrices(7, catalog, MarketCalendars()),
                          catalog[BTC].instrument, datetime(2024, 1, 2, tzinfo=UTC), 600, 60)
    spec = BacktestSpec("sma_cross", {"fast": 3, "slow": 8}, Sizing(Decimal(10_000), Decimal(1)),
                        RiskLimits(Decimal("1e9"), Decimal("1e9"), Decimal(50), 1e12, None, None))
    found = run_backtest(spec, tape)
    assert found.fills >= 4
    return found


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_fill_is_a_csv_row_with_its_exact_amounts(tmp_path: Path,
                                                       result: BacktestResult) -> None:
    path = tmp_path / "trades.csv"
    assert write_trades(result, path) == result.fills
    rows = read_rows(path)
    assert len(rows) == result.fills
    assert tuple(rows[0]) == trade_columns()
    for row, trade in zip(rows, result.trades, strict=True):
        assert (row["ts"], row["side"], row["quantity"], row["price"], row["fee"]) == (
            trade.ts, trade.side, trade.quantity, trade.price, trade.fee)
        assert row["instrument"] == BTC and row["currency"] == "USDT"
    assert {row["side"] for row in rows} == {"buy", "sell"}


def test_a_run_without_fills_writes_the_header_alone(tmp_path: Path,
                                                     result: BacktestResult) -> None:
    path = tmp_path / "trades.csv"
    assert write_trades(replace(result, trades=()), path) == 0
    assert path.read_text(encoding="utf-8") == ",".join(trade_columns()) + "\n"
    assert trade_columns()[:7] == ("ts", "instrument", "side", "quantity", "price", "fee",
                                   "currency")


def test_an_existing_file_is_replaced_and_gets_the_usual_permissions(
        tmp_path: Path, result: BacktestResult) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("old\n" * 1000, encoding="utf-8")
    write_trades(result, path)
    assert len(read_rows(path)) == result.fills
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["trades.csv"]


def test_a_write_that_fails_leaves_the_old_file_and_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    path.write_bytes(b"the old chart")

    def half_then_fail(handle: IO[bytes]) -> None:
        handle.write(b"half a chart")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert path.read_bytes() == b"the old chart"
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_is_a_png_of_equity_over_drawdown(tmp_path: Path,
                                                    result: BacktestResult) -> None:
    path = tmp_path / "equity.png"
    write_equity_chart(result, path)
    assert png_size(path) == (1100, 660)
    assert [p.name for p in tmp_path.iterdir()] == ["equity.png"]


def test_the_chart_title_names_strategy_instrument_and_period(result: BacktestResult) -> None:
    title = chart_title(replace(result, max_drawdown=12.5, max_drawdown_pct=0.125))
    assert title.startswith("sma_cross (fast=3, slow=8) on CRYPTO:BTC/USDT, "
                            "2024-01-02 00:00 .. 2024-01-02 09:59 UTC (600 bars)")
    assert "max drawdown 12.50 USDT (0.12%)" in title


def test_a_long_curve_is_drawn_from_few_points_that_keep_every_extreme() -> None:
    rng = np.random.default_rng(3)
    values = np.cumsum(rng.standard_normal(1_000_003))
    kept = chart_points(values, 4_000)
    assert len(kept) <= 4_002
    assert kept[0] == 0 and kept[-1] == len(values) - 1
    assert np.all(np.diff(kept) > 0)
    assert values[kept].max() == values.max() and values[kept].min() == values.min()
    assert chart_points(values[:10], 4_000).tolist() == list(range(10))


@pytest.mark.parametrize(("name", "said"), [
    ("nowhere/trades.csv", "does not exist; create it first"),
    (".", "is a directory"),
])
def test_paths_that_cannot_take_a_file_are_explained(tmp_path: Path, name: str,
                                                     said: str) -> None:
    problem = output_problem(tmp_path / name)
    assert problem is not None and said in problem


def test_a_chart_must_be_named_as_a_png(tmp_path: Path) -> None:
    assert output_problem(tmp_path / "equity.svg", suffix=".png") == (
        "the file is written as PNG; name it equity.png")
    assert output_problem(tmp_path / "equity.PNG", suffix=".png") is None
    assert output_problem(tmp_path / "trades.csv") is None
