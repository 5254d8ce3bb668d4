"""Incremental indicators: O(1) per bar, pure Python floats, no numpy in the hot loop.

Each `update(x)` returns the indicator's current value, or None until it has enough data.
"""

from __future__ import annotations

from collections import deque


class SimpleMovingAverage:
    """Mean of the last `period` values.

    The running sum is compensated (TwoSum): a plain running sum drifts by rounding error
    with every add and subtract, and after a few hundred thousand bars a long-running bot's
    average would differ in the last digits from a freshly started one's — enough to call a
    near-tie crossover a bar early. Compensated, it stays within an ulp of the exact sum.
    """

    __slots__ = ("_compensation", "_period", "_sum", "_window")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be at least 1")
        self._period = period
        self._window: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._compensation = 0.0

    def update(self, value: float) -> float | None:
        # Knuth's TwoSum, inlined and branch-free: the rounding error of each add goes into
        # the compensation. This runs twice per bar per average in a backtest.
        window = self._window
        total, compensation = self._sum, self._compensation
        if len(window) == self._period:
            old = -window[0]
            new_total = total + old
            back = new_total - total
            compensation += (total - (new_total - back)) + (old - back)
            total = new_total
        window.append(value)
        new_total = total + value
        back = new_total - total
        compensation += (total - (new_total - back)) + (value - back)
        self._sum, self._compensation = new_total, compensation
        if len(window) < self._period:
            return None
        return (new_total + compensation) / self._period


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
