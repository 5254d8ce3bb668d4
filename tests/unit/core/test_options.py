"""Black-Scholes, implied volatility and ATM strikes (core/options.py)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetkit.core.options import (
    OptionKind,
    atm_strike,
    black_scholes_price,
    delta,
    implied_volatility,
    straddle_premium,
    vega,
)

CALL, PUT = OptionKind.CALL, OptionKind.PUT


def test_a_textbook_call_and_put_are_priced_as_published() -> None:
    # Hull's example: S=42, K=40, r=10%, sigma=20%, T=0.5 -> c=4.76, p=0.81.
    assert black_scholes_price(CALL, 42, 40, 0.5, 0.2, 0.1) == pytest.approx(4.7594, abs=1e-4)
    assert black_scholes_price(PUT, 42, 40, 0.5, 0.2, 0.1) == pytest.approx(0.8086, abs=1e-4)


@given(spot=st.floats(1_000, 100_000), moneyness=st.floats(0.7, 1.3),
       years=st.floats(1 / 365, 1.0), volatility=st.floats(0.05, 1.0),
       rate=st.floats(0.0, 0.1))
def test_put_call_parity_holds(spot: float, moneyness: float, years: float, volatility: float,
                               rate: float) -> None:
    strike = spot * moneyness
    call = black_scholes_price(CALL, spot, strike, years, volatility, rate)
    put = black_scholes_price(PUT, spot, strike, years, volatility, rate)
    assert call - put == pytest.approx(spot - strike * math.exp(-rate * years),
                                       rel=1e-9, abs=1e-7 * spot)


@given(spot=st.floats(1_000, 100_000), moneyness=st.floats(0.8, 1.2),
       years=st.floats(2 / 365, 1.0), volatility=st.floats(0.05, 1.5),
       kind=st.sampled_from(OptionKind))
def test_implied_volatility_gives_back_the_volatility_that_priced_the_option(
        spot: float, moneyness: float, years: float, volatility: float,
        kind: OptionKind) -> None:
    strike = spot * moneyness
    price = black_scholes_price(kind, spot, strike, years, volatility, 0.065)
    if vega(spot, strike, years, volatility, 0.065) < 1e-6 * spot:
        return  # so far from the money that the price says nothing about volatility
    found = implied_volatility(kind, price, spot, strike, years, 0.065)
    assert found is not None
    assert black_scholes_price(kind, spot, strike, years, found, 0.065) == pytest.approx(
        price, abs=1e-6)
    assert found == pytest.approx(volatility, rel=1e-4)


def test_implied_volatility_is_none_where_no_volatility_explains_the_price() -> None:
    assert implied_volatility(CALL, 1.0, 24_000, 23_000, 0.1) is None  # below intrinsic
    assert implied_volatility(CALL, 25_000, 24_000, 24_000, 0.1) is None  # above the spot
    assert implied_volatility(PUT, 100, 24_000, 24_000, 0.0) is None  # expired
    assert implied_volatility(PUT, math.nan, 24_000, 24_000, 0.1) is None


def test_delta_is_the_slope_of_the_price_and_vega_its_volatility_slope() -> None:
    spot, strike, years, vol, rate = 24_000.0, 24_200.0, 0.05, 0.15, 0.065
    h = 0.01
    for kind in OptionKind:
        slope = (black_scholes_price(kind, spot + h, strike, years, vol, rate)
                 - black_scholes_price(kind, spot - h, strike, years, vol, rate)) / (2 * h)
        assert delta(kind, spot, strike, years, vol, rate) == pytest.approx(slope, rel=1e-5)
    vol_slope = (black_scholes_price(CALL, spot, strike, years, vol + 1e-5, rate)
                 - black_scholes_price(CALL, spot, strike, years, vol - 1e-5, rate)) / 2e-5
    assert vega(spot, strike, years, vol, rate) == pytest.approx(vol_slope, rel=1e-5)
    assert 0 < delta(CALL, spot, strike, years, vol) < 1
    assert -1 < delta(PUT, spot, strike, years, vol) < 0


def test_at_expiry_an_option_is_worth_its_intrinsic_value() -> None:
    assert black_scholes_price(CALL, 24_100, 24_000, 0.0, 0.2) == 100
    assert black_scholes_price(PUT, 24_100, 24_000, 0.0, 0.2) == 0


@pytest.mark.parametrize(("spot", "step", "atm"), [
    (24_012.5, 50, 24_000), (24_024.95, 50, 24_000), (24_025, 50, 24_050),
    (24_074.9, 50, 24_050), (52_149.0, 100, 52_100), (80_050, 100, 80_100),
])
def test_the_atm_strike_is_the_nearest_listed_strike_halves_up(spot: float, step: float,
                                                                atm: float) -> None:
    assert atm_strike(Decimal(str(spot)), Decimal(step)) == atm


def test_bad_inputs_are_refused_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="strike step must be positive"):
        atm_strike(Decimal(24_000), Decimal(0))
    with pytest.raises(ValueError, match="spot and strike must be positive"):
        black_scholes_price(CALL, -1, 24_000, 0.1, 0.2)
    with pytest.raises(ValueError, match="volatility must be zero or more"):
        black_scholes_price(CALL, 24_000, 24_000, 0.1, math.nan)


def test_a_straddle_costs_the_call_and_the_put() -> None:
    call = black_scholes_price(CALL, 24_000, 24_000, 7 / 365, 0.13)
    put = black_scholes_price(PUT, 24_000, 24_000, 7 / 365, 0.13)
    assert straddle_premium(call, put) == pytest.approx(call + put)
    # The rule of thumb: an ATM straddle is about 0.8 * S * sigma * sqrt(T).
    assert straddle_premium(call, put) == pytest.approx(0.8 * 24_000 * 0.13 * math.sqrt(7 / 365),
                                                        rel=0.01)
