"""Incremental indicators against straightforward, recompute-everything references."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.strategy.indicators import (
    RelativeStrengthIndex,
    RollingExtremes,
    SimpleMovingAverage,
)

PROPERTY = settings(max_examples=150, deadline=None, database=None)
closes = st.floats(min_value=1, max_value=1_000, allow_nan=False, allow_infinity=False).map(
    lambda x: round(x, 2))
series = st.lists(closes, min_size=0, max_size=120)
periods = st.integers(min_value=1, max_value=30)


def reference_sma(values: list[float], period: int) -> list[float | None]:
    return [None if i + 1 < period else sum(values[i + 1 - period:i + 1]) / period
            for i in range(len(values))]


def reference_rsi(values: list[float], period: int) -> list[float | None]:
    """Wilder's RSI recomputed from scratch at every bar: seed with the plain mean of the first
    `period` gains and losses, then smooth with weight 1/period."""
    out: list[float | None] = []
    for end in range(len(values)):
        changes = [b - a for a, b in pairwise(values[:end + 1])]
        if len(changes) < period:
            out.append(None)
            continue
        gains = [max(c, 0.0) for c in changes]
        losses = [max(-c, 0.0) for c in changes]
        avg_gain = sum(gains[:period]) / period
        avg_loss = sum(losses[:period]) / period
        for gain, loss in zip(gains[period:], losses[period:], strict=True):
            avg_gain = (avg_gain * (period - 1) + gain) / period
            avg_loss = (avg_loss * (period - 1) + loss) / period
        if avg_loss == 0:
            out.append(100.0 if avg_gain > 0 else 50.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return out


def same(ours: list[float | None], theirs: list[float | None]) -> bool:
    return len(ours) == len(theirs) and all(
        (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(b))
        for a, b in zip(ours, theirs, strict=True))


# --- SMA ---------------------------------------------------------------------------------


@given(series, periods)
@PROPERTY
def test_sma_matches_the_mean_of_the_last_n_values(values: list[float], period: int) -> None:
    sma = SimpleMovingAverage(period)
    assert same([sma.update(v) for v in values], reference_sma(values, period))


def test_sma_is_none_until_the_window_is_full() -> None:
    sma = SimpleMovingAverage(3)
    assert [sma.update(v) for v in (1.0, 2.0, 3.0, 4.0)] == [None, None, 2.0, 3.0]


def test_sma_of_period_one_is_the_value_itself() -> None:
    sma = SimpleMovingAverage(1)
    assert [sma.update(v) for v in (5.0, 7.0)] == [5.0, 7.0]


def test_sma_period_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="period must be at least 1"):
        SimpleMovingAverage(0)


# --- RSI ---------------------------------------------------------------------------------


@given(series, st.integers(min_value=2, max_value=20))
@PROPERTY
def test_rsi_matches_wilders_definition_recomputed_from_scratch(values: list[float],
                                                                period: int) -> None:
    rsi = RelativeStrengthIndex(period)
    ours = [rsi.update(v) for v in values]
    assert same(ours, reference_rsi(values, period))
    assert all(v is None or 0.0 <= v <= 100.0 for v in ours)


def test_rsi_needs_period_changes_before_its_first_value() -> None:
    rsi = RelativeStrengthIndex(3)
    values = [rsi.update(v) for v in (10.0, 11.0, 12.0, 13.0)]
    assert values[:3] == [None, None, None]
    assert values[3] == 100.0


def test_rsi_of_a_falling_series_is_zero() -> None:
    rsi = RelativeStrengthIndex(2)
    assert [rsi.update(v) for v in (10.0, 9.0, 8.0, 7.0)][-1] == 0.0


def test_rsi_of_a_flat_series_is_fifty() -> None:
    rsi = RelativeStrengthIndex(2)
    assert [rsi.update(v) for v in (10.0, 10.0, 10.0)][-1] == 50.0


def test_rsi_with_equal_gains_and_losses_is_fifty() -> None:
    rsi = RelativeStrengthIndex(2)
    assert [rsi.update(v) for v in (10.0, 11.0, 10.0)][-1] == pytest.approx(50.0)


def test_rsi_period_must_be_at_least_two() -> None:
    with pytest.raises(ValueError, match="period must be at least 2"):
        RelativeStrengthIndex(1)


# --- rolling extremes --------------------------------------------------------------------


bars = st.lists(st.tuples(closes, closes).map(lambda hl: (max(hl), min(hl))), max_size=80)


@given(bars, periods)
@PROPERTY
def test_channel_is_the_max_high_and_min_low_of_the_previous_n_bars(
        highs_lows: list[tuple[float, float]], period: int) -> None:
    extremes = RollingExtremes(period)
    for index, (high, low) in enumerate(highs_lows):
        window = highs_lows[index - period:index] if index >= period else None
        expected = None if window is None else (max(h for h, _ in window),
                                                min(lo for _, lo in window))
        assert extremes.channel(index) == expected
        extremes.push(index, high, low)


def test_channel_excludes_the_current_bar() -> None:
    extremes = RollingExtremes(2)
    for index, (high, low) in enumerate([(10.0, 9.0), (11.0, 8.0), (50.0, 1.0)]):
        channel = extremes.channel(index)
        extremes.push(index, high, low)
    assert channel == (11.0, 8.0)
    assert extremes.channel(3) == (50.0, 1.0)


def test_channel_forgets_bars_older_than_the_period() -> None:
    extremes = RollingExtremes(2)
    for index, (high, low) in enumerate([(99.0, 1.0), (10.0, 9.0), (11.0, 8.0)]):
        extremes.channel(index)
        extremes.push(index, high, low)
    assert extremes.channel(3) == (11.0, 8.0)


def test_extremes_period_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="period must be at least 1"):
        RollingExtremes(0)


def test_the_sma_is_the_exactly_rounded_mean_of_its_window_over_a_long_run() -> None:
    """A running float sum accumulates rounding error; this one must equal the exact mean of
    the window, correctly rounded, at every step (a near-tie crossover depends on the last
    digit)."""
    import random
    from fractions import Fraction

    from fleetkit.strategy.indicators import SimpleMovingAverage

    rng = random.Random(7)
    sma = SimpleMovingAverage(30)
    window: list[float] = []
    price = 60_000.0
    for step in range(100_000):
        price = round(price + rng.gauss(0, 25), 2)
        window = [*window[-29:], price]
        value = sma.update(price)
        if value is not None and step % 97 == 0:  # Fractions are slow: a sample suffices
            assert value == float(sum(map(Fraction, window)) / 30)


def test_the_same_window_gives_the_same_sma_whatever_came_before() -> None:
    """A bot restarted from a short warm-up and one that ran for months agree to the bit."""
    import random

    from fleetkit.strategy.indicators import SimpleMovingAverage

    rng = random.Random(3)
    history = [rng.uniform(0.001, 150_000.0) for _ in range(50_000)]
    long_run, fresh = SimpleMovingAverage(20), SimpleMovingAverage(20)
    for value in history:
        long_run_value = long_run.update(value)
    for value in history[-20:]:
        fresh_value = fresh.update(value)
    assert long_run_value == fresh_value
