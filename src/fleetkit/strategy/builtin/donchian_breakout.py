"""Donchian breakout: enter on a close above the N-bar high, exit below the M-bar low."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import StrategyContext, StrategyParams, StrategySpec
from fleetkit.strategy.indicators import RollingExtremes


class DonchianParams(StrategyParams):
    entry_period: int = Field(default=20, ge=2, description="breakout above this many bars' high")
    exit_period: int = Field(default=10, ge=2, description="exit below this many bars' low")


class DonchianBreakout:
    name: ClassVar[str] = "donchian_breakout"

    __slots__ = ("_entry", "_exit", "_index", "_params")

    def __init__(self, params: DonchianParams) -> None:
        self._params = params
        self._entry = RollingExtremes(params.entry_period)
        self._exit = RollingExtremes(params.exit_period)
        self._index = 0

    def warmup_bars(self) -> int:
        return max(self._params.entry_period, self._params.exit_period) + 1

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        index = self._index
        entry = self._entry.channel(index)
        exit_ = self._exit.channel(index)
        self._entry.push(index, bar.high, bar.low)
        self._exit.push(index, bar.high, bar.low)
        self._index = index + 1
        if entry is None or exit_ is None:
            return None
        if bar.close > entry[0]:
            return Signal.at(SignalLevel.STRONG_BUY, f"close {bar.close:g} broke {entry[0]:g}")
        if bar.close < exit_[1]:
            return Signal.at(SignalLevel.STRONG_SELL,
                             f"close {bar.close:g} fell below {exit_[1]:g}")
        return None


def build(params: DonchianParams) -> DonchianBreakout:
    return DonchianBreakout(params)


SPEC = StrategySpec("donchian_breakout", "Donchian channel breakout (trend following)",
                    DonchianParams, build)
