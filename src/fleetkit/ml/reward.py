"""The step reward: P&L, a risk-adjusted term (the differential Sharpe ratio) and a
drawdown penalty, from the equity curve alone, so both paths reward with the same code."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fleetkit.ml.spec import RewardWeights

# Below this share of the mean square return the variance is rounding, not risk: the
# Sharpe term is 0 there (while nothing is held).
_FLAT_VARIANCE = 1e-12
# The term's size is bounded: near an episode's start, or after a quiet stretch, the
# variance estimate is tiny and one step's D would swamp every P&L of the episode.
_SHARPE_BOUND = 10.0


@dataclass(frozen=True, slots=True)
class RewardParts:
    pnl: float
    sharpe: float
    drawdown_increase: float
    total: float


class RewardTracker:
    """Equity (net P&L as a fraction of the position size) in, reward out, bar by bar.

    Differential Sharpe ratio (Moody & Saffell 1998), with A and B exponential moving
    averages of the step return R and of R^2 at rate eta:
        D = (B dA - A dB / 2) / (B - A^2)^(3/2),  dA = R - A,  dB = R^2 - B
    taken with the averages before this step, which are then moved by eta dA and eta dB.
    Drawdown is the fall from the episode's peak equity; only its increase is penalised,
    so a recovery is rewarded by its P&L alone."""

    __slots__ = ("_a", "_b", "_equity", "_peak", "_steps", "_warmup", "_weights")

    def __init__(self, weights: RewardWeights) -> None:
        self._weights = weights
        self._equity = self._peak = self._a = self._b = 0.0
        self._steps = 0
        # The averages start at 0 each episode: until about 1/eta steps have moved them,
        # they describe the start, not the returns, so the term is left out until then.
        self._warmup = math.ceil(1 / weights.sharpe_eta) if weights.sharpe_eta > 0 else 0

    def reset(self, equity: float) -> None:
        self._equity = self._peak = equity
        self._a = self._b = 0.0
        self._steps = 0

    def step(self, equity: float) -> RewardParts:
        w = self._weights
        r = equity - self._equity
        a, b = self._a, self._b
        d_a, d_b = r - a, r * r - b
        variance = b - a * a
        sharpe = 0.0
        if self._steps >= self._warmup and b > 0 and variance > _FLAT_VARIANCE * b:
            sharpe = (b * d_a - 0.5 * a * d_b) / (variance * math.sqrt(variance))
            sharpe = max(-_SHARPE_BOUND, min(_SHARPE_BOUND, sharpe))
        self._steps += 1
        self._a, self._b = a + w.sharpe_eta * d_a, b + w.sharpe_eta * d_b
        drawdown_before = self._peak - self._equity
        self._peak = max(self._peak, equity)
        increase = max(0.0, (self._peak - equity) - drawdown_before)
        self._equity = equity
        total = r + w.sharpe * sharpe - w.drawdown * increase
        return RewardParts(r, sharpe, increase, total)
