"""European option arithmetic: Black-Scholes price and greeks, implied volatility, ATM strikes.

Pure floats and the standard library: the sandbox prices chains with it, and collectors and
trackers use the same functions to mark a straddle or back out an implied volatility from a
real broker's quote. Time is in years, volatility and the rate are annual and continuously
compounded; no dividends (Indian index options are priced off the future, which the rate
carries).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

# Implied volatility is searched in this band; outside it a quote is garbage, not a market.
MIN_VOLATILITY = 1e-4
MAX_VOLATILITY = 5.0
_IV_PRICE_TOLERANCE = 1e-8
_IV_MAX_STEPS = 200


class OptionKind(StrEnum):
    """Call or put, spelt as Indian exchanges do in tradingsymbols."""

    CALL = "CE"
    PUT = "PE"


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _check(spot: float, strike: float, years: float, volatility: float) -> None:
    if not (spot > 0 and strike > 0 and math.isfinite(spot) and math.isfinite(strike)):
        raise ValueError(f"spot and strike must be positive numbers, got {spot} and {strike}")
    if not (years >= 0 and math.isfinite(years)):
        raise ValueError(f"time to expiry must be zero or more years, got {years}")
    if not (volatility >= 0 and math.isfinite(volatility)):
        raise ValueError(f"volatility must be zero or more, got {volatility}")


def _d1_d2(spot: float, strike: float, years: float, volatility: float,
           rate: float) -> tuple[float, float]:
    root_t = volatility * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * volatility * volatility) * years) / root_t
    return d1, d1 - root_t


def _intrinsic(kind: OptionKind, spot: float, strike: float, years: float, rate: float) -> float:
    """The value with no volatility left: the discounted forward payoff."""
    discounted_strike = strike * math.exp(-rate * years)
    if kind is OptionKind.CALL:
        return max(spot - discounted_strike, 0.0)
    return max(discounted_strike - spot, 0.0)


def black_scholes_price(kind: OptionKind, spot: float, strike: float, years: float,
                        volatility: float, rate: float = 0.0) -> float:
    _check(spot, strike, years, volatility)
    if years == 0 or volatility == 0:
        return _intrinsic(kind, spot, strike, years, rate)
    d1, d2 = _d1_d2(spot, strike, years, volatility, rate)
    discount = math.exp(-rate * years)
    if kind is OptionKind.CALL:
        return spot * normal_cdf(d1) - strike * discount * normal_cdf(d2)
    return strike * discount * normal_cdf(-d2) - spot * normal_cdf(-d1)


def delta(kind: OptionKind, spot: float, strike: float, years: float, volatility: float,
          rate: float = 0.0) -> float:
    """d price / d spot: in (0, 1) for a call, (-1, 0) for a put."""
    _check(spot, strike, years, volatility)
    if years == 0 or volatility == 0:
        forward_itm = spot > strike * math.exp(-rate * years)
        if kind is OptionKind.CALL:
            return 1.0 if forward_itm else 0.0
        return 0.0 if forward_itm else -1.0
    d1, _ = _d1_d2(spot, strike, years, volatility, rate)
    return normal_cdf(d1) if kind is OptionKind.CALL else normal_cdf(d1) - 1.0


def vega(spot: float, strike: float, years: float, volatility: float, rate: float = 0.0) -> float:
    """d price / d volatility (per 1.00 of volatility, not per point); same for calls and puts."""
    _check(spot, strike, years, volatility)
    if years == 0 or volatility == 0:
        return 0.0
    d1, _ = _d1_d2(spot, strike, years, volatility, rate)
    return spot * normal_pdf(d1) * math.sqrt(years)


def implied_volatility(kind: OptionKind, price: float, spot: float, strike: float,
                       years: float, rate: float = 0.0) -> float | None:
    """The volatility at which Black-Scholes gives `price`, or None when no volatility in
    [MIN_VOLATILITY, MAX_VOLATILITY] does (a price below intrinsic or above the spot, an
    expired option). Newton steps guarded by a bisection bracket: Newton alone runs away
    where vega is tiny (far from the money, near expiry)."""
    _check(spot, strike, years, 0.0)
    if not math.isfinite(price) or years == 0:
        return None
    low, high = MIN_VOLATILITY, MAX_VOLATILITY
    if not (black_scholes_price(kind, spot, strike, years, low, rate) - _IV_PRICE_TOLERANCE
            <= price <= black_scholes_price(kind, spot, strike, years, high, rate)):
        return None
    guess = math.sqrt(2.0 * math.pi / years) * price / spot  # Brenner-Subrahmanyam
    volatility = min(max(guess, low), high)
    for _ in range(_IV_MAX_STEPS):
        error = black_scholes_price(kind, spot, strike, years, volatility, rate) - price
        if abs(error) < _IV_PRICE_TOLERANCE:
            return volatility
        if error > 0:
            high = volatility
        else:
            low = volatility
        slope = vega(spot, strike, years, volatility, rate)
        stepped = volatility - error / slope if slope > 0 else math.nan
        # Outside the bracket (or no slope): bisect instead.
        volatility = stepped if low < stepped < high else 0.5 * (low + high)
        if high - low < 1e-12:
            return volatility
    return volatility


def atm_strike(spot: Decimal, strike_step: Decimal) -> Decimal:
    """The listed strike nearest the spot; a spot exactly between two strikes takes the
    higher (the exchanges' convention for the "ATM" row differs; this one is fixed). Exact:
    strikes are stored as exact decimals and matched by equality."""
    if not (spot > 0 and strike_step > 0 and spot.is_finite() and strike_step.is_finite()):
        raise ValueError(f"spot and strike step must be positive, got {spot} and {strike_step}")
    steps = (spot / strike_step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return (steps * strike_step).normalize() + Decimal(0)  # + 0: no "-0", no exponent form


def straddle_premium(call_price: float, put_price: float) -> float:
    """What buying the ATM call and put together costs (per unit of the underlying)."""
    return call_price + put_price
