"""Live features equal batch features: bar by bar, across session boundaries, a holiday, a
short day and missing bars, from the first bar or from a warm-up's worth of history."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.features import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    EMADistance,
    FeatureSet,
    RealisedVolatility,
    Returns,
    TimeframeFeatures,
    VolumeZScore,
    default_feature_set,
)
from fleetkit.features.batch import compute_features
from fleetkit.features.columns import BarColumns
from fleetkit.features.live import LiveFeatures
from tests.unit.features.feature_bars import always_sessions, nse_sessions, random_bars

RTOL, ATOL = 1e-9, 1e-12


def rows_fed(live: LiveFeatures, bars: BarColumns, start: int) -> np.ndarray:
    return np.array([live.update(Bar(datetime.fromtimestamp(int(bars.open_s[i]), UTC),
                                     float(bars.open[i]), float(bars.high[i]),
                                     float(bars.low[i]), float(bars.close[i]),
                                     float(bars.volume[i])))
                     for i in range(start, len(bars))])


def history(bars: BarColumns, start: int, stop: int) -> BarColumns:
    return BarColumns(bars.timeframe, *(c[start:stop] for c in (
        bars.open_s, bars.open, bars.high, bars.low, bars.close, bars.volume)))


def assert_rows_equal(live: np.ndarray, batch: np.ndarray, columns: tuple[str, ...]) -> None:
    close = np.isclose(live, batch, rtol=RTOL, atol=ATOL, equal_nan=True)
    bad = np.argwhere(~close)
    assert not len(bad), (f"{len(bad)} values differ, first {columns[bad[0][1]]} at row "
                          f"{bad[0][0]}: live {live[tuple(bad[0])]} batch {batch[tuple(bad[0])]}")


def test_live_equals_batch_from_the_first_bar_for_the_default_nifty_set() -> None:
    sessions = nse_sessions(date(2024, 1, 1), 240)  # ~4,200 quarter-hours, holiday, short day
    bars = random_bars(sessions, "15m", missing=0.02)
    fs = default_feature_set(["15m", "1h", "1d"])
    batch = compute_features(fs, bars, sessions)
    live = rows_fed(LiveFeatures(fs, sessions), bars, 0)
    assert len(bars) > 4000
    assert_rows_equal(live, batch.values, fs.columns)
    # Past the base timeframe's warm-up its kept window is full and sliding.
    assert fs.warmup_by_timeframe()["15m"] < len(bars) - 1000


@pytest.mark.parametrize(("timeframes", "sessions", "session_minutes"), [
    (["1h", "4h"], always_sessions(date(2024, 1, 1), 130), 1440),  # the BTC bot's
    (["15m", "1h"], nse_sessions(date(2024, 1, 1), 200), 375),
])
def test_live_started_after_its_warmup_equals_batch_over_the_whole_history(
        timeframes: list[str], sessions: list[Session], session_minutes: int) -> None:
    bars = random_bars(sessions, timeframes[0], missing=0.01, seed=11)
    fs = default_feature_set(timeframes)
    warmup = fs.warmup_bars(session_minutes)
    start = len(bars) - 800
    live = LiveFeatures(fs, sessions)
    live.feed(history(bars, start - warmup, start))
    assert live.ready
    batch = compute_features(fs, bars, sessions)
    assert_rows_equal(rows_fed(live, bars, start), batch.values[start:], fs.columns)


QUICK = (Returns(1), Returns(3), RSI(3), EMADistance(4), Bollinger(4, 1.5), ATR(3),
         MACD(2, 5, 3), RealisedVolatility(4), VolumeZScore(4))


def test_a_daily_timeframe_live_from_its_warmup_equals_batch() -> None:
    sessions = nse_sessions(date(2023, 6, 1), 300)
    bars = random_bars(sessions, "15m", missing=0.02, seed=4)
    fs = FeatureSet(tuple(TimeframeFeatures(t, QUICK) for t in ("15m", "4h", "1d")))
    warmup = fs.warmup_bars(375)
    start = len(bars) - 1500
    live = LiveFeatures(fs, sessions)
    assert not live.ready
    live.feed(history(bars, start - warmup, start))
    assert live.ready
    batch = compute_features(fs, bars, sessions)
    live_rows = rows_fed(live, bars, start)
    assert_rows_equal(live_rows, batch.values[start:], fs.columns)
    # Window indicators of the base bars see the very same numbers: equal to the last bit.
    # (A higher bar's volume is a sum, added in another order live: equal to rounding.)
    exact = [i for i, c in enumerate(fs.columns) if c.startswith("15m.")
             and ("bb_" in c or "vol_z" in c)]
    np.testing.assert_array_equal(live_rows[:, exact], batch.values[start:, exact])


def test_too_little_history_is_not_ready_and_differs_from_batch() -> None:
    sessions = always_sessions(date(2024, 1, 1), 60)
    bars = random_bars(sessions, "1h", seed=2)
    fs = default_feature_set(["1h", "4h"])
    start = len(bars) - 50
    live = LiveFeatures(fs, sessions)
    live.feed(history(bars, start - 100, start))
    assert not live.ready
    batch = compute_features(fs, bars, sessions)
    late = rows_fed(live, bars, start)
    assert not np.isclose(late, batch.values[start:], rtol=RTOL, atol=ATOL,
                          equal_nan=True).all()


def test_bars_fed_out_of_order_or_outside_the_sessions_are_refused() -> None:
    sessions = always_sessions(date(2024, 1, 1), 2)
    bars = random_bars(sessions, "1h")
    live = LiveFeatures(default_feature_set(["1h"]), sessions)
    live.feed(history(bars, 0, 5))
    with pytest.raises(ValueError, match="is not after the last one fed"):
        live.feed(history(bars, 3, 4))
    with pytest.raises(ValueError, match="outside every session"):
        live.update_at(int(sessions[-1].close.timestamp()), 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="does not open on a 1h boundary"):
        live.update_at(int(bars.open_s[6]) + 60, 1.0, 1.0, 1.0, 1.0, 1.0)
