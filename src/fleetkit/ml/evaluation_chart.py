"""An evaluation report's chart, a PNG: the equity curves of the policy, buy-and-hold and
flat over time with the folds' boundaries, the policy's position under them, and the
policy's action distribution.

matplotlib is imported only here, when a chart is drawn, and through its Agg canvas
directly (no pyplot): no display, no global backend switched under the caller's feet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from fleetkit.ml.evaluation_report import BUY_AND_HOLD, FLAT, POLICY

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from fleetkit.ml.evaluation_metrics import Trajectory
    from fleetkit.ml.evaluation_report import EvaluationReport

DPI = 100
_STYLE = {POLICY: ("policy", "tab:blue", 1.6), BUY_AND_HOLD: ("buy and hold", "tab:orange", 1.2),
          FLAT: ("flat", "tab:gray", 1.0)}


def save_chart(report: EvaluationReport, path: Path, *,
               size_px: tuple[int, int] = (1200, 900)) -> Path:
    """Writes the chart to `path` (exactly `size_px` pixels) and returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size_px
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(3, 1, height_ratios=(3, 1.2, 1.4))
    equity = figure.add_subplot(grid[0])
    position = figure.add_subplot(grid[1], sharex=equity)
    actions = figure.add_subplot(grid[2])
    _equity(equity, report)
    _position(position, report.curves[POLICY])
    _actions(actions, report)
    title = (f"{report.instrument}: out-of-sample evaluation, {len(report.folds)} fold(s), "
             f"{report.policy.steps} bars of {report.interval_s}s")
    if report.collapsed:
        title += f" (COLLAPSED to {report.collapsed_action})"
    figure.suptitle(title, fontsize=13, color="tab:red" if report.collapsed else "black")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _times(run: Trajectory) -> npt.NDArray[np.datetime64]:
    """The curve's moments, from the first decision (equity 0) to the last mark (UTC)."""
    return np.concatenate(([run.start_s], run.time_s)).astype("datetime64[s]")


def _equity(axes: Axes, report: EvaluationReport) -> None:
    from matplotlib.dates import date2num

    for order, (name, run) in enumerate(report.curves.items()):
        label, colour, width = _STYLE.get(name, (name, None, 1.0))
        metrics = report.metrics[name]
        # The policy is drawn last, on top: a collapsed one often lies on flat's line.
        axes.plot(_times(run), np.concatenate(([0.0], run.equity)) * 100, color=colour,
                  linewidth=width, zorder=3 + len(report.curves) - order,
                  label=f"{label}: {metrics.total_return:+.2%}, Sharpe {metrics.sharpe:.2f}")
    for fold in report.folds[1:]:
        boundary = date2num(datetime.fromtimestamp(fold.test[0], UTC))  # type: ignore[no-untyped-call]
        axes.axvline(boundary, color="black", linestyle="--", linewidth=0.8, alpha=0.6)
    if len(report.folds) > 1:
        axes.plot([], [], color="black", linestyle="--", linewidth=0.8, label="fold boundary")
    verdict = (f"beats buy-and-hold: {'yes' if report.beats_buy_and_hold else 'no'}, "
               f"beats flat: {'yes' if report.beats_flat else 'no'}")
    axes.set_title(f"Equity net of fees and slippage ({verdict})")
    axes.set_ylabel("net P&L, % of position size")
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    axes.tick_params(labelbottom=False)


def _position(axes: Axes, run: Trajectory) -> None:
    axes.step(_times(run), np.concatenate(([0.0], run.position)), where="post",
              color=_STYLE[POLICY][1], linewidth=1.0)
    axes.set_title("Policy's position")
    axes.set_ylabel("fraction of\nposition size")
    axes.set_xlabel("time (UTC)")
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.grid(alpha=0.3)


def _actions(axes: Axes, report: EvaluationReport) -> None:
    shares = report.policy.actions
    colours = ["tab:red" if report.collapsed_action == name else "tab:blue" for name in shares]
    axes.bar(list(shares), [share * 100 for share in shares.values()], color=colours)
    title = "Policy's actions"
    if report.collapsed:
        title += (f": COLLAPSED to {report.collapsed_action} "
                  f"(over {report.collapse_threshold:.0%} of decisions)")
    axes.set_title(title, color="tab:red" if report.collapsed else "black")
    axes.set_ylabel("% of decisions")
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.3)
