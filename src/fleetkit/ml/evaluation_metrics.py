"""What one strategy did over evaluation bars (a `Trajectory`, step by step) and the
numbers that judge it (`StrategyMetrics`), with the annualisation their Sharpe uses.

Every amount is a fraction of the bot's position size (its `sizing.position_size_usd`),
so a policy, buy-and-hold and flat compare directly whatever the instrument's price:

    r_t           equity_t - equity_{t-1}: step t's P&L net of fees and slippage (equity_0 = 0)
    total return  equity_n: the P&L over all n steps (open positions marked at the last
                  close, not closed: no exit cost is charged to anyone)
    Sharpe        mean(r) / std(r) x sqrt(bars per year), std the sample one (ddof 1);
                  0 when fewer than two steps or no variation (flat)
    max drawdown  max_t (max_{s<=t} equity_s - equity_t), the peak including equity_0 = 0
    turnover      sum_t |quantity_t - quantity_{t-1}| x the open it met / position size:
                  position sizes traded (a full long bought and sold again is 2); per year:
                  x bars per year / n
    exposure      share of steps that held a position over their bar
    win rate      share of those steps whose r_t > 0 (None if it never held one)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape
from fleetkit.core.sessions import Session
from fleetkit.core.signals import SignalLevel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_S = 86_400
ALWAYS_OPEN = "24/7"  # the calendar of markets that never close (fleetkit.calendars)
DAYS_PER_YEAR = 365
SESSIONS_PER_YEAR = 252
NO_ACTION = -1  # a step the bot could not act on (it was halted)


def level_name(level: SignalLevel) -> str:
    """strong_sell .. strong_buy: the names a report and its JSON use for the actions."""
    return level.name.lower()


@dataclass(frozen=True, slots=True)
class Annualisation:
    """`bars_per_year` scales the Sharpe ratio; `basis` says how it was found."""

    bars_per_year: float
    basis: str

    def __post_init__(self) -> None:
        if not (self.bars_per_year > 0 and math.isfinite(self.bars_per_year)):
            raise ValueError(f"bars_per_year must be positive, got {self.bars_per_year}")


def annualisation(tape: BarTape, bars_per_year: float | Annualisation | None = None
                  ) -> Annualisation:
    """A 24/7 market: 365 days of bars. A market with sessions: 252 sessions of the tape's
    median bars per session (`session_annualisation` counts them from the sessions
    themselves). `bars_per_year` overrides both."""
    if isinstance(bars_per_year, Annualisation):
        return bars_per_year
    if bars_per_year is not None:
        return Annualisation(float(bars_per_year), "given")
    if tape.instrument.calendar == ALWAYS_OPEN:
        return Annualisation(DAYS_PER_YEAR * DAY_S / tape.interval_s,
                             f"24/7: {DAYS_PER_YEAR} days x {DAY_S} s / {tape.interval_s} s")
    per_session = bars_per_session(tape.ts_s)
    return Annualisation(SESSIONS_PER_YEAR * per_session,
                         f"sessions: {SESSIONS_PER_YEAR} x {per_session:g} bars a session "
                         "(the tape's median)")


def session_annualisation(sessions: Sequence[Session], interval_s: int) -> Annualisation:
    """252 sessions of the median session's bars: its trading time over the bar length,
    rounded up (a session's last bar may be cut short: NSE's 375 minutes make 7 hours)."""
    if not sessions:
        raise ValueError("no sessions to count bars in")
    bars = [sum(math.ceil((end - start).total_seconds() / interval_s)
                for start, end in session.trading_spans()) for session in sessions]
    per_session = float(np.median(bars))
    return Annualisation(SESSIONS_PER_YEAR * per_session,
                         f"sessions: {SESSIONS_PER_YEAR} x {per_session:g} bars a session "
                         "(the median session)")


def bars_per_session(ts_s: IntArray) -> float:
    """The median number of bars per trading day. Days are cut in the middle of the longest
    stretch of the UTC clock at which no bar starts: every session lies on one side of it,
    wherever its exchange is (even one that opens the evening before, UTC)."""
    if not len(ts_s):
        raise ValueError("no bars to count sessions in")
    times = np.unique(ts_s % DAY_S)
    gaps = np.diff(np.append(times, times[0] + DAY_S))
    widest = int(np.argmax(gaps))
    cut = int(times[widest]) + int(gaps[widest]) // 2
    _, counts = np.unique((ts_s - cut) // DAY_S, return_counts=True)
    return float(np.median(counts))


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One strategy over evaluation bars, one entry per step (a decision at a bar's close,
    its order at the next open, the mark at that bar's close). `start_s`: the first
    decision bar's close, where equity is 0; `time_s`: each step's mark (a bar's close).
    `equity` is cumulative (chained across folds); the other arrays are the step's own.
    `actions` are action indices, NO_ACTION where the bot was halted and could not act."""

    start_s: int
    time_s: IntArray
    equity: FloatArray
    position: FloatArray  # after the step: quantity x close / position size
    actions: IntArray
    fills: IntArray
    costs: FloatArray  # fees + slippage
    traded: FloatArray  # |change in quantity| x the open it met / position size
    halts: tuple[tuple[int, str], ...] = ()  # (time_s of the step that found it, reason)

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def returns(self) -> FloatArray:
        """r_t = equity_t - equity_{t-1}, with equity 0 before the first step."""
        return np.diff(self.equity, prepend=0.0)


def chain(parts: Sequence[Trajectory]) -> Trajectory:
    """Consecutive stretches as one: each part's equity carried on from where the previous
    one ended (every part starts from a fresh, flat bot)."""
    if not parts:
        raise ValueError("nothing to chain")
    offsets = np.cumsum([0.0] + [float(p.equity[-1]) if len(p) else 0.0 for p in parts[:-1]])
    return Trajectory(
        parts[0].start_s,
        np.concatenate([p.time_s for p in parts]),
        np.concatenate([p.equity + o for p, o in zip(parts, offsets, strict=True)]),
        np.concatenate([p.position for p in parts]),
        np.concatenate([p.actions for p in parts]),
        np.concatenate([p.fills for p in parts]),
        np.concatenate([p.costs for p in parts]),
        np.concatenate([p.traded for p in parts]),
        tuple(h for p in parts for h in p.halts))


@dataclass(frozen=True, slots=True)
class StrategyMetrics:
    """The module docstring defines each number; `actions` maps each level's name to the
    share of the decisions at it (steps the bot could act on)."""

    steps: int
    total_return: float
    sharpe: float
    max_drawdown: float
    turnover: float
    turnover_per_year: float
    trades: int
    costs: float
    exposure: float
    win_rate: float | None
    actions: dict[str, float] = field(default_factory=dict)

    def top_action(self) -> tuple[str, float] | None:
        """The most frequent action and its share (None without decisions)."""
        if not self.actions or not any(self.actions.values()):
            return None
        name = max(self.actions, key=lambda key: self.actions[key])
        return name, self.actions[name]


def sharpe_ratio(returns: FloatArray, bars_per_year: float) -> float:
    """mean / sample std x sqrt(bars per year); 0 without two steps or any variation."""
    if len(returns) < 2:
        return 0.0
    std = float(np.std(returns, ddof=1))
    # A spread this far below the mean's size is rounding in a flat or constant series.
    if std <= 1e-12 * max(float(np.max(np.abs(returns))), 1e-300):
        return 0.0
    return float(np.mean(returns)) / std * math.sqrt(bars_per_year)


def max_drawdown(equity: FloatArray) -> float:
    """The largest fall from a running peak, the peak starting at equity 0."""
    if not len(equity):
        return 0.0
    peaks = np.maximum.accumulate(np.concatenate(([0.0], equity)))[1:]
    return float(np.max(peaks - equity, initial=0.0))


def action_shares(actions: IntArray, levels: Sequence[SignalLevel]) -> dict[str, float]:
    """Each level's share of the decisions (NO_ACTION steps left out), in level order."""
    decided = actions[actions != NO_ACTION]
    counts = np.bincount(decided, minlength=len(levels)) if len(decided) else np.zeros(
        len(levels), dtype=np.int64)
    total = max(len(decided), 1)
    return {level_name(level): float(counts[i]) / total for i, level in enumerate(levels)}


def strategy_metrics(run: Trajectory, levels: Sequence[SignalLevel],
                     bars_per_year: float) -> StrategyMetrics:
    returns = run.returns
    steps = len(run)
    held = run.position != 0.0
    turnover = float(np.sum(run.traded))
    return StrategyMetrics(
        steps=steps,
        total_return=float(run.equity[-1]) if steps else 0.0,
        sharpe=sharpe_ratio(returns, bars_per_year),
        max_drawdown=max_drawdown(run.equity),
        turnover=turnover,
        turnover_per_year=turnover * bars_per_year / steps if steps else 0.0,
        trades=int(np.sum(run.fills)),
        costs=float(np.sum(run.costs)),
        exposure=float(np.mean(held)) if steps else 0.0,
        win_rate=float(np.mean(returns[held] > 0)) if held.any() else None,
        actions=action_shares(run.actions, levels))
