"""What a backtest leaves on disk: its fills as CSV and its equity and drawdown as a PNG chart,
each written whole or not at all (a temporary file beside the target, then a rename)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.run import BacktestResult, Trade
from fleetkit.store.files import write_atomically

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TRADE_COLUMNS = ("ts", "instrument", "side", "quantity", "price", "fee", "currency")
# Written too when the result's trades carry them (which order a fill belongs to, and why).
OPTIONAL_TRADE_COLUMNS = ("client_order_id", "order_id", "reason")
CHART_POINTS = 4_000  # a line of more points than the picture has pixels only costs time


def output_problem(path: Path, *, suffix: str | None = None) -> str | None:
    """Why `path` cannot take an output file, in words, or None if it can. A missing
    directory is refused rather than created: a typo should not grow a tree of folders.
    An existing file is fine: it is replaced."""
    if path.is_dir():
        return f"{path} is a directory; name a file inside it"
    parent = path.parent
    if not parent.exists():
        return f"directory {parent} does not exist; create it first or choose another path"
    if not parent.is_dir():
        return f"{parent} is not a directory; choose another path"
    if suffix is not None and path.suffix.lower() != suffix:
        return f"the file is written as {suffix[1:].upper()}; name it {path.stem}{suffix}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {parent} (permission denied); choose another path"
    return None


def trade_columns() -> tuple[str, ...]:
    names = {f.name for f in fields(Trade)}
    return TRADE_COLUMNS + tuple(c for c in OPTIONAL_TRADE_COLUMNS if c in names)


def write_trades(results: BacktestResult | Sequence[BacktestResult], path: Path) -> int:
    """Every fill as a CSV row (money as exact decimals); returns how many were written.
    Several bots' results: a first column names each fill's bot."""
    many = list(results) if isinstance(results, Sequence) else [results]
    columns = (("bot",) if len(many) > 1 else ()) + trade_columns()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for result in many:
        for trade in result.trades:
            row = {"bot": result.bot, "instrument": result.instrument,
                   "currency": result.currency,
                   **{name: getattr(trade, name) for name in columns if hasattr(trade, name)}}
            writer.writerow([row.get(name, "") for name in columns])
    data = text.getvalue().encode("utf-8")
    write_atomically(path, lambda handle: handle.write(data))
    return sum(len(r.trades) for r in many)


def write_equity_chart(result: BacktestResult, path: Path) -> None:
    """Equity at every bar's close on top, its drawdown from the running peak beneath, as a
    PNG. Drawn on a bare matplotlib Figure (the Agg renderer): no display, no pyplot state."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    if result.curve_ts_s is None or result.curve is None or len(result.curve) == 0:
        raise ValueError("this result has no equity curve to draw")
    with rc_context({"date.converter": "concise"}):  # dates labelled without repeats
        figure = _draw(result, result.curve_ts_s.astype("datetime64[s]"), result.curve,
                       Figure(figsize=(10, 6), layout="constrained"))
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=110))


def _draw(result: BacktestResult, moments: npt.NDArray[np.datetime64],
          equity: npt.NDArray[np.float64], figure: Figure) -> Figure:
    drawdown = equity - np.maximum.accumulate(equity)
    capital = float(equity[-1]) - result.net_pnl
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    shown = chart_points(equity, CHART_POINTS)
    colour = "#1a7f37" if result.net_pnl >= 0 else "#cf222e"
    # Steps, not slopes: across a night or a weekend equity jumps at the open, it does not
    # drift there.
    top.plot(moments[shown], equity[shown], color=colour, linewidth=1.2, drawstyle="steps-post")
    top.axhline(capital, color="#888888", linewidth=0.8, linestyle="--", label="capital")
    top.set_title(chart_title(result), fontsize=10)
    top.set_ylabel(f"equity ({result.currency})")
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    deepest = chart_points(drawdown, CHART_POINTS)
    bottom.fill_between(moments[deepest], drawdown[deepest], 0, color="#cf222e", alpha=0.35,
                        linewidth=0, step="post")
    bottom.set_ylabel(f"drawdown ({result.currency})")
    bottom.set_xlabel("UTC")
    bottom.grid(alpha=0.3)
    return figure


def chart_title(result: BacktestResult) -> str:
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    ccy = result.currency
    where = (result.instrument if len(result.instruments) <= 3
             else f"{len(result.instruments)} instruments")
    return (f"{result.strategy}{f' ({params})' if params else ''} on {where}, "
            f"{_minute(result.first_bar)} .. {_minute(result.last_bar)} UTC "
            f"({result.bars:,} bars)\n"
            f"net P&L {result.net_pnl:+,.2f} {ccy} ({result.return_pct:+.2f}%), "
            f"max drawdown {result.max_drawdown:,.2f} {ccy} ({result.max_drawdown_pct:.2f}%)")


def _minute(iso: str) -> str:
    return iso[:16].replace("T", " ")


def chart_points(values: npt.NDArray[np.float64], limit: int) -> npt.NDArray[np.int64]:
    """At most about `limit` indices that keep the line's shape: the first and last point,
    and each bucket's lowest and highest (so no peak or trough is smoothed away)."""
    n = len(values)
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    size = math.ceil(n / (limit // 2))
    padded = np.pad(values, (0, -n % size), mode="edge").reshape(-1, size)
    offsets = np.arange(len(padded), dtype=np.int64) * size
    picked = np.concatenate(([0, n - 1], offsets + padded.argmin(axis=1),
                             offsets + padded.argmax(axis=1)))
    return np.unique(np.minimum(picked, n - 1))
