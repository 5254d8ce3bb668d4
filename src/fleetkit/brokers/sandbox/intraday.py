"""One day of invented trading: a minute path from the day's open to its close, and its bars.

The path is a Brownian bridge in log price over the session's trading minutes (breaks and
nights are skipped, not walked through), plus a few compensated jumps, so it starts exactly
at the walk's open and ends exactly at its close. A minute bar opens and closes on the path;
its high and low are drawn from the exact distribution of a Brownian bridge's extremes
between those two points, so bars have realistic wicks that always contain open and close.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fleetkit.brokers.sandbox.ticks import DecimalGrid, FloatArray, IntArray
from fleetkit.brokers.sandbox.walk import DayLevels
from fleetkit.core.sessions import Session

MINUTE_S = 60
INTRADAY_JUMPS_PER_DAY = 0.5
INTRADAY_JUMP_SIZE_IN_DAY_SIGMAS = 0.5
VOLUME_NOISE_SIGMA = 0.5
TYPICAL_MINUTE_TURNOVER = 1_000_000.0  # in the quote currency; invented, not calibrated


@dataclass(frozen=True, slots=True, eq=False)
class MinuteArrays:
    """Bars as columns: `ts_s` holds bar starts in Unix seconds (UTC), prices are tick-exact."""

    ts_s: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return len(self.ts_s)

    def select(self, which: slice | IntArray | np.ndarray[tuple[int], np.dtype[np.bool_]]
               ) -> MinuteArrays:
        return MinuteArrays(self.ts_s[which], self.open[which], self.high[which],
                            self.low[which], self.close[which], self.volume[which])

    @classmethod
    def concatenate(cls, parts: Sequence[MinuteArrays]) -> MinuteArrays:
        if not parts:
            return cls(np.empty(0, np.int64), *(np.empty(0, np.float64) for _ in range(5)))
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                     ("ts_s", "open", "high", "low", "close", "volume")))


@dataclass(frozen=True, slots=True)
class PathStyle:
    """What shapes one instrument's bars besides its walk: its grids and how it trades."""

    prices: DecimalGrid
    lots: DecimalGrid
    typical_minute_volume: float
    u_shaped_volume: bool  # equities trade most at the open and the close


@dataclass(frozen=True, slots=True, eq=False)
class DayPath:
    """A day's minute bars and the raw prices at minute boundaries they were cut from.

    `levels[i]` is the price at the start of minute i and `levels[i + 1]` at its end (also the
    start of the next trading minute, across a break).
    """

    bars: MinuteArrays
    levels: FloatArray

    def price_at(self, moment_s: float) -> float:
        """The path at `moment_s`, linear between minute boundaries; flat after a span ends."""
        starts = self.bars.ts_s
        i = int(np.searchsorted(starts, moment_s, side="right")) - 1
        if i < 0:
            return float(self.levels[0])
        fraction = min((moment_s - float(starts[i])) / MINUTE_S, 1.0)
        # Weighted this way the ends are exact: fraction 1 gives levels[i + 1] bit for bit.
        return float(self.levels[i]) * (1.0 - fraction) + float(self.levels[i + 1]) * fraction


def minute_starts(session: Session) -> IntArray:
    """Starts (Unix seconds) of the whole minutes inside a session's trading spans."""
    return np.concatenate([
        np.arange(int(start.timestamp()), int(end.timestamp()) - MINUTE_S + 1, MINUTE_S,
                  dtype=np.int64)
        for start, end in session.trading_spans()
    ])


def build_day_path(day: DayLevels, starts: IntArray, style: PathStyle,
                   rng: np.random.Generator) -> DayPath:
    """The day's path and bars. Draws happen in a fixed order: the same rng gives the same day."""
    n = len(starts)
    path_z, high_u, low_u, volume_z = (rng.standard_normal(n), 1.0 - rng.random(n),
                                       1.0 - rng.random(n), rng.standard_normal(n))
    jump_count = int(rng.poisson(INTRADAY_JUMPS_PER_DAY))
    jump_fractions = np.append(rng.random(jump_count), day.jump_fraction)
    jump_sizes = np.append(
        rng.standard_normal(jump_count) * INTRADAY_JUMP_SIZE_IN_DAY_SIGMAS * day.intraday_sigma,
        day.intraday_jump)

    minute_sigma = day.intraday_sigma / math.sqrt(n)
    log_path = _bridge(day, path_z * minute_sigma, jump_fractions, jump_sizes)
    high_log, low_log = _bridge_extremes(log_path, minute_sigma, high_u, low_u)
    levels = np.exp(log_path)
    opens, highs, lows, closes = _tick_prices(style.prices, levels, np.exp(high_log),
                                              np.exp(low_log))
    moves = np.abs(np.diff(log_path)) / minute_sigma
    volume = _volume(style, starts, moves, day.volatility_multiplier, volume_z)
    return DayPath(MinuteArrays(starts, opens, highs, lows, closes, volume), levels)


def _bridge(day: DayLevels, steps: FloatArray, jump_fractions: FloatArray,
            jump_sizes: FloatArray) -> FloatArray:
    """Log prices at the n+1 minute boundaries, pinned to the day's open and close.

    Random walk and jumps are both "bridged" (x(t) - t * x(end)), so neither moves the ends.
    """
    n = len(steps)
    t = np.arange(n + 1, dtype=np.float64) / n
    walk = np.concatenate(([0.0], np.cumsum(steps)))
    jumps = np.zeros(n + 1)
    # A jump lands on a boundary after the first, so the minute before it carries the jump.
    np.add.at(jumps, 1 + (jump_fractions * (n - 1)).astype(np.int64), jump_sizes)
    jumps = np.cumsum(jumps)
    path: FloatArray = (day.open_log + (day.close_log - day.open_log) * t
                        + (walk - t * walk[-1]) + (jumps - t * jumps[-1]))
    path[0], path[-1] = day.open_log, day.close_log  # exact ends: days join without a seam
    return path


def _bridge_extremes(log_path: FloatArray, minute_sigma: float, high_u: FloatArray,
                     low_u: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Highs and lows of a Brownian bridge between consecutive points, sampled exactly.

    For a bridge from a to b with variance s^2, P(max > y) = exp(-2 (y - a)(y - b) / s^2),
    which inverts to max = (a + b + sqrt((b - a)^2 - 2 s^2 ln U)) / 2 for U uniform in (0, 1].
    """
    start, end = log_path[:-1], log_path[1:]
    middle, squared_move = (start + end) / 2, (end - start) ** 2
    variance = minute_sigma**2
    high = middle + np.sqrt(squared_move - 2 * variance * np.log(high_u)) / 2
    low = middle - np.sqrt(squared_move - 2 * variance * np.log(low_u)) / 2
    return high, low


def _tick_prices(grid: DecimalGrid, levels: FloatArray, raw_highs: FloatArray,
                 raw_lows: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Open, high, low, close on the tick grid; high rounds up and low down, and both are
    widened to contain open and close so the bar stays a bar after rounding."""
    counts = np.maximum(grid.nearest(levels), 1)  # an invented price never reaches zero
    opens, closes = counts[:-1], counts[1:]
    highs = np.maximum(grid.at_or_above(raw_highs), np.maximum(opens, closes))
    lows = np.maximum(np.minimum(grid.at_or_below(raw_lows), np.minimum(opens, closes)), 1)
    return grid.floats(opens), grid.floats(highs), grid.floats(lows), grid.floats(closes)


def _volume(style: PathStyle, starts: IntArray, moves: FloatArray, multiplier: float,
            noise_z: FloatArray) -> FloatArray:
    """Lognormal volume in whole lots, busier when the price moves and in turbulent regimes."""
    if style.u_shaped_volume and len(starts) > 1:
        position = (starts - starts[0]) / float(starts[-1] - starts[0])
        profile = 0.5 + 1.5 * (2 * position - 1) ** 2  # averages 1 over the session
    else:
        profile = np.ones(len(starts))
    noise = np.exp(VOLUME_NOISE_SIGMA * noise_z - VOLUME_NOISE_SIGMA**2 / 2)
    raw = style.typical_minute_volume * profile * multiplier * (0.5 + 0.5 * moves) * noise
    return style.lots.floats(np.maximum(style.lots.nearest(raw), 1))


def aggregate(minutes: MinuteArrays, interval_s: int, lots: DecimalGrid) -> MinuteArrays:
    """Bars of `interval_s` seconds from minute bars, bucketed on multiples of the interval
    since the Unix epoch; a bucket holds whichever of its minutes were in session."""
    if interval_s == MINUTE_S or len(minutes) == 0:
        return minutes
    buckets = minutes.ts_s // interval_s
    firsts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    lasts = np.append(firsts[1:], len(minutes)) - 1
    volume = np.add.reduceat(minutes.volume, firsts)
    return MinuteArrays(
        ts_s=buckets[firsts] * interval_s,
        open=minutes.open[firsts],
        high=np.maximum.reduceat(minutes.high, firsts),
        low=np.minimum.reduceat(minutes.low, firsts),
        close=minutes.close[lasts],
        volume=lots.floats(lots.nearest(volume)),  # the float sum's crumbs back onto the lot grid
    )
