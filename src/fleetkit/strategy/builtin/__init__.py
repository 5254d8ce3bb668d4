"""Built-in signal modules, handed to the strategy registry by `strategies()`."""

from __future__ import annotations

from fleetkit.strategy.base import StrategySpec
from fleetkit.strategy.builtin import (
    buy_and_hold,
    donchian_breakout,
    rl_policy,
    rsi_reversion,
    sma_cross,
)


def strategies() -> tuple[StrategySpec, ...]:
    return (buy_and_hold.SPEC, donchian_breakout.SPEC, rl_policy.SPEC, rsi_reversion.SPEC,
            sma_cross.SPEC)
