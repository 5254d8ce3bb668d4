"""Gymnasium environments of one bot trading one instrument over a training window.

    observation  the last `window` normalised feature rows (flattened, oldest first), then
                 the position (as a fraction of the full position size, at the close) and
                 its unrealised P&L (as a fraction of the position size)
    action       Discrete(len(levels)): the signal level the bot's strategy says at this
                 bar's close (strong sell .. strong buy); its trader maps it to a target
    execution    the order meets the NEXT bar's open (never the close it was decided on),
                 with the venue's fees and slippage and the instrument's lots
    reward       ml.reward: step P&L + differential Sharpe - drawdown increase
    episode      a start sampled in the window (the env's np_random); terminated at the
                 window's end or when the bot is halted (kill switch, breaker, refused
                 fill); truncated after `episode_bars` steps

`TradingEnv` trades through the assembled bot (ml.engine_sim); `FastTradingEnv` through
its float twin (ml.fast_sim), which a test holds to the same positions and rewards.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.engine.assembly import BotRecipe
from fleetkit.features.batch import FeatureMatrix
from fleetkit.features.normalise import Normalisation
from fleetkit.features.observation import state_fractions
from fleetkit.ml.engine_sim import EngineSim
from fleetkit.ml.fast_sim import FastSim
from fleetkit.ml.prices import NextOpenPrices
from fleetkit.ml.reward import RewardParts, RewardTracker
from fleetkit.ml.sim import FLAT, Simulator, StepOutcome
from fleetkit.ml.spec import EnvConfig
from fleetkit.ml.window import OBSERVATION_CLIP, Float32Array, TrainingWindow

# The environment's venue unless one is given: the backtest's costs, whole fills.
DEFAULT_VENUE = VenueConfig(partial_fill_probability=0.0)
_NO_PARTS = RewardParts(0.0, 0.0, 0.0, 0.0)


class _TradingEnvBase(gymnasium.Env[Float32Array, np.int64]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's own)

    def __init__(self, recipe: BotRecipe, tape: BarTape, features: FeatureMatrix, *,
                 config: EnvConfig | None = None, venue: VenueConfig = DEFAULT_VENUE,
                 normalisation: Normalisation | None = None) -> None:
        self.config = config or EnvConfig()
        self.window = TrainingWindow.of(tape, features, self.config.window, normalisation)
        self.prices = NextOpenPrices(tape)
        self.sim = self._simulator(recipe, venue, tape, self.prices)
        self.action_space = spaces.Discrete(len(self.config.levels))
        self.observation_space = spaces.Box(-OBSERVATION_CLIP, OBSERVATION_CLIP,
                                            (self.window.observation_size,), np.float32)
        self._position_usd = float(recipe.sizing.position_size_usd)
        self._usd = float(recipe.usd_per_unit)
        self._size = float(recipe.sizing.position_size_usd / recipe.usd_per_unit)
        self._close = [float(p) for p in self.prices.close]
        self._reward = RewardTracker(self.config.reward)
        self._row = self.window.first_row
        self._steps = 0
        self._outcome = FLAT

    def _simulator(self, recipe: BotRecipe, venue: VenueConfig, tape: BarTape,
                   prices: NextOpenPrices) -> Simulator:
        raise NotImplementedError

    @property
    def row(self) -> int:
        """The bar whose close the next decision is made at."""
        return self._row

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[Float32Array, dict[str, Any]]:
        """`options={"start_row": r}` starts at bar r (evaluation, tests) instead of a
        start drawn so that a whole episode fits in the window where it can."""
        super().reset(seed=seed)
        first, last = self.window.first_row, self.window.last_row
        if options and "start_row" in options:
            start = int(options["start_row"])
            if not first <= start <= last:
                raise ValueError(f"start_row must be in [{first}, {last}], got {start}")
        else:
            length = self.config.episode_bars or 1
            latest = max(first, last - length + 1)
            start = int(self.np_random.integers(first, latest + 1))
        self._row, self._steps, self._outcome = start, 0, FLAT
        self.sim.start(start)
        self._reward.reset(0.0)
        return self._observation(), self._info(_NO_PARTS)

    def step(self, action: np.int64 | int) -> tuple[Float32Array, float, bool, bool,
                                                    dict[str, Any]]:
        level = self.config.levels[int(action)]
        self._outcome = self.sim.act(self._row, level)
        self._row += 1
        self._steps += 1
        parts = self._reward.step(self._outcome.net / self._size)
        terminated = bool(self._outcome.halt) or self._row > self.window.last_row
        limit = self.config.episode_bars
        truncated = not terminated and limit is not None and self._steps >= limit
        return self._observation(), parts.total, terminated, truncated, self._info(parts)

    def _observation(self) -> Float32Array:
        held = self._outcome
        close = self._close[self._row]
        position, unrealised = state_fractions(
            held.quantity, held.average_price, close, position_usd=self._position_usd,
            usd_per_unit=self._usd, full_units=self._size)
        return self.window.observation(self._row, position, unrealised)

    def _info(self, parts: RewardParts) -> dict[str, Any]:
        held: StepOutcome = self._outcome
        return {"row": self._row, "equity": held.net / self._size, "net_pnl": held.net,
                "position": held.quantity, "fills": held.fills, "fill_price": held.fill_price,
                "fees": held.fees, "slippage": held.slippage,
                "cost": held.fees + held.slippage, "halt": held.halt,
                "reward_pnl": parts.pnl, "reward_sharpe": parts.sharpe,
                "reward_drawdown": parts.drawdown_increase}


class TradingEnv(_TradingEnvBase):
    """The engine path: every decision goes through the bot the kernel assembles."""

    sim: EngineSim

    def _simulator(self, recipe: BotRecipe, venue: VenueConfig, tape: BarTape,
                   prices: NextOpenPrices) -> Simulator:
        return EngineSim(recipe, venue, tape, prices)


class FastTradingEnv(_TradingEnvBase):
    """The fast path: the same semantics in floats (ml.fast_sim), for training."""

    sim: FastSim

    def _simulator(self, recipe: BotRecipe, venue: VenueConfig, tape: BarTape,
                   prices: NextOpenPrices) -> Simulator:
        return FastSim(recipe, venue, tape, prices)

