"""RSI mean reversion: buy when oversold, get out when overbought, hold in between."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import StrategyContext, StrategyParams, StrategySpec
from fleetkit.strategy.indicators import RelativeStrengthIndex


class RsiReversionParams(StrategyParams):
    period: int = Field(default=14, ge=2, description="RSI lookback in bars")
    oversold: float = Field(default=30.0, gt=0, lt=100, description="buy below this RSI")
    overbought: float = Field(default=70.0, gt=0, lt=100, description="exit above this RSI")

    @model_validator(mode="after")
    def _ordered(self) -> RsiReversionParams:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        return self


class RsiReversion:
    name: ClassVar[str] = "rsi_reversion"

    __slots__ = ("_params", "_rsi")

    def __init__(self, params: RsiReversionParams) -> None:
        self._params = params
        self._rsi = RelativeStrengthIndex(params.period)

    def warmup_bars(self) -> int:
        return self._params.period * 5  # Wilder smoothing needs a few periods to settle

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        rsi = self._rsi.update(bar.close)
        if rsi is None:
            return None
        if rsi < self._params.oversold:
            return Signal.at(SignalLevel.STRONG_BUY, f"RSI {rsi:.1f} oversold")
        if rsi > self._params.overbought:
            return Signal.at(SignalLevel.STRONG_SELL, f"RSI {rsi:.1f} overbought")
        return None


def build(params: RsiReversionParams) -> RsiReversion:
    return RsiReversion(params)


SPEC = StrategySpec("rsi_reversion", "RSI mean reversion: buy oversold, exit overbought",
                    RsiReversionParams, build)
