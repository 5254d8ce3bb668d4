"""Bars from the bar store (store/bars.py, written by `fleet data record`/`backfill`) as a
replay tape: the history the fleet recorded, replayed through the same engine.

Pure: the caller reads the records (and aggregates them on the market's sessions for a
timeframe above a minute); this turns them into the tape's columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fleetkit.backtest.tape import BarTape
from fleetkit.core.bars import BarRecord
from fleetkit.core.instruments import Instrument

# Replay intervals the store can serve: stored one-minute bars, or their aggregates.
TIMEFRAME_OF_INTERVAL = {60: "1m", 300: "5m", 900: "15m", 3600: "1h"}


def stored_timeframe(interval_s: int) -> str | None:
    """The store's timeframe for a replay interval, None when it has none (sub-minute)."""
    return TIMEFRAME_OF_INTERVAL.get(interval_s)


def records_tape(instrument: Instrument, interval_s: int,
                 records: Sequence[BarRecord]) -> BarTape:
    """`records` (oldest first, one instrument, spaced by `interval_s` or more) as a tape.
    Prices go to floats here, as for every tape: the replay's venue quantises them."""
    return BarTape(
        instrument, interval_s,
        np.array([int(r.open_time.timestamp()) for r in records], dtype=np.int64),
        np.array([float(r.open) for r in records], dtype=np.float64),
        np.array([float(r.high) for r in records], dtype=np.float64),
        np.array([float(r.low) for r in records], dtype=np.float64),
        np.array([float(r.close) for r in records], dtype=np.float64),
        np.array([float(r.volume) for r in records], dtype=np.float64))
