"""Held-back marks with one instrument held: the price band solved once per exact mark says
what the per-cycle estimate says — a mark is held back inside the band, written outside it —
except within a hair of the band's ends, where either answer is safe (the estimate keeps a
cent and a billionth of the P&L's scale from every limit)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from fleetkit.engine.brakes import _far_from_limits, _safe_band

money = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
limit = st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e6))
slope = st.one_of(st.just(0.0), st.floats(min_value=-1e4, max_value=1e4, allow_nan=False))
price = st.floats(min_value=0.01, max_value=1e6)


def near(value: float, bound: float) -> bool:
    return math.isfinite(bound) and abs(value - bound) <= 1e-7 * max(1.0, abs(bound))


@given(money, money, slope, price, limit, limit, price)
def test_the_band_holds_back_exactly_where_the_estimate_does(
        daily: float, others: float, slope: float, then: float, bot_limit: float | None,
        fleet_limit: float | None, now: float) -> None:
    limits = (bot_limit, fleet_limit)
    low, high = _safe_band(daily, others, slope, then, limits)
    in_band = low < now < high
    far = _far_from_limits(daily, others, {"k": (slope, then)}, {"k": now}, limits)
    if in_band != far:
        assert near(now, low) or near(now, high), (low, high, now)


@given(money, money, slope, price, price)
def test_no_limits_means_no_mark_is_ever_needed(daily: float, others: float, slope: float,
                                                then: float, now: float) -> None:
    low, high = _safe_band(daily, others, slope, then, (None, None))
    assert (low, high) == (-math.inf, math.inf)
    assert _far_from_limits(daily, others, {"k": (slope, then)}, {"k": now}, (None, None))


def test_a_loss_already_at_the_limit_with_no_exposure_never_holds_back() -> None:
    low, high = _safe_band(-100.0, 0.0, 0.0, 50.0, (100.0, None))
    assert not low < 50.0 < high


def test_a_long_position_is_held_back_above_the_price_that_would_reach_the_limit() -> None:
    # 10 units bought today at 100 with a 50 daily-loss limit: the breaker is at 95.
    low, high = _safe_band(0.0, 0.0, 10.0, 100.0, (50.0, None))
    assert high == math.inf
    assert 95.0 < low < 95.01  # a cent of margin, and a hair for the float estimate
    short_low, short_high = _safe_band(0.0, 0.0, -10.0, 100.0, (50.0, None))
    assert short_low == -math.inf
    assert 104.99 < short_high < 105.0
