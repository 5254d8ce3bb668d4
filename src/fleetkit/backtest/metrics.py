"""Backtest statistics from an equity curve: pure numpy, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Performance:
    net_pnl: float
    return_pct: float
    max_drawdown: float
    max_drawdown_pct: float  # of the capital, like the return
    sharpe: float | None  # annualized, from daily returns; None with fewer than 2 days


def max_drawdown(equity: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Largest peak-to-trough fall, as an amount and as a percentage of the peak."""
    if len(equity) == 0:
        return 0.0, 0.0
    peaks = np.maximum.accumulate(equity)
    drops = peaks - equity
    i = int(np.argmax(drops))
    pct = float(drops[i] / peaks[i] * 100) if peaks[i] > 0 else 0.0
    return float(drops[i]), pct


def daily_sharpe(ts_s: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], capital: float,
                 days_per_year: float) -> float | None:
    """Annualized Sharpe of daily returns on capital (daily P&L / capital), zero risk-free.

    Returns on capital rather than on equity: a strategy that loses more than its capital
    has negative equity, where equity-relative returns stop meaning anything.
    """
    if len(equity) == 0 or capital <= 0:
        return None
    days = ts_s // 86_400
    last_of_day = np.flatnonzero(np.r_[days[1:] != days[:-1], True])
    closes = np.r_[capital, equity[last_of_day]]
    if len(closes) < 3:
        return None
    returns = np.diff(closes) / capital
    std = float(np.std(returns, ddof=1))
    if std == 0 or not math.isfinite(std):
        return None
    return float(np.mean(returns) / std * math.sqrt(days_per_year))


def performance(ts_s: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], initial: float,
                days_per_year: float) -> Performance:
    final = float(equity[-1]) if len(equity) else initial
    drawdown, _ = max_drawdown(equity)
    # Both percentages are of the capital (a full position), so they compare directly; a
    # percentage of peak equity stops meaning anything once equity nears zero.
    return Performance(final - initial, (final - initial) / initial * 100, drawdown,
                       drawdown / initial * 100,
                       daily_sharpe(ts_s, equity, initial, days_per_year))
