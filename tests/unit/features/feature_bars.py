"""Synthetic sessions and bars for the feature tests: an NSE-like weekday market with a
holiday and a short day, and a 24/7 market; random-walk prices, some bars missing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from fleetkit.core.bars import TIMEFRAMES
from fleetkit.core.sessions import Session
from fleetkit.features.columns import BarColumns

HOLIDAY = date(2024, 1, 26)  # Republic Day: no session
SHORT_DAY = date(2024, 2, 9)  # closes at 12:00 IST, mid-bucket for 1h and 4h


def nse_sessions(first: date, days: int) -> list[Session]:
    """Weekday sessions 09:15-15:30 IST (03:45-10:00 UTC) for `days` calendar days."""
    found = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        if day.weekday() >= 5 or day == HOLIDAY:
            continue
        opens = datetime(day.year, day.month, day.day, 3, 45, tzinfo=UTC)
        short = day == SHORT_DAY
        closes = opens.replace(hour=6 if short else 10, minute=30 if short else 0)
        found.append(Session(opens, closes))
    return found


def always_sessions(first: date, days: int) -> list[Session]:
    """A 24/7 market's UTC days."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return [Session(start + timedelta(days=d), start + timedelta(days=d + 1))
            for d in range(days)]


def bar_starts(sessions: list[Session], timeframe: str) -> np.ndarray:
    minutes = TIMEFRAMES[timeframe]
    starts: list[int] = []
    for s in sessions:
        opens, closes = int(s.open.timestamp()), int(s.close.timestamp())
        step = closes - opens if minutes is None else minutes * 60
        starts.extend(range(opens, closes, step))
    return np.array(starts, dtype=np.int64)


def random_bars(sessions: list[Session], timeframe: str, *, seed: int = 7,
                missing: float = 0.0, volume: bool = True) -> BarColumns:
    """A random walk on every bucket of the sessions, less a `missing` share of bars."""
    rng = np.random.default_rng(seed)
    starts = bar_starts(sessions, timeframe)
    if missing:
        starts = starts[rng.random(len(starts)) >= missing]
    n = len(starts)
    close = 20_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.concatenate(([20_000.0], close[:-1])) * np.exp(rng.normal(0.0, 0.0005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.001, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.001, n)))
    vol = rng.lognormal(8.0, 0.5, n) if volume else np.zeros(n)
    return BarColumns(timeframe, starts, open_, high, low, close, vol)


def with_future_changed(bars: BarColumns, after: int, seed: int = 99) -> BarColumns:
    """The same bars up to index `after`, every later one moved to other prices."""
    rng = np.random.default_rng(seed)
    factor = np.ones(len(bars))
    factor[after + 1:] = np.exp(rng.normal(0.0, 0.05, len(bars) - after - 1))
    vol = bars.volume.copy()
    vol[after + 1:] = vol[after + 1:] * 3.0 + 1.0
    return BarColumns(bars.timeframe, bars.open_s, bars.open * factor, bars.high * factor,
                      bars.low * factor, bars.close * factor, vol)
