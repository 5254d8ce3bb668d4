"""The day-level walk of invented prices: one open and close level per UTC date since an epoch.

Model (log prices, one step per calendar day, so weekends and holidays move prices too and an
equity's Monday open carries the weekend's news):

    close[d] = mu + phi * (close[d-1] - mu) + shock[d],    mu = log(base_price)
    shock[d] = m[d] * s * z[d] + jump[d],                  z[d] standard normal

- `phi` gives a half-life of a year: a weak pull toward the base price, so levels wander like
  a real price for months yet stay plausible for decades.
- `s` is the annual volatility spread over calendar days (sqrt(365.25)), less the share the
  jumps carry, so diffusion plus jumps add up to the configured volatility.
- `m[d]` is a volatility regime (calm / normal / turbulent), a persistent Markov chain over
  days; the multipliers are scaled so that their long-run mean square is 1.
- `jump[d]` happens on about 2% of days (~7 a year), a few daily sigmas in size.
- Equities open with a gap: a quarter of the day's diffusion variance (z splits into an
  overnight and an intraday normal), and any jump, happen overnight; the rest happens
  between the open and the close. Markets that never close have no gap; their jump happens
  at some moment inside the day.

Randomness comes in blocks of days, each from its own seeded stream, and the recursion only
looks back, so computing further ahead never changes a day already computed.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import numpy as np

from fleetkit.brokers.sandbox.seeding import Stream, generator
from fleetkit.brokers.sandbox.ticks import FloatArray, IntArray

EPOCH = date(2000, 1, 1)
EPOCH_S = int(datetime.combine(EPOCH, time(), tzinfo=UTC).timestamp())
DAYS_PER_YEAR = 365.25
HALF_LIFE_DAYS = 365.0
BLOCK_DAYS = 256

# Daily transition probabilities between regimes (rows: from, columns: to). A turbulent
# spell lasts about two weeks, calm and normal spells a month or more.
REGIME_TRANSITIONS = np.array([
    [0.97, 0.03, 0.00],   # calm
    [0.02, 0.97, 0.01],   # normal
    [0.00, 0.07, 0.93],   # turbulent
])
_RAW_REGIME_MULTIPLIERS = np.array([0.6, 1.0, 2.0])
STARTING_REGIME = 1

JUMP_PROBABILITY_PER_DAY = 0.02
JUMP_SIZE_IN_DAILY_SIGMAS = 3.0
OVERNIGHT_VARIANCE_SHARE = 0.25


def _stationary_distribution(transitions: FloatArray) -> FloatArray:
    distribution: FloatArray = np.linalg.matrix_power(transitions, 4096)[0]
    return distribution


# Scaled so the long-run mean of m^2 is 1: regimes reshape volatility without changing it.
REGIME_MULTIPLIERS: FloatArray = _RAW_REGIME_MULTIPLIERS / math.sqrt(
    float(_stationary_distribution(REGIME_TRANSITIONS) @ _RAW_REGIME_MULTIPLIERS**2))
# Each row's last entry is set to exactly 1 so a draw in [0, 1) always lands on a state.
_TRANSITION_CDF = tuple((*row[:-1], 1.0)
                        for row in np.cumsum(REGIME_TRANSITIONS, axis=1).tolist())
_DIFFUSION_SHARE = math.sqrt(1 - JUMP_PROBABILITY_PER_DAY * JUMP_SIZE_IN_DAILY_SIGMAS**2)


def day_index(day: date) -> int:
    """Days since the epoch; the walk (and so every invented price) starts there."""
    index = (day - EPOCH).days
    if index < 0:
        raise ValueError(f"invented prices start on {EPOCH.isoformat()}; asked for {day}")
    return index


@dataclass(frozen=True, slots=True)
class WalkSpec:
    base_price: float
    annual_volatility: float
    overnight_gaps: bool

    @property
    def daily_sigma(self) -> float:
        return self.annual_volatility / math.sqrt(DAYS_PER_YEAR)


@dataclass(frozen=True, slots=True)
class DayLevels:
    """One day of the walk, in log price: where the day opens and closes, and how it moves."""

    open_log: float
    close_log: float
    intraday_sigma: float  # std of the log diffusion between open and close
    volatility_multiplier: float
    intraday_jump: float  # to place inside the day; 0 when the day's jump went into the gap
    jump_fraction: float  # where the intraday jump falls, as a fraction of the day, in [0, 1)


@dataclass(frozen=True, slots=True)
class _Block:
    open_log: FloatArray
    close_log: FloatArray
    intraday_sigma: FloatArray
    multiplier: FloatArray
    jump: FloatArray
    jump_fraction: FloatArray


class DayWalk:
    """The walk of one instrument, computed block by block as far ahead as anyone asks."""

    def __init__(self, spec: WalkSpec, root: tuple[int, ...]) -> None:
        self._spec = spec
        self._root = root
        self._mean_log = math.log(spec.base_price)
        self._phi = 0.5 ** (1 / HALF_LIFE_DAYS)
        self._blocks: list[_Block] = []
        self._deviation = 0.0  # close minus mean at the end of the last block: starts at base
        self._regime = STARTING_REGIME
        self._lock = threading.Lock()

    def day(self, index: int) -> DayLevels:
        block = self._block(index // BLOCK_DAYS)
        i = index % BLOCK_DAYS
        return DayLevels(
            open_log=float(block.open_log[i]),
            close_log=float(block.close_log[i]),
            intraday_sigma=float(block.intraday_sigma[i]),
            volatility_multiplier=float(block.multiplier[i]),
            intraday_jump=0.0 if self._spec.overnight_gaps else float(block.jump[i]),
            jump_fraction=float(block.jump_fraction[i]),
        )

    def closes_log(self, first: int, count: int) -> FloatArray:
        """Log closes of `count` consecutive days from day index `first`."""
        return self._series(first, count, "close_log")

    def jumps(self, first: int, count: int) -> FloatArray:
        """Each day's jump in log price (0 on most days), wherever in the day it lands."""
        return self._series(first, count, "jump")

    def _series(self, first: int, count: int, field: str) -> FloatArray:
        if first < 0 or count < 0:
            raise ValueError("day ranges start at or after the epoch and are not negative")
        last_block = max(first + count - 1, 0) // BLOCK_DAYS
        self._block(last_block)
        joined = np.concatenate([getattr(b, field) for b in self._blocks[:last_block + 1]])
        window: FloatArray = joined[first:first + count]
        return window

    def _block(self, number: int) -> _Block:
        if number < 0:
            raise ValueError("days before the epoch have no prices")
        if number >= len(self._blocks):
            with self._lock:
                while number >= len(self._blocks):
                    self._blocks.append(self._next_block())
        return self._blocks[number]

    def _next_block(self) -> _Block:
        spec = self._spec
        rng = generator(self._root, Stream.DAY_LEVELS, len(self._blocks))
        n = BLOCK_DAYS
        # Always all six draws, in this order: a block's numbers depend on nothing else.
        regime_draws = rng.random(n)
        gap_z, intraday_z = rng.standard_normal(n), rng.standard_normal(n)
        jump_draws, jump_z, jump_fraction = rng.random(n), rng.standard_normal(n), rng.random(n)

        regimes = _regime_path(self._regime, regime_draws)
        multiplier = REGIME_MULTIPLIERS[regimes]
        diffusion = spec.daily_sigma * _DIFFUSION_SHARE * multiplier
        gap_share = OVERNIGHT_VARIANCE_SHARE if spec.overnight_gaps else 0.0
        gap = diffusion * math.sqrt(gap_share) * gap_z
        intraday_sigma = diffusion * math.sqrt(1 - gap_share)
        jump = np.where(jump_draws < JUMP_PROBABILITY_PER_DAY,
                        jump_z * JUMP_SIZE_IN_DAILY_SIGMAS * spec.daily_sigma, 0.0)

        deviation = _mean_revert(self._deviation, gap + intraday_sigma * intraday_z + jump,
                                 self._phi)
        close_log = self._mean_log + deviation
        previous_close = np.concatenate(([self._mean_log + self._deviation], close_log[:-1]))
        open_log = previous_close + gap + (jump if spec.overnight_gaps else 0.0)

        self._deviation = float(deviation[-1])
        self._regime = int(regimes[-1])
        return _Block(open_log, close_log, intraday_sigma, multiplier, jump, jump_fraction)


def _regime_path(start: int, draws: FloatArray) -> IntArray:
    """The Markov chain's states, one per draw; a plain loop because each step needs the last."""
    state = start
    states = []
    for u in draws.tolist():
        state = bisect_right(_TRANSITION_CDF[state], u)
        states.append(state)
    return np.array(states, dtype=np.int64)


def _mean_revert(start: float, shocks: FloatArray, phi: float) -> FloatArray:
    """y[t] = phi * y[t-1] + shocks[t] from y[-1] = start, without a Python loop.

    y[t] = phi^(t+1) * (start + sum_{k<=t} shocks[k] / phi^(k+1)); a block is short enough
    that phi^-n stays near 1 and the sum loses no precision.
    """
    powers = phi ** np.arange(1, len(shocks) + 1, dtype=np.float64)
    result: FloatArray = powers * (start + np.cumsum(shocks / powers))
    return result
