"""Invented index futures: monthly contracts priced at the spot's cost of carry, and the roll.

Pure like chains.py: a quote is a function of (seed, contract, spot, time). A future trades
at the spot carried to expiry at the risk-free rate plus a small basis that wanders from
day to day (a draw per contract and day); one or two ticks wide near, wider further out.
Open interest sits in the near month and migrates to the next over the last week before
expiry, as traders roll; volume follows open interest through the session.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from fleetkit.core.futures import FutureQuote

from .chains import RISK_FREE_RATE, TICK, PricingMoment, on_tick_grid, uniform_draw, years_to
from .contracts import ContractRules
from .expiries import TradingDay

_BASIS_NOISE = 0.0004  # the basis wanders within +-0.04% of the spot around fair carry
_ROLL_WEEK_DAYS = 7.0  # open interest moves to the next month over this many days
_OI_LOTS_PER_ATM_OPTION_LOTS = 0.8  # the near future's OI against the ATM option's
_FAR_MONTH_SHARE = 0.08
_DAY_TURNOVER = 0.6


def quote_future(rules: ContractRules, key: str, expiry: date, expiry_close: datetime,
                 position: int, near_close: datetime, moment: PricingMoment) -> FutureQuote:
    """`position`: 0 for the near month, 1 the next, 2 the far ...; `near_close`: when the
    near month expires (open interest rolls out of it in the week before)."""
    day = moment.trading_day.toordinal()
    last = future_last(moment.seed, key, expiry_close, moment.spot, moment.at,
                       moment.trading_day)
    ticks_wide = 1 + position * 2
    bid, ask = last - TICK * ticks_wide, last + TICK * ticks_wide
    oi_lots = _open_interest_lots(rules, key, position, near_close, moment)
    day_volume = oi_lots * _DAY_TURNOVER * (0.5 + uniform_draw(moment.seed, key, "volume", day))
    volume_lots = math.floor(day_volume * moment.session_fraction)
    return FutureQuote(key, rules.root, expiry, bid, ask, last, volume_lots * rules.lot_size,
                       oi_lots * rules.lot_size, on_tick_grid(moment.spot, ROUND_FLOOR),
                       rules.lot_size, moment.at)


def carry_factor(seed: int, key: str, expiry_close: datetime, at: datetime,
                 trading_day: date) -> float:
    """The future's price over its spot at `at`: carry to expiry plus the day's basis draw."""
    years = years_to(expiry_close, at)
    noise = (uniform_draw(seed, key, "basis", trading_day.toordinal()) - 0.5) * 2 * _BASIS_NOISE
    return math.exp(RISK_FREE_RATE * years) + noise


def future_last(seed: int, key: str, expiry_close: datetime, spot: float, at: datetime,
                trading_day: date) -> Decimal:
    """The future's last trade at `at` with the spot at `spot`, on the tick grid: what the
    quote says and what the venue fills at (before slippage)."""
    return on_tick_grid(spot * carry_factor(seed, key, expiry_close, at, trading_day),
                        ROUND_FLOOR)


def _open_interest_lots(rules: ContractRules, key: str, position: int, near_close: datetime,
                        moment: PricingMoment) -> int:
    base = rules.atm_open_interest_lots * _OI_LOTS_PER_ATM_OPTION_LOTS
    draw = 0.8 + 0.4 * uniform_draw(moment.seed, key, "oi", moment.trading_day.toordinal())
    # How far into the roll week the near month is: 0 before it, 1 at its expiry.
    near_days_left = (near_close - moment.at).total_seconds() / 86_400
    rolled = 1.0 - min(max(near_days_left / _ROLL_WEEK_DAYS, 0.0), 1.0)
    if position == 0:
        share = 1.0 - 0.9 * rolled
    elif position == 1:
        share = 0.2 + 0.8 * rolled
    else:
        share = _FAR_MONTH_SHARE
    return max(round(base * share * draw), 1)


def front_month(expiries: Sequence[date], first_day: date, roll_days_before: int,
                is_trading_day: TradingDay) -> date:
    """The contract a continuous series holds on `first_day`: the nearest expiry, unless
    fewer than `roll_days_before` trading days are left before it (then the next)."""
    if not expiries:
        raise ValueError("no futures are listed")
    near = expiries[0]
    if roll_days_before and len(expiries) > 1:
        days_left = sum(1 for offset in range((near - first_day).days)
                        if is_trading_day(date.fromordinal(first_day.toordinal() + offset)))
        if days_left < roll_days_before:
            return expiries[1]
    return near
