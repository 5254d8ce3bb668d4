"""SMA crossover: long while the fast average is above the slow one, out (or short) below."""

from __future__ import annotations

from math import ldexp
from typing import ClassVar

from pydantic import Field, model_validator

from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import StrategyContext, StrategyParams, StrategySpec
from fleetkit.strategy.indicators import SCALE_BITS, SimpleMovingAverage

_LONG = Signal.at(SignalLevel.STRONG_BUY, "fast SMA above slow")
_SHORT = Signal.at(SignalLevel.STRONG_SELL, "fast SMA below slow")


class SmaCrossParams(StrategyParams):
    fast: int = Field(default=10, ge=1, description="bars in the fast average")
    slow: int = Field(default=30, ge=2, description="bars in the slow average")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class SmaCross:
    name: ClassVar[str] = "sma_cross"

    __slots__ = ("_fast", "_params", "_slow")

    def __init__(self, params: SmaCrossParams) -> None:
        self._params = params
        self._fast = SimpleMovingAverage(params.fast)
        self._slow = SimpleMovingAverage(params.slow)

    def warmup_bars(self) -> int:
        return self._params.slow

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        close = int(ldexp(bar.close, SCALE_BITS))  # scaled once for both averages
        fast = self._fast.update_scaled(close)
        slow = self._slow.update_scaled(close)
        if fast is None or slow is None or fast == slow:
            return None
        return _LONG if fast > slow else _SHORT


def build(params: SmaCrossParams) -> SmaCross:
    return SmaCross(params)


SPEC = StrategySpec("sma_cross", "SMA crossover: long while fast SMA > slow SMA",
                    SmaCrossParams, build)
