"""A feature set over a stretch of history at once: one row per base bar, for training.

A row holds the base bar's own indicators, each higher timeframe's indicators as of its
last bar *completed by the base bar's close* (never the one still being built: that would
be the future seen from the bar), and the base bar's calendar features. Higher timeframes
are aggregated from the base bars on the sessions' boundaries (`columns.aggregate_columns`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fleetkit.core.sessions import Session
from fleetkit.features.columns import (
    BarColumns,
    FloatArray,
    IntArray,
    SessionTable,
    aggregate_columns,
    bucket_bars,
    iso,
)
from fleetkit.features.indicators import timeframe_block
from fleetkit.features.spec import CalendarFeatures, FeatureSet, timeframe_minutes

DAY_S = 86_400
WEEK_DAYS = 7
# 1970-01-01 was a Thursday: day 0 is weekday 3 with Monday as 0.
EPOCH_WEEKDAY = 3


@dataclass(frozen=True, slots=True)
class FeatureMatrix:
    """Feature rows aligned to the base bars: `values[i]` is known at `close_s[i]`.
    Rows before `ready_from` are warm-up (NaN or not yet settled): train after it."""

    feature_set_hash: str
    columns: tuple[str, ...]
    open_s: IntArray
    close_s: IntArray
    values: FloatArray
    ready_from: int
    feature_set: FeatureSet | None = None  # the declaration behind the hash, saved with a model

    def __len__(self) -> int:
        return len(self.open_s)


def base_bars(feature_set: FeatureSet, bars: BarColumns, table: SessionTable) -> BarColumns:
    """`bars` at the set's base timeframe: aggregated if they are finer (minutes, say)."""
    if bars.timeframe == feature_set.base:
        return bars
    if timeframe_minutes(bars.timeframe) > timeframe_minutes(feature_set.base):
        raise ValueError(f"bars of {bars.timeframe} cannot make the feature set's base "
                         f"{feature_set.base}; give {feature_set.base} bars or finer")
    return aggregate_columns(bars, feature_set.base, table).bars


def compute_features(feature_set: FeatureSet, bars: BarColumns,
                     sessions: Iterable[Session]) -> FeatureMatrix:
    """Every feature of every base bar; `bars` are base bars or finer ones to aggregate,
    and `sessions` must hold them all (bars outside the sessions are refused)."""
    table = SessionTable.of(sessions)
    base = base_bars(feature_set, bars, table)
    own = bucket_bars(base.open_s, feature_set.base, table)
    misplaced = np.flatnonzero(own.start_s != base.open_s)
    if len(misplaced):
        raise ValueError(f"the bar at {iso(int(base.open_s[misplaced[0]]))} does not open on "
                         f"a {feature_set.base} boundary of its session (from "
                         f"{iso(int(table.opens_s[own.session[misplaced[0]]]))})")
    values = np.empty((len(base), len(feature_set.columns)), dtype=np.float64)
    frame = feature_set.timeframes[0]
    col = len(frame.columns)
    values[:, :col] = timeframe_block(frame, base)
    ready_from = frame.warmup_bars - 1
    for frame in feature_set.timeframes[1:]:
        higher = aggregate_columns(base, frame.timeframe, table)
        # The last higher bar whose end has passed by each base bar's close.
        done = np.searchsorted(higher.end_s, own.end_s, side="right") - 1
        block = timeframe_block(frame, higher.bars)
        width = len(frame.columns)
        if len(block):
            values[:, col:col + width] = block[np.maximum(done, 0)]
        values[done < 0, col:col + width] = np.nan
        col += width
        # One bar more than the warm-up: the first may be cut short by the history's start.
        ready_from = max(ready_from, int(np.searchsorted(done, frame.warmup_bars)))
    values[:, col:] = calendar_block(feature_set.calendar, base.open_s, own.end_s,
                                     table.opens_s[own.session], table.closes_s[own.session])
    return FeatureMatrix(feature_set.hash(), feature_set.columns, base.open_s, own.end_s,
                         values, min(ready_from, len(base)), feature_set)


def calendar_block(calendar: CalendarFeatures, open_s: IntArray, close_s: IntArray,
                   session_open_s: IntArray, session_close_s: IntArray) -> FloatArray:
    """Time of day and weekday of each bar's open (UTC) on the unit circle, so 23:59 sits
    next to 00:00 and Sunday next to Monday; and the fraction of its session elapsed at
    its close (the last bar of a session is 1)."""
    columns: list[FloatArray] = []
    if calendar.time_of_day:
        angle = (open_s % DAY_S) * (2 * np.pi / DAY_S)
        columns += [np.sin(angle), np.cos(angle)]
    if calendar.day_of_week:
        angle = ((open_s // DAY_S + EPOCH_WEEKDAY) % WEEK_DAYS) * (2 * np.pi / WEEK_DAYS)
        columns += [np.sin(angle), np.cos(angle)]
    if calendar.session_position:
        columns.append((close_s - session_open_s) / (session_close_s - session_open_s))
    if not columns:
        return np.empty((len(open_s), 0), dtype=np.float64)
    return np.column_stack(columns).astype(np.float64, copy=False)

