"""Bars as numpy columns, and their buckets on the exchange's session boundaries.

The same buckets as `core.bars.aggregate`, vectorised: a timeframe's bucket opens at its
session's open plus a whole number of timeframe lengths (the daily bucket is the session)
and ends at the next such boundary or the session's close, whichever comes first. A bucket
is *complete* once its end has passed; a base bar's own end is its close, the moment a
live bot sees it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from fleetkit.core.bars import TIMEFRAMES, check_timeframe
from fleetkit.core.sessions import Session

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class BarColumns:
    """OHLCV bars of one instrument and timeframe as columns, oldest first; `open_s` are
    the bars' starts in Unix seconds (UTC). A BarTape's columns fit as they are."""

    timeframe: str
    open_s: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        check_timeframe(self.timeframe)
        n = len(self.open_s)
        for name in ("open", "high", "low", "close", "volume"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"bar column {name} has shape {getattr(self, name).shape}, "
                                 f"not ({n},) like open_s")
        if n > 1 and not bool(np.all(np.diff(self.open_s) > 0)):
            i = int(np.argmin(np.diff(self.open_s) > 0))
            raise ValueError(f"bars must be oldest first without repeats: the bar at "
                             f"{iso(int(self.open_s[i + 1]))} follows {iso(int(self.open_s[i]))}")

    def __len__(self) -> int:
        return len(self.open_s)

    def tail(self, count: int) -> BarColumns:
        """The last `count` bars (views, not copies)."""
        start = max(len(self) - count, 0)
        return BarColumns(self.timeframe, self.open_s[start:], self.open[start:],
                          self.high[start:], self.low[start:], self.close[start:],
                          self.volume[start:])


@dataclass(frozen=True, slots=True)
class SessionTable:
    """Session opens and closes as sorted Unix seconds, for vectorised look-ups."""

    opens_s: IntArray
    closes_s: IntArray

    @classmethod
    def of(cls, sessions: Iterable[Session]) -> SessionTable:
        ordered = sorted(sessions, key=lambda s: s.open)
        return cls(np.array([int(s.open.timestamp()) for s in ordered], dtype=np.int64),
                   np.array([int(s.close.timestamp()) for s in ordered], dtype=np.int64))

    def holding(self, times_s: IntArray) -> tuple[IntArray, BoolArray]:
        """Index of the session holding each time, and whether one does."""
        index = np.searchsorted(self.opens_s, times_s, side="right") - 1
        safe = np.maximum(index, 0)
        inside = (index >= 0) & (times_s < self.closes_s[safe]) if len(self.opens_s) else (
            np.zeros(len(times_s), dtype=np.bool_))
        return safe, inside


@dataclass(frozen=True, slots=True)
class Buckets:
    """Where each bar falls in a timeframe: its bucket's start and end, and its session."""

    start_s: IntArray
    end_s: IntArray
    session: IntArray


def bucket_bars(open_s: IntArray, timeframe: str, table: SessionTable) -> Buckets:
    """The `timeframe` bucket of each bar start; every start must lie inside a session."""
    session, inside = table.holding(open_s)
    if not bool(np.all(inside)):
        outside = int(open_s[int(np.argmin(inside))])
        raise ValueError(f"the bar at {iso(outside)} lies outside every session given; pass "
                         "the sessions that hold the bars")
    return _bounds(open_s, timeframe, table, session)


def _bounds(open_s: IntArray, timeframe: str, table: SessionTable,
            session: IntArray) -> Buckets:
    session_open = table.opens_s[session]
    session_close = table.closes_s[session]
    minutes = TIMEFRAMES[check_timeframe(timeframe)]
    if minutes is None:
        return Buckets(session_open, session_close, session)
    step = minutes * 60
    start = session_open + (open_s - session_open) // step * step
    return Buckets(start, np.minimum(start + step, session_close), session)


@dataclass(frozen=True, slots=True)
class AggregatedBars:
    """Bars of a higher timeframe with the moment each completes (its bucket's end)."""

    bars: BarColumns
    end_s: IntArray


def aggregate_columns(bars: BarColumns, timeframe: str, table: SessionTable) -> AggregatedBars:
    """`bars` (of a timeframe whose buckets nest in `timeframe`'s) as `timeframe` bars, as
    `core.bars.aggregate` builds them: consecutive bars of one bucket make one bar; bars
    outside every session are left out."""
    session, inside = table.holding(bars.open_s)
    keep = np.flatnonzero(inside)
    open_s = bars.open_s[keep]
    buckets = _bounds(open_s, timeframe, table, session[keep])
    if len(open_s) == 0:
        empty = np.empty(0, dtype=np.float64)
        return AggregatedBars(BarColumns(timeframe, open_s, empty, empty, empty, empty, empty),
                              open_s)
    first = np.flatnonzero(np.concatenate(([True], buckets.start_s[1:] != buckets.start_s[:-1])))
    last = np.concatenate((first[1:] - 1, [len(open_s) - 1]))
    rows = keep[first]
    merged = BarColumns(
        timeframe, buckets.start_s[first], bars.open[rows],
        np.maximum.reduceat(bars.high[keep], first), np.minimum.reduceat(bars.low[keep], first),
        bars.close[keep[last]], np.add.reduceat(bars.volume[keep], first))
    return AggregatedBars(merged, buckets.end_s[first])
