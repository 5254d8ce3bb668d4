"""The agent as the bot's strategy: it says the level the policy chose, nothing more, so
the trader, rails, brakes and order path after it are the bot's own.

It is handed to the assembly directly (engine.assembly's `strategies`): it is not in the
strategy registry, and no config can name it.
"""

from __future__ import annotations

from typing import ClassVar

from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import StrategyContext

_SIGNALS = {level: Signal.at(level, "agent") for level in SignalLevel}


class AgentStrategy:
    """Emits `level`, which the environment sets before each bar it feeds the bot."""

    name: ClassVar[str] = "rl_agent"

    def __init__(self) -> None:
        self.level = SignalLevel.HOLD

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal:
        return _SIGNALS[self.level]
