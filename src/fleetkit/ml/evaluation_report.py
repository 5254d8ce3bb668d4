"""An evaluation's report: the policy beside buy-and-hold and flat over the same
out-of-sample bars, per fold and chained, with the verdicts a reader looks for first —
does it beat the baselines, and has it collapsed to one action.

`to_json()` is a plain dict (floats, ISO 8601 times, None for an undefined number);
`render_text()` a compact table; `save_chart(path)` a PNG (ml.evaluation_chart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetkit.core.signals import SignalLevel
from fleetkit.features.normalise import Normalisation
from fleetkit.ml.evaluation_metrics import (
    Annualisation,
    StrategyMetrics,
    Trajectory,
    level_name,
)

POLICY, BUY_AND_HOLD, FLAT = "policy", "buy_and_hold", "flat"
# A policy that takes one action at more than this share of its decisions has collapsed:
# it no longer reads its observation (or the observation says nothing).
COLLAPSE_THRESHOLD = 0.95


def iso(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class FoldReport:
    """One fold: its training bars (first and last opens, Unix s; None when the model was
    trained elsewhere), its test stretch (the first decision bar's close, the last mark)
    and each strategy's metrics over it. `normalisation`: the one its policy was fed."""

    index: int
    train: tuple[int, int] | None
    test: tuple[int, int]
    metrics: dict[str, StrategyMetrics]
    normalisation: Normalisation | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index,
                "train": None if self.train is None else
                {"first_bar": iso(self.train[0]), "last_bar": iso(self.train[1])},
                "test": {"start": iso(self.test[0]), "end": iso(self.test[1])},
                "metrics": {name: metrics_json(m) for name, m in self.metrics.items()}}


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """`curves` and `metrics` are keyed by strategy: "policy", "buy_and_hold", "flat";
    the curves are chained across `folds`."""

    instrument: str
    interval_s: int
    levels: tuple[SignalLevel, ...]
    annualisation: Annualisation
    curves: dict[str, Trajectory]
    metrics: dict[str, StrategyMetrics]
    folds: tuple[FoldReport, ...]
    collapse_threshold: float = COLLAPSE_THRESHOLD
    halts: tuple[tuple[str, int, str], ...] = field(init=False)  # (strategy, time_s, why)

    def __post_init__(self) -> None:
        object.__setattr__(self, "halts", tuple(
            (name, at, why) for name, run in self.curves.items() for at, why in run.halts))

    @property
    def policy(self) -> StrategyMetrics:
        return self.metrics[POLICY]

    @property
    def collapsed_action(self) -> str | None:
        """The action the policy collapsed to, if one took more than the threshold."""
        top = self.policy.top_action()
        return top[0] if top is not None and top[1] > self.collapse_threshold else None

    @property
    def collapsed(self) -> bool:
        return self.collapsed_action is not None

    @property
    def beats_buy_and_hold(self) -> bool:
        """A higher total return than buy-and-hold's, net of costs, on the same bars."""
        return self.policy.total_return > self.metrics[BUY_AND_HOLD].total_return

    @property
    def beats_flat(self) -> bool:
        """A positive total return net of costs (flat's is 0)."""
        return self.policy.total_return > self.metrics[FLAT].total_return

    @property
    def span(self) -> tuple[int, int]:
        run = self.curves[POLICY]
        return run.start_s, int(run.time_s[-1]) if len(run) else run.start_s

    def to_json(self, *, curves: bool = False) -> dict[str, Any]:
        """A plain JSON-able dict; `curves`: every strategy's per-step series too."""
        body: dict[str, Any] = {
            "instrument": self.instrument, "interval_s": self.interval_s,
            "start": iso(self.span[0]), "end": iso(self.span[1]),
            "steps": self.policy.steps,
            "bars_per_year": self.annualisation.bars_per_year,
            "annualisation": self.annualisation.basis,
            "levels": [level_name(level) for level in self.levels],
            "collapsed": self.collapsed, "collapsed_action": self.collapsed_action,
            "collapse_threshold": self.collapse_threshold,
            "beats_buy_and_hold": self.beats_buy_and_hold, "beats_flat": self.beats_flat,
            "halts": [{"strategy": name, "at": iso(at), "reason": why}
                      for name, at, why in self.halts],
            "metrics": {name: metrics_json(m) for name, m in self.metrics.items()},
            "folds": [fold.to_json() for fold in self.folds]}
        if curves:
            body["curves"] = {name: curve_json(run) for name, run in self.curves.items()}
        return body

    def render_text(self) -> str:
        start, end = self.span
        lines = [f"Out-of-sample evaluation of {self.instrument} on {self.interval_s}s bars, "
                 f"{iso(start)} .. {iso(end)}: {self.policy.steps} steps in "
                 f"{len(self.folds)} fold(s); amounts are fractions of the position size.",
                 f"Sharpe annualised with {self.annualisation.bars_per_year:,.0f} bars a "
                 f"year ({self.annualisation.basis}).", ""]
        if self.collapsed:
            lines += [_collapse_banner(self), ""]
        lines += _table(self.metrics)
        lines += ["", "policy's actions: " + "  ".join(
            f"{name} {share:.1%}" for name, share in self.policy.actions.items())]
        lines.append(f"beats buy-and-hold: {_yes(self.beats_buy_and_hold)}; "
                     f"beats flat: {_yes(self.beats_flat)}")
        lines += [f"HALTED: {name} at {iso(at)}: {why}" for name, at, why in self.halts]
        if len(self.folds) > 1:
            lines += ["", "fold  test from                   policy   buy&hold  "
                          "policy Sharpe  top action"]
            lines += [_fold_line(fold) for fold in self.folds]
        return "\n".join(lines)

    def save_chart(self, path: Path, *, size_px: tuple[int, int] = (1200, 900)) -> Path:
        """A PNG: equity curves (fold boundaries marked), the policy's position, and its
        action distribution. Drawn with matplotlib's Agg canvas (no display needed)."""
        from fleetkit.ml.evaluation_chart import save_chart

        return save_chart(self, path, size_px=size_px)


def _collapse_banner(report: EvaluationReport) -> str:
    action = report.collapsed_action
    share = report.policy.actions[action] if action is not None else math.nan
    return (f"!!! COLLAPSED POLICY: it chose {action} at {share:.1%} of its decisions "
            f"(more than {report.collapse_threshold:.0%}): it does not act on what it "
            "observes !!!")


_COLUMNS = (("return", 9), ("Sharpe", 8), ("max dd", 8), ("turnover", 9), ("/year", 9),
            ("trades", 7), ("costs", 8), ("exposure", 9), ("win rate", 9))


def _table(metrics: dict[str, StrategyMetrics]) -> list[str]:
    header = f"{'strategy':<13}" + "".join(f"{name:>{width}}" for name, width in _COLUMNS)
    rows = [header]
    for name, m in metrics.items():
        cells = (f"{m.total_return:+.2%}", f"{m.sharpe:.2f}", f"{m.max_drawdown:.2%}",
                 f"{m.turnover:.2f}", f"{m.turnover_per_year:,.0f}", f"{m.trades}",
                 f"{m.costs:.2%}", f"{m.exposure:.1%}",
                 "-" if m.win_rate is None else f"{m.win_rate:.1%}")
        rows.append(f"{name:<13}" + "".join(
            f"{cell:>{width}}" for cell, (_, width) in zip(cells, _COLUMNS, strict=True)))
    return rows


def _fold_line(fold: FoldReport) -> str:
    policy, held = fold.metrics[POLICY], fold.metrics[BUY_AND_HOLD]
    top = policy.top_action()
    action = "-" if top is None else f"{top[0]} {top[1]:.0%}"
    return (f"{fold.index:>4}  {iso(fold.test[0]):<25} {policy.total_return:>+8.2%} "
            f"{held.total_return:>+9.2%}  {policy.sharpe:>13.2f}  {action}")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: an undefined number is null."""
    return None if value is None or not math.isfinite(value) else float(value)


def metrics_json(m: StrategyMetrics) -> dict[str, Any]:
    return {"steps": m.steps, "total_return": _number(m.total_return),
            "sharpe": _number(m.sharpe), "max_drawdown": _number(m.max_drawdown),
            "turnover": _number(m.turnover), "turnover_per_year": _number(m.turnover_per_year),
            "trades": m.trades, "costs": _number(m.costs), "exposure": _number(m.exposure),
            "win_rate": _number(m.win_rate),
            "actions": {name: float(share) for name, share in m.actions.items()}}


def curve_json(run: Trajectory) -> dict[str, Any]:
    return {"start": iso(run.start_s),
            "time": [iso(t) for t in run.time_s.tolist()],
            "equity": [float(v) for v in run.equity.tolist()],
            "position": [float(v) for v in run.position.tolist()],
            "action": [int(v) for v in run.actions.tolist()],
            "fills": [int(v) for v in run.fills.tolist()],
            "costs": [float(v) for v in run.costs.tolist()]}
