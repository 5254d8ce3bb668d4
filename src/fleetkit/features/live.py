"""The feature row of each base bar as it closes, for a live bot: the batch row, one at a time.

Each timeframe keeps its last `warmup_bars` completed bars and recomputes its indicators
with the batch code over them when a bar of its own completes: window indicators over
exactly their window (on the base bars, the batch's values to the bit; a higher bar's
volume is summed in another order, so there to rounding), recursions over the whole kept
window, which their warm-up makes equal to the batch's within CONVERGENCE.
Higher-timeframe bars are built from the base bars as they arrive and count as complete
on the same rule as the batch: once their bucket's end has passed by a base bar's close.

`LiveBars` builds one timeframe's bars from finer ones on the same rule, for a model whose
base is slower than the bars it is fed; a `SessionBook` holds the sessions, and grows as
days pass, for both.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fleetkit.core.bars import TIMEFRAMES
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.features.batch import calendar_block
from fleetkit.features.columns import BarColumns, FloatArray, iso
from fleetkit.features.indicators import timeframe_block
from fleetkit.features.spec import FeatureSet, TimeframeFeatures

_FIELDS = 5  # open, high, low, close, volume


class SessionBook:
    """Sessions as Unix-second opens and closes, oldest first; `add` appends later ones (a
    live bot asks its calendar for more days as they come)."""

    def __init__(self, sessions: Iterable[Session] = ()) -> None:
        self.opens: list[int] = []
        self.closes: list[int] = []
        self.add(sessions)

    def add(self, sessions: Iterable[Session]) -> None:
        """Sessions opening after the last one known (earlier ones are known already)."""
        for session in sorted(sessions, key=lambda s: s.open):
            open_s = int(session.open.timestamp())
            if self.opens and open_s <= self.opens[-1]:
                continue
            self.opens.append(open_s)
            self.closes.append(int(session.close.timestamp()))

    def find(self, open_s: int) -> int:
        """The index of the session holding a bar that opens at `open_s`."""
        i = bisect_right(self.opens, open_s) - 1
        if i < 0 or open_s >= self.closes[i]:
            raise ValueError(f"the bar at {iso(open_s)} lies outside every session given; "
                             "pass the sessions that hold the bars")
        return i


def bucket(open_s: int, timeframe: str, session_open: int,
           session_close: int) -> tuple[int, int]:
    """[start, end) of the `timeframe` bar holding a bar that opens at `open_s`: whole
    timeframe lengths from the session's open, cut at its close; a day is the session."""
    minutes = TIMEFRAMES[timeframe]
    if minutes is None:
        return session_open, session_close
    step = minutes * 60
    start = session_open + (open_s - session_open) // step * step
    return start, min(start + step, session_close)


@dataclass(slots=True)
class _Building:
    """A higher-timeframe bar still being built from base bars."""

    start_s: int
    end_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class _Frame:
    """One timeframe's last completed bars (a buffer that shifts once per `window` bars)
    and its features as of the last of them."""

    def __init__(self, features: TimeframeFeatures) -> None:
        self.features = features
        self.window = features.warmup_bars
        self.completed = 0
        self.latest = np.full(len(features.columns), np.nan)
        self.building: _Building | None = None
        self._open_s = np.empty(2 * self.window, dtype=np.int64)
        self._prices = np.empty((_FIELDS, 2 * self.window), dtype=np.float64)
        self._end = 0

    def complete(self, open_s: int, bar: tuple[float, float, float, float, float]) -> None:
        if self._end == len(self._open_s):
            keep = self.window - 1
            self._open_s[:keep] = self._open_s[self._end - keep:self._end]
            self._prices[:, :keep] = self._prices[:, self._end - keep:self._end]
            self._end = keep
        self._open_s[self._end] = open_s
        self._prices[:, self._end] = bar
        self._end += 1
        self.completed += 1
        start = max(self._end - self.window, 0)
        p = self._prices
        kept = BarColumns(self.features.timeframe, self._open_s[start:self._end],
                          p[0, start:self._end], p[1, start:self._end], p[2, start:self._end],
                          p[3, start:self._end], p[4, start:self._end])
        self.latest = timeframe_block(self.features, kept, last_only=True)[0]


class LiveFeatures:
    """Feed base bars as they close (`update`); each returns that bar's feature row, equal
    to `compute_features`' row for it once `ready` (after about
    `feature_set.warmup_bars(...)` bars of history: feed them first)."""

    def __init__(self, feature_set: FeatureSet,
                 sessions: Iterable[Session] | SessionBook) -> None:
        """`sessions`: those holding the bars, or a book shared with others and extended
        as days pass (`add_sessions` or the book's own `add`)."""
        self.feature_set = feature_set
        self._book = sessions if isinstance(sessions, SessionBook) else SessionBook(sessions)
        self._frames = [_Frame(f) for f in feature_set.timeframes]
        self._last_open_s: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.feature_set.columns

    def add_sessions(self, sessions: Iterable[Session]) -> None:
        """Sessions after the last one known: a live bot's calendar, a few weeks at a time."""
        self._book.add(sessions)

    @property
    def ready(self) -> bool:
        """Every timeframe has settled: the rows are the batch's (within CONVERGENCE)."""
        base, *higher = self._frames
        return base.completed >= base.window and all(
            f.completed > f.window for f in higher)  # the first may be cut short

    def update(self, bar: Bar) -> FloatArray:
        """The feature row of `bar`, a base bar that has just closed."""
        return self.update_at(int(bar.ts.timestamp()), bar.open, bar.high, bar.low,
                              bar.close, bar.volume)

    def feed(self, bars: BarColumns) -> FloatArray | None:
        """Feed history (base bars, oldest first); the last row, or None if none."""
        row: FloatArray | None = None
        for i in range(len(bars)):
            row = self.update_at(int(bars.open_s[i]), float(bars.open[i]),
                                 float(bars.high[i]), float(bars.low[i]),
                                 float(bars.close[i]), float(bars.volume[i]))
        return row

    def update_at(self, open_s: int, open_: float, high: float, low: float, close: float,
                  volume: float) -> FloatArray:
        """`update` from plain numbers: the bar's start in Unix seconds and its OHLCV."""
        if self._last_open_s is not None and open_s <= self._last_open_s:
            raise ValueError(f"bar at {iso(open_s)} is not after the last one fed, at "
                             f"{iso(self._last_open_s)}")
        session = self._book.find(open_s)
        session_open, session_close = self._book.opens[session], self._book.closes[session]
        start, close_s = bucket(open_s, self.feature_set.base, session_open,
                                      session_close)
        if start != open_s:
            raise ValueError(f"the bar at {iso(open_s)} does not open on a "
                             f"{self.feature_set.base} boundary of its session")
        self._last_open_s = open_s
        prices = (open_, high, low, close, volume)
        base, *higher = self._frames
        base.complete(open_s, prices)
        for frame in higher:
            self._add_to_higher(frame, open_s, prices, close_s, session_open, session_close)
        calendar = calendar_block(
            self.feature_set.calendar, np.array([open_s]), np.array([close_s]),
            np.array([session_open]), np.array([session_close]))
        return np.concatenate([*(f.latest for f in self._frames), calendar[0]])

    def _add_to_higher(self, frame: _Frame, open_s: int,
                       prices: tuple[float, float, float, float, float], close_s: int,
                       session_open: int, session_close: int) -> None:
        start, end = bucket(open_s, frame.features.timeframe, session_open,
                                  session_close)
        building = frame.building
        if building is not None and building.start_s != start:
            # A new bucket began: the last one is over even if its final bars never came.
            _complete(frame, building)
            building = None
        if building is None:
            building = _Building(start, end, *prices)
        else:
            building.high = max(building.high, prices[1])
            building.low = min(building.low, prices[2])
            building.close = prices[3]
            building.volume += prices[4]
        frame.building = building
        if end <= close_s:
            _complete(frame, building)
            frame.building = None


def _complete(frame: _Frame, bar: _Building) -> None:
    frame.complete(bar.start_s, (bar.open, bar.high, bar.low, bar.close, bar.volume))


class AggregatedBar(NamedTuple):
    """A completed bar of a slower timeframe: its start (Unix seconds) and OHLCV."""

    open_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class LiveBars:
    """Bars of `timeframe` built from bars of the finer `source` as each closes, on the
    sessions' boundaries and the batch's completion rule (a bar is complete once its
    bucket's end has passed by a source bar's close, or a later bucket has begun), so a
    model on a slower base sees the bars its training aggregated. The first bucket is
    dropped unless the first bar fed opens it: history may start in its middle."""

    def __init__(self, source: str, timeframe: str, sessions: SessionBook) -> None:
        self.source = source
        self.timeframe = timeframe
        self._book = sessions
        self._building: _Building | None = None
        self._skip: int | None = None  # the start of a bucket seen only in part

    def update_at(self, open_s: int, open_: float, high: float, low: float, close: float,
                  volume: float) -> list[AggregatedBar]:
        """The bars of `timeframe` completed by this source bar, oldest first (none; one;
        two when a bucket's last bars never came and this bar completes its own)."""
        i = self._book.find(open_s)
        session_open, session_close = self._book.opens[i], self._book.closes[i]
        close_s = bucket(open_s, self.source, session_open, session_close)[1]
        start, end = bucket(open_s, self.timeframe, session_open, session_close)
        done: list[_Building] = []
        building = self._building
        if building is None and self._skip is None:
            self._skip = -1 if start == open_s else start
        if building is not None and building.start_s != start:
            done.append(building)
            building = None
        if building is None:
            building = _Building(start, end, open_, high, low, close, volume)
        else:
            building.high = max(building.high, high)
            building.low = min(building.low, low)
            building.close = close
            building.volume += volume
        self._building = building
        if end <= close_s:
            done.append(building)
            self._building = None
        return [AggregatedBar(b.start_s, b.open, b.high, b.low, b.close, b.volume)
                for b in done if b.start_s != self._skip]
