"""The `rl_policy` strategy: each closed bar goes through the live features, is refused if
any value is NaN or infinite, normalised with the model's saved normalisation and built
into the observation with the environment's own builder (features.observation); the
policy picks an action deterministically and the action is its signal level.

The model is loaded (every sha256 checked first) by a loader that lives with torch in
`fleetkit.ml`, which sits above this layer: the registered factory reaches it by reference
(`LOADER`, imported as a config's `plugins:` are, only when an rl_policy bot is built),
and tests inject their own. A model that is refused does not stop the process: the
strategy is built refused and raises its one line on its first bar, which the runner
turns into a halt (source strategy_error) and a critical `strategy.error` event: the alert.

Several models (one per timeframe) vote through `combine`:
    mean   the mean of their levels, rounded toward hold (-1.5 -> -1, 2.7 -> 2)
    agree  their common level when all say the same, else hold
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from fleetkit.core.errors import ConfigError, StrategyError
from fleetkit.core.instruments import market
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.core.signals import ACTION_LEVELS, Signal, SignalLevel
from fleetkit.features.guard import require_finite
from fleetkit.features.live import LiveFeatures
from fleetkit.features.normalise import Normalisation
from fleetkit.features.observation import (
    Float32Array,
    build_observation,
    normalised,
    state_fractions,
)
from fleetkit.features.parse import parse_feature_set
from fleetkit.features.spec import FeatureSet
from fleetkit.registry import import_provider
from fleetkit.strategy.base import StrategyContext

# Where the torch-facing loader lives (see the module docstring).
LOADER = "fleetkit.ml.policy_loader:load_policy"
LEVELS = ACTION_LEVELS  # action i is LEVELS[i], as in training (core.signals)
COMBINE_RULES = ("mean", "agree")
_LOG = logging.getLogger("fleetkit.strategy.rl_policy")
# A 24/7 market's sessions are UTC days (as its training bars were cut); this many ahead.
_SESSION_DAYS = 366 * 30


class LoadedPolicy(Protocol):
    """A verified model: its window of rows, its normalisation, and one action a call."""

    window: int
    normalisation: Normalisation
    actions: int

    def act(self, observation: Float32Array) -> int: ...


class PolicyLoader(Protocol):
    def __call__(self, directory: Path, feature_set: FeatureSet, *,
                 device: str) -> LoadedPolicy: ...


def combine_levels(levels: Sequence[SignalLevel], rule: str) -> SignalLevel:
    """One level from several models' (see the module docstring)."""
    if rule == "agree":
        return levels[0] if all(lv == levels[0] for lv in levels) else SignalLevel.HOLD
    if rule == "mean":
        return SignalLevel(math.trunc(sum(int(lv) for lv in levels) / len(levels)))
    raise ValueError(f"unknown combine rule {rule!r}; choose one of {', '.join(COMBINE_RULES)}")


def build_rl_policy(models: Sequence[str], features: dict[str, Any], combine: str,
                    device: str = "cpu", *, loader: PolicyLoader | None = None
                    ) -> RlPolicyStrategy:
    """Loads every model (verified first); a refusal builds a strategy that halts its bot
    with the reason at its first bar instead of trading."""
    feature_set = parse_feature_set(features)
    try:
        load: PolicyLoader = loader or import_provider(LOADER)  # type: ignore[assignment]
        policies = [load(Path(m), feature_set, device=device) for m in models]
        for m, policy in zip(models, policies, strict=True):
            if policy.actions != len(LEVELS):
                raise ConfigError(f"{m} has {policy.actions} actions, not the {len(LEVELS)} "
                                  "signal levels; train it again")
    except Exception as exc:  # the loader's refusal, or the `ml` extra missing
        return RlPolicyStrategy(feature_set, [], combine, refused=_one_line(exc))
    return RlPolicyStrategy(feature_set, policies, combine)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, ImportError):
        text += " (install the ml extra: pip install -e '.[ml]' -c constraints/torch-cpu.txt)"
    return f"rl_policy refused its model: {text}"


class RlPolicyStrategy:
    name: ClassVar[str] = "rl_policy"
    # Its observation holds the unrealised P&L: the bot refreshes the average price on
    # every fill for it (engine.bot), as it does for the exits.
    reads_average_price: ClassVar[bool] = True

    def __init__(self, feature_set: FeatureSet, policies: Sequence[LoadedPolicy],
                 combine: str, *, refused: str | None = None) -> None:
        if combine not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {combine!r}")
        self.feature_set = feature_set
        self.policies = list(policies)
        self.combine = combine
        self.refused = refused
        self._window = max((p.window for p in self.policies), default=1)
        self._rows: list[deque[Float32Array]] = [deque(maxlen=p.window) for p in self.policies]
        self._live: LiveFeatures | None = None
        self._said_warming = False

    def warmup_bars(self) -> int:
        if self.refused is not None:
            return 0
        return self.feature_set.warmup_bars() + self._window

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        if self.refused is not None:
            raise StrategyError(self.refused)
        live = self._live or self._start(bar, ctx)
        row = live.update(bar)
        if not live.ready:
            self._warming(ctx, "features warming up")
            return None
        require_finite(row, live.columns, int(bar.ts.timestamp()))
        for policy, rows in zip(self.policies, self._rows, strict=True):
            rows.append(normalised(policy.normalisation, row))
        if len(self._rows[0]) < self._rows[0].maxlen:  # type: ignore[operator]
            self._warming(ctx, "filling the observation window")
            return None
        levels = [LEVELS[p.act(self.observation(ctx, bar.close, i))]
                  for i, p in enumerate(self.policies)]
        level = combine_levels(levels, self.combine)
        return Signal.at(level, "rl_policy " + ",".join(str(int(lv)) for lv in levels))

    def observation(self, ctx: StrategyContext, close: float, index: int = 0) -> Float32Array:
        """Model `index`'s observation now: its window of rows, the position and its
        unrealised P&L (the environment's builder, over the bot's sizing)."""
        if ctx.position_size_usd is None or ctx.usd_per_unit is None:
            raise StrategyError("rl_policy needs the bot's sizing in its context")
        position, unrealised = state_fractions(
            float(ctx.position), float(ctx.average_price), close,
            position_usd=float(ctx.position_size_usd), usd_per_unit=float(ctx.usd_per_unit),
            full_units=float(ctx.position_size_usd / ctx.usd_per_unit))
        return build_observation(np.stack(self._rows[index]), position, unrealised)

    def _start(self, bar: Bar, ctx: StrategyContext) -> LiveFeatures:
        venue = market(ctx.instrument.market)
        if not venue.always_open:
            raise StrategyError(f"rl_policy trades 24/7 markets only for now; "
                                f"{ctx.instrument.market} has sessions it cannot see yet")
        day = datetime(bar.ts.year, bar.ts.month, bar.ts.day, tzinfo=UTC)
        sessions = [Session(day + timedelta(days=d), day + timedelta(days=d + 1))
                    for d in range(_SESSION_DAYS)]
        self._live = LiveFeatures(self.feature_set, sessions)
        return self._live

    def _warming(self, ctx: StrategyContext, why: str) -> None:
        if not self._said_warming and not ctx.warming_up:
            self._said_warming = True  # once: a warm-up is news, each held bar is not
            _LOG.info("rl_policy holding on %s: %s", ctx.instrument.key, why)


__all__ = ["LoadedPolicy", "PolicyLoader", "RlPolicyStrategy",
           "build_rl_policy", "combine_levels"]
