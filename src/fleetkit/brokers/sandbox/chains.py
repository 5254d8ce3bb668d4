"""Invented option quotes: Black-Scholes on the invented spot, with a smile, a term structure,
spreads, open interest and volume that a trader would find plausible.

Pure: a quote is a function of (seed, contract, spot, time, the underlying's volatility
state), so every process and every restart prices the same chain the same way.

- Volatility. The ATM level of a long-dated expiry sits near the underlying's long-run
  `atm_volatility`; a short-dated one follows its recent realised volatility, so a
  turbulent regime inverts the term structure and a calm one steepens it. Away from the
  money volatility rises on both wings, more on the puts' (the index skew), and the put
  wing steepens when the market is turbulent.
- Spreads. The half-spread is a share of the mid that grows away from the money and toward
  expiry, never under one tick; bid and ask sit on the 0.05 grid, the bid at least a tick.
- Open interest and volume. OI peaks at the money (and on round strikes), with a per-day
  draw; the day's volume is a multiple of it, spread over the session, so volume only grows
  within a day.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from fleetkit.core.option_chains import ChainQuote
from fleetkit.core.options import OptionKind, black_scholes_price, implied_volatility

from .contracts import ContractRules, OptionContract

TICK = Decimal("0.05")
RISK_FREE_RATE = 0.065  # India's short rate, roughly; carries the forward
SECONDS_PER_YEAR = 365.0 * 86400.0
# Priced as if at least this long remains: at the close an option is worth its intrinsic
# value, and the smile's moneyness would divide by zero.
MIN_YEARS = 60.0 / SECONDS_PER_YEAR

_TERM_DECAY_DAYS = 20.0  # how fast an expiry forgets the realised volatility
_PUT_WING, _CALL_WING = 0.045, 0.02  # volatility added per squared sd of moneyness
_MAX_MONEYNESS_SD = 4.0
_BASE_HALF_SPREAD = 0.004  # of the mid, at the money, far from expiry
_ROUND_STRIKE_EVERY = 5  # every fifth strike is "round": more OI sits there
_DAY_TURNOVER = 1.5
_INTRINSIC_SPREAD_WEIGHT = 0.05
_OI_HORIZON_YEARS = 30 / 365  # a day's volume as a multiple of the open interest


@dataclass(frozen=True, slots=True)
class VolatilityState:
    """The underlying's volatility as the chain sees it: long-run ATM implied level and the
    annualised realised volatility of the last weeks."""

    long_run: float
    realised: float

    @property
    def stress(self) -> float:
        """Realised over long-run, bounded: above 1 in a turbulent regime, below in a calm."""
        return min(max(self.realised / self.long_run, 0.5), 3.0)

    def atm(self, years: float) -> float:
        short = self.long_run * self.stress
        weight = math.exp(-years * 365.0 / _TERM_DECAY_DAYS)
        return self.long_run + (short - self.long_run) * weight


@dataclass(frozen=True, slots=True)
class PricingMoment:
    """Everything but the contract that a quote depends on."""

    seed: int
    at: datetime
    trading_day: date
    spot: float
    volatility: VolatilityState
    session_fraction: float  # of today's session gone, 0 before the open, 1 after the close


def smile_volatility(state: VolatilityState, spot: float, strike: float, years: float) -> float:
    sd = min(max(moneyness_sd(state, spot, strike, years), -_MAX_MONEYNESS_SD),
             _MAX_MONEYNESS_SD)
    wing = _PUT_WING * math.sqrt(state.stress) if sd < 0 else _CALL_WING
    return state.atm(years) * (1.0 + wing * sd * sd)


def moneyness_sd(state: VolatilityState, spot: float, strike: float, years: float) -> float:
    """How many standard deviations of the move to expiry the strike is from the forward."""
    forward = spot * math.exp(RISK_FREE_RATE * years)
    return math.log(strike / forward) / (state.atm(years) * math.sqrt(years))


def years_to(expiry_close: datetime, at: datetime) -> float:
    return max((expiry_close - at).total_seconds() / SECONDS_PER_YEAR, MIN_YEARS)


def quote_option(rules: ContractRules, contract: OptionContract, expiry_close: datetime,
                 moment: PricingMoment) -> ChainQuote:
    years = years_to(expiry_close, moment.at)
    strike = float(contract.strike)
    volatility = smile_volatility(moment.volatility, moment.spot, strike, years)
    fair = black_scholes_price(contract.kind, moment.spot, strike, years, volatility,
                               RISK_FREE_RATE)
    mid = max(fair, float(TICK))
    sd = min(abs(moneyness_sd(moment.volatility, moment.spot, strike, years)),
             _MAX_MONEYNESS_SD)
    # Dealers quote the time value wide and the intrinsic value (hedged with the future)
    # tight: a deep in-the-money option is not quoted hundreds of points wide.
    intrinsic = max(moment.spot - strike if contract.kind is OptionKind.CALL
                    else strike - moment.spot, 0.0)
    quoted = max(mid - intrinsic, 0.0) + _INTRINSIC_SPREAD_WEIGHT * intrinsic
    half = max(quoted * half_spread_share(sd, years), float(TICK) / 2)
    bid = max(on_tick_grid(mid - half, ROUND_FLOOR), TICK)
    ask = max(on_tick_grid(mid + half, ROUND_CEILING), bid + TICK)
    steps = int((ask - bid) / TICK)
    minute = int(moment.at.timestamp()) // 60
    last = bid + TICK * round(steps * uniform_draw(moment.seed, contract.key, "last", minute))
    oi_lots = _open_interest_lots(rules, contract, moment)
    day_volume_lots = oi_lots * _DAY_TURNOVER * (
        0.5 + uniform_draw(moment.seed, contract.key, "volume", moment.trading_day.toordinal()))
    volume_lots = math.floor(day_volume_lots * moment.session_fraction)
    mid_price = float(bid + ask) / 2
    iv = implied_volatility(contract.kind, mid_price, moment.spot, strike, years,
                            RISK_FREE_RATE)
    return ChainQuote(contract.key, contract.underlying, contract.expiry, contract.strike,
                       contract.kind, bid, ask, last, volume_lots * rules.lot_size,
                       oi_lots * rules.lot_size, on_tick_grid(moment.spot, ROUND_FLOOR), iv,
                       rules.lot_size, moment.at)


def half_spread_share(sd: float, years: float) -> float:
    """Half the spread as a share of the mid: wider away from the money, wider near expiry
    (dealers hedge gamma that changes by the minute)."""
    days = years * 365.0
    return _BASE_HALF_SPREAD * (1.0 + 0.5 * sd) * (1.0 + 3.0 / (1.0 + days))


def _open_interest_lots(rules: ContractRules, contract: OptionContract,
                        moment: PricingMoment) -> int:
    """Open interest built over the contract's life: it peaks within a month's typical move
    of the spot, whatever the time left (an expiring weekly keeps its OI to the close)."""
    sd = math.log(float(contract.strike) / moment.spot) / (
        rules.atm_volatility * math.sqrt(_OI_HORIZON_YEARS))
    otm = (contract.kind is OptionKind.CALL) == (float(contract.strike) > moment.spot)
    strike_index = int(contract.strike / rules.strike_step)
    round_bonus = 1.5 if strike_index % _ROUND_STRIKE_EVERY == 0 else 1.0
    monthly_bonus = 1.3 if contract.monthly else 1.0
    draw = 0.7 + 0.6 * uniform_draw(moment.seed, contract.key, "oi", moment.trading_day.toordinal())
    lots = (rules.atm_open_interest_lots * math.exp(-sd * sd) * (1.3 if otm else 0.8)
            * round_bonus * monthly_bonus * draw)
    return max(round(lots), 1)


def on_tick_grid(price: float, rounding: str) -> Decimal:
    return (Decimal(repr(price)) / TICK).to_integral_value(rounding=rounding) * TICK


def uniform_draw(seed: int, key: str, use: str, index: int) -> float:
    """A uniform draw in [0, 1) fixed by (seed, instrument, use, index): blake2b, not
    hash(), which Python salts per process."""
    digest = hashlib.blake2b(f"{seed}|{key}|{use}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64
