"""Decimal and time helpers: conversion that refuses garbage, rounding to steps, UTC only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.numbers import (
    ceil_to_step,
    epoch_seconds,
    floor_to_step,
    from_epoch_seconds,
    require_utc,
    round_to_step,
    to_decimal,
    truncate_toward_zero,
)

Rounder = Callable[[Decimal, Decimal], Decimal]

PROPERTY = settings(max_examples=200, deadline=None, database=None)

values = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6,
                     allow_nan=False, allow_infinity=False)
steps = st.sampled_from([Decimal("0.01"), Decimal("0.05"), Decimal("0.25"), Decimal("0.0001"),
                         Decimal("1"), Decimal("5"), Decimal("100"), Decimal("0.5"),
                         Decimal("0.00000001")])


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


# --- to_decimal --------------------------------------------------------------------------


def test_float_converts_through_repr_not_its_binary_expansion() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    assert str(to_decimal(0.1)) == "0.1"


def test_int_decimal_and_numeric_string_convert_exactly() -> None:
    assert to_decimal(7) == Decimal(7)
    assert to_decimal(Decimal("1.2300")) == Decimal("1.2300")
    assert to_decimal(" 42.5 ") == Decimal("42.5")


@given(st.floats(allow_nan=False, allow_infinity=False))
@PROPERTY
def test_any_finite_float_round_trips_through_to_decimal(value: float) -> None:
    assert float(to_decimal(value)) == value


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_float_is_refused_naming_the_value(bad: float) -> None:
    with pytest.raises(ValueError, match="limit price must be a finite number"):
        to_decimal(bad, what="limit price")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "sNaN"])
def test_non_finite_string_is_refused_naming_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="fee must be a finite number"):
        to_decimal(bad, what="fee")


def test_non_finite_decimal_is_refused() -> None:
    with pytest.raises(ValueError, match="quantity must be a finite number"):
        to_decimal(Decimal("NaN"), what="quantity")


@pytest.mark.parametrize("flag", [True, False])
def test_boolean_is_refused_even_though_it_is_an_int(flag: bool) -> None:
    with pytest.raises(ValueError, match="size must be a number, got a boolean"):
        to_decimal(flag, what="size")


@pytest.mark.parametrize("garbage", ["abc", "", "1,5", "12..3"])
def test_garbage_string_is_refused_naming_the_value(garbage: str) -> None:
    with pytest.raises(ValueError, match="price must be a number"):
        to_decimal(garbage, what="price")


@pytest.mark.parametrize("other", [None, [1], {"a": 1}, object()])
def test_other_types_are_refused_naming_the_type(other: object) -> None:
    with pytest.raises(ValueError, match=rf"price must be a number, got {type(other).__name__}"):
        to_decimal(other, what="price")


def test_default_name_is_value() -> None:
    with pytest.raises(ValueError, match=r"^value must be"):
        to_decimal("x")


# --- rounding to a step ------------------------------------------------------------------


@given(values, steps)
@PROPERTY
def test_floor_to_step_is_the_largest_multiple_not_above(value: Decimal, step: Decimal) -> None:
    result = floor_to_step(value, step)
    assert is_multiple(result, step)
    assert result <= value < result + step


@given(values, steps)
@PROPERTY
def test_ceil_to_step_is_the_smallest_multiple_not_below(value: Decimal, step: Decimal) -> None:
    result = ceil_to_step(value, step)
    assert is_multiple(result, step)
    assert result - step < value <= result


@given(values, steps)
@PROPERTY
def test_round_to_step_is_a_nearest_multiple(value: Decimal, step: Decimal) -> None:
    result = round_to_step(value, step)
    assert is_multiple(result, step)
    assert abs(result - value) * 2 <= step
    assert result in (floor_to_step(value, step), ceil_to_step(value, step))


@given(values, steps)
@PROPERTY
def test_truncate_toward_zero_never_grows_the_magnitude(value: Decimal, step: Decimal) -> None:
    result = truncate_toward_zero(value, step)
    assert is_multiple(result, step)
    assert abs(result) <= abs(value) < abs(result) + step
    assert result == 0 or (result > 0) == (value > 0)


@given(values, steps)
@PROPERTY
def test_rounding_a_multiple_of_the_step_leaves_it_unchanged(value: Decimal,
                                                             step: Decimal) -> None:
    multiple = floor_to_step(value, step)
    for rounder in (floor_to_step, ceil_to_step, round_to_step, truncate_toward_zero):
        assert rounder(multiple, step) == multiple


def test_round_to_step_breaks_ties_to_the_even_multiple() -> None:
    assert round_to_step(Decimal("0.125"), Decimal("0.01")) == Decimal("0.12")
    assert round_to_step(Decimal("0.135"), Decimal("0.01")) == Decimal("0.14")
    assert round_to_step(Decimal("7.5"), Decimal("5")) == Decimal("10")


def test_results_carry_the_step_exponent() -> None:
    assert str(floor_to_step(Decimal("3"), Decimal("0.01"))) == "3.00"
    assert str(ceil_to_step(Decimal("1.234"), Decimal("0.1"))) == "1.3"


def test_negative_values_floor_away_from_zero_and_truncate_toward_it() -> None:
    assert floor_to_step(Decimal("-1.5"), Decimal("1")) == Decimal("-2")
    assert ceil_to_step(Decimal("-1.5"), Decimal("1")) == Decimal("-1")
    assert truncate_toward_zero(Decimal("-1.5"), Decimal("1")) == Decimal("-1")


@pytest.mark.parametrize("rounder", [floor_to_step, ceil_to_step, round_to_step,
                                     truncate_toward_zero])
@pytest.mark.parametrize("step", [Decimal(0), Decimal("-0.01")])
def test_a_step_that_is_not_positive_is_refused(rounder: Rounder, step: Decimal) -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        rounder(Decimal("1.5"), step)


# --- time --------------------------------------------------------------------------------


def test_require_utc_converts_aware_times_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    moment = datetime(2026, 3, 10, 9, 0, tzinfo=tokyo)
    converted = require_utc(moment)
    assert converted == moment
    assert converted.tzinfo is UTC
    assert converted.hour == 0


def test_require_utc_refuses_naive_times_naming_them() -> None:
    naive = datetime(2026, 1, 1, 12, 0)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="bar start must be timezone-aware, got naive"):
        require_utc(naive, what="bar start")


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_require_utc_refuses_a_tzinfo_without_an_offset() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        require_utc(datetime(2026, 1, 1, tzinfo=_NoOffset()))


def test_epoch_seconds_round_trip() -> None:
    moment = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    assert from_epoch_seconds(epoch_seconds(moment)) == moment
    assert from_epoch_seconds(0).tzinfo is UTC
