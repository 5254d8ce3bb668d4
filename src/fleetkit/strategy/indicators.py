"""Incremental indicators: O(1) per bar, pure Python, no numpy in the hot loop.

Each `update(x)` returns the indicator's current value, or None until it has enough data.
"""

from __future__ import annotations

from collections import deque
from math import ldexp


class SimpleMovingAverage:
    """Mean of the last `period` values, exactly: the same window gives the same average to
    the last bit, however long the history behind it.

    A float running sum (even a compensated one) carries rounding from every value it ever
    added, so a bot restarted from a short warm-up and one that ran for months can disagree
    in the last bit — enough to call a near-tie crossover a bar apart, live against a
    backtest. Here each value becomes an integer count of 2^-80 (exact for any price above
    about 1e-8; below, the same value always truncates the same way), the window's total is
    an exact integer, and the mean is that total divided once, correctly rounded.
    """

    __slots__ = ("_divisor", "_period", "_total", "_window")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self._period = period
        self._window: deque[int] = deque(maxlen=period)
        self._total = 0
        self._divisor = period << SCALE_BITS

    def update(self, value: float) -> float | None:
        return self.update_scaled(int(ldexp(value, SCALE_BITS)))

    def update_scaled(self, value: int) -> float | None:
        """`update` with the value already scaled, `int(ldexp(value, SCALE_BITS))`: averages
        of the same series share that conversion (a hot loop makes it inline, not a call)."""
        window = self._window
        if len(window) == self._period:  # full, the usual case: the oldest value leaves
            self._total += value - window[0]
            window.append(value)
            return self._total / self._divisor
        self._total += value
        window.append(value)
        return self._total / self._divisor if len(window) == self._period else None


SCALE_BITS = 80  # SimpleMovingAverage keeps each value as an integer count of 2^-SCALE_BITS


class RelativeStrengthIndex:
    """Wilder's RSI: smoothed average gain over smoothed average loss."""

    __slots__ = ("_avg_gain", "_avg_loss", "_count", "_period", "_prev")

    def __init__(self, period: int) -> None:
        if period < 2:
            raise ValueError("period must be at least 2")
        self._period = period
        self._prev: float | None = None
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self._count = 0

    def update(self, value: float) -> float | None:
        prev = self._prev
        self._prev = value
        if prev is None:
            return None
        change = value - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        period = self._period
        self._count += 1
        if self._count <= period:
            # Seed with a plain average over the first `period` changes.
            self._avg_gain += gain / period
            self._avg_loss += loss / period
            if self._count < period:
                return None
        else:
            self._avg_gain = (self._avg_gain * (period - 1) + gain) / period
            self._avg_loss = (self._avg_loss * (period - 1) + loss) / period
        if self._avg_loss == 0.0:
            return 100.0 if self._avg_gain > 0 else 50.0
        rs = self._avg_gain / self._avg_loss
        return 100.0 - 100.0 / (1.0 + rs)


class RollingExtremes:
    """Highest high and lowest low over the previous `period` bars (excluding the current)."""

    __slots__ = ("_highs", "_lows", "_period")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self._period = period
        # Monotonic deques of (index, value) give O(1) amortised max/min.
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()

    def channel(self, index: int) -> tuple[float, float] | None:
        """The (upper, lower) channel over bars [index - period, index), or None if short."""
        highs, lows = self._highs, self._lows
        start = index - self._period
        while highs and highs[0][0] < start:
            highs.popleft()
        while lows and lows[0][0] < start:
            lows.popleft()
        if start < 0 or not highs:
            return None
        return highs[0][1], lows[0][1]

    def push(self, index: int, high: float, low: float) -> None:
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= high:
            highs.pop()
        highs.append((index, high))
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((index, low))
