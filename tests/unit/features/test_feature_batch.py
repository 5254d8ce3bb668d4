"""Batch features: higher timeframes built on the sessions' boundaries exactly as
core.bars.aggregate builds them, nothing looking ahead of a bar's close, and the formulas
as documented."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from fleetkit.core.bars import BarRecord, aggregate
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
from fleetkit.features.columns import BarColumns, SessionTable, aggregate_columns
from tests.unit.features.feature_bars import (
    SHORT_DAY,
    always_sessions,
    nse_sessions,
    random_bars,
    with_future_changed,
)

NSE = nse_sessions(date(2024, 1, 22), 25)  # a holiday (26 Jan) and a short day (9 Feb)
# Short periods, so that every timeframe (the daily too) has values within a few weeks.
QUICK = (Returns(1), Returns(2), RSI(3), EMADistance(3), Bollinger(3, 2.0), ATR(3),
         MACD(2, 4, 2), RealisedVolatility(3), VolumeZScore(3))
QUICK_NSE = FeatureSet(tuple(TimeframeFeatures(t, QUICK) for t in ("15m", "1h", "4h", "1d")))


def records(bars: BarColumns) -> list[BarRecord]:
    return [BarRecord.from_floats(datetime.fromtimestamp(t, UTC), o, h, lo, c, v)
            for t, o, h, lo, c, v in zip(bars.open_s.tolist(), bars.open.tolist(),
                                         bars.high.tolist(), bars.low.tolist(),
                                         bars.close.tolist(), bars.volume.tolist(), strict=True)]


@pytest.mark.parametrize(("sessions", "timeframe"), [
    (NSE, "15m"), (NSE, "1h"), (NSE, "4h"), (NSE, "1d"),
    (always_sessions(date(2024, 3, 1), 3), "4h"), (always_sessions(date(2024, 3, 1), 3), "1d"),
])
def test_buckets_are_core_bars_aggregate_buckets(sessions: list[Session],
                                                 timeframe: str) -> None:
    minutes = random_bars(sessions, "1m", missing=0.05)
    ours = aggregate_columns(minutes, timeframe, SessionTable.of(sessions)).bars
    theirs = aggregate(records(minutes), timeframe, sessions)
    assert [int(b.open_time.timestamp()) for b in theirs] == ours.open_s.tolist()
    for name in ("open", "high", "low", "close"):
        assert [float(getattr(b, name)) for b in theirs] == getattr(ours, name).tolist()
    np.testing.assert_allclose([float(b.volume) for b in theirs], ours.volume, rtol=1e-12)


def test_minutes_give_the_same_features_as_their_base_bars() -> None:
    minutes = random_bars(NSE, "1m", seed=3)
    table = SessionTable.of(NSE)
    quarter_hours = aggregate_columns(minutes, "15m", table).bars
    from_minutes = compute_features(QUICK_NSE, minutes, NSE)
    from_base = compute_features(QUICK_NSE, quarter_hours, NSE)
    np.testing.assert_array_equal(from_minutes.values, from_base.values)


@pytest.mark.parametrize("cut", [30, 137, 160, 201, 299])
def test_changing_every_bar_after_one_leaves_its_row_and_all_before_unchanged(cut: int) -> None:
    bars = random_bars(NSE, "15m", missing=0.03)
    before = compute_features(QUICK_NSE, bars, NSE)
    after = compute_features(QUICK_NSE, with_future_changed(bars, cut), NSE)
    truncated = compute_features(QUICK_NSE, BarColumns(
        bars.timeframe, *(c[:cut + 1] for c in (bars.open_s, bars.open, bars.high, bars.low,
                                                  bars.close, bars.volume))), NSE)
    np.testing.assert_array_equal(after.values[:cut + 1], before.values[:cut + 1])
    np.testing.assert_array_equal(truncated.values, before.values[:cut + 1])
    # The change is real: every timeframe's columns differ somewhere later on.
    for frame in QUICK_NSE.timeframes:
        cols = [QUICK_NSE.columns.index(c) for c in frame.columns]
        changed = ~np.isclose(after.values[cut + 1:, cols], before.values[cut + 1:, cols],
                              equal_nan=True)
        assert changed.any(), frame.timeframe


def test_a_higher_bar_counts_from_the_base_bar_that_completes_it() -> None:
    bars = random_bars(NSE, "15m")
    fs = FeatureSet((TimeframeFeatures("15m", (Returns(1),)),
                     TimeframeFeatures("1h", (Returns(1),))))
    matrix = compute_features(fs, bars, NSE)
    hours = aggregate_columns(bars, "1h", SessionTable.of(NSE)).bars
    hour_return = np.log(hours.close[1:] / hours.close[:-1])
    # 09:15-10:15 IST is the first hour: its bar completes with the 10:00 quarter-hour, so
    # the second hour's return first shows on the 11:00 quarter-hour (index 7).
    column = matrix.values[:, 1]
    assert np.isnan(column[:7]).all()
    assert column[7] == hour_return[0]
    assert column[8:11].tolist() == [hour_return[0]] * 3
    assert column[11] == hour_return[1]


def test_formulas_on_known_values() -> None:
    bars = random_bars(always_sessions(date(2024, 3, 1), 10), "1h", seed=5)
    fs = FeatureSet((TimeframeFeatures("1h", (Returns(4), Bollinger(5, 2.0),
                                              RealisedVolatility(5), VolumeZScore(5), RSI(14))),))
    m = compute_features(fs, bars, always_sessions(date(2024, 3, 1), 10))
    col = {name: m.values[:, i] for i, name in enumerate(fs.columns)}
    c, v, i = bars.close, bars.volume, 50
    assert col["1h.ret_4"][i] == pytest.approx(np.log(c[i] / c[i - 4]), rel=1e-12)
    window = c[i - 4:i + 1]
    mean, std = window.mean(), window.std()
    assert col["1h.bb_pos_5_2"][i] == pytest.approx((c[i] - (mean - 2 * std)) / (4 * std))
    assert col["1h.bb_width_5_2"][i] == pytest.approx(4 * std / mean)
    steps = np.log(c[i - 4:i + 1] / c[i - 5:i])
    assert col["1h.rvol_5"][i] == pytest.approx(np.sqrt(np.mean(steps ** 2)))
    assert col["1h.vol_z_5"][i] == pytest.approx((v[i] - v[i - 4:i + 1].mean())
                                                 / v[i - 4:i + 1].std())
    assert 0 < np.nanmin(col["1h.rsi_14"]) <= np.nanmax(col["1h.rsi_14"]) < 1
    assert np.isnan(col["1h.ret_4"][:4]).all() and np.isnan(col["1h.rsi_14"][:14]).all()


def test_flat_prices_and_no_volume_are_the_middle_and_zero_not_nan() -> None:
    sessions = always_sessions(date(2024, 3, 1), 2)
    bars = random_bars(sessions, "1h", volume=False)
    flat = np.full(len(bars), 50.0)
    bars = BarColumns("1h", bars.open_s, flat, flat, flat, flat, bars.volume)
    fs = FeatureSet((TimeframeFeatures("1h", (Bollinger(5, 2.0), VolumeZScore(5))),))
    m = compute_features(fs, bars, sessions)
    assert m.values[4:, 0].tolist() == [0.5] * (len(bars) - 4)
    assert m.values[4:, 1].tolist() == [0.0] * (len(bars) - 4)
    assert m.values[4:, 2].tolist() == [0.0] * (len(bars) - 4)


def test_calendar_features_of_a_bar() -> None:
    fs = FeatureSet((TimeframeFeatures("15m", (Returns(1),)),))
    m = compute_features(fs, random_bars(NSE, "15m"), NSE)
    # 22 Jan 2024 is a Monday; its first bar opens 03:45 UTC and closes at 1/25 of the day.
    tod = 2 * np.pi * (3.75 / 24)
    assert m.values[0, 1:].tolist() == pytest.approx([np.sin(tod), np.cos(tod), 0.0, 1.0,
                                                      1 / 25])
    assert m.values[24, -1] == 1.0  # the session's last bar
    short = next(s for s in NSE if s.open.date() == SHORT_DAY)
    first = m.open_s.tolist().index(int(short.open.timestamp()))
    assert m.values[first + 9:first + 12, -1].tolist() == [10 / 11, 1.0, 1 / 25]


def test_ready_from_is_where_every_timeframe_has_its_warmup() -> None:
    fs = default_feature_set(["1h", "4h"])
    sessions = always_sessions(date(2024, 1, 1), 80)
    m = compute_features(fs, random_bars(sessions, "1h"), sessions)
    assert m.ready_from == (fs.warmup_by_timeframe()["4h"] + 1) * 4 - 1
    assert np.isfinite(m.values[m.ready_from:]).all()
    assert np.isnan(m.values[m.ready_from - 1]).any() or m.ready_from > 0


def test_bars_outside_the_sessions_or_off_their_boundaries_are_refused() -> None:
    bars = random_bars(NSE, "15m")
    with pytest.raises(ValueError, match="lies outside every session given"):
        compute_features(QUICK_NSE, bars, NSE[1:])
    shifted = BarColumns("15m", bars.open_s + 300, bars.open, bars.high, bars.low, bars.close,
                         bars.volume)
    with pytest.raises(ValueError, match="does not open on a 15m boundary"):
        compute_features(QUICK_NSE, shifted, NSE)
    with pytest.raises(ValueError, match="oldest first"):
        BarColumns("15m", bars.open_s[::-1].copy(), bars.open, bars.high, bars.low,
                   bars.close, bars.volume)


def test_a_feature_row_of_a_volume_less_index_is_finite_after_warmup() -> None:
    sessions = nse_sessions(date(2024, 1, 1), 120)
    bars = random_bars(sessions, "15m", volume=False)
    m = compute_features(QUICK_NSE, bars, sessions)
    assert 0 < m.ready_from < len(bars)
    assert np.isfinite(m.values[m.ready_from:]).all()
