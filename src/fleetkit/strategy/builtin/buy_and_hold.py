"""Buy and hold: enter once, then hold forever. The entry flag lives in persisted state,
so a restart never buys a second time."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import StrategyContext, StrategyParams, StrategySpec

_HOLD = Signal.at(SignalLevel.HOLD)


class BuyAndHoldParams(StrategyParams):
    level: SignalLevel = Field(default=SignalLevel.STRONG_BUY,
                               description="how much of the position size to buy: 1 a third, "
                                           "2 two thirds, 3 all of it")

    @field_validator("level")
    @classmethod
    def _a_buy(cls, level: SignalLevel) -> SignalLevel:
        if level <= 0:
            raise ValueError("level must be 1, 2 or 3 (a buy)")
        return level


class BuyAndHold:
    name: ClassVar[str] = "buy_and_hold"

    __slots__ = ("_entry",)

    def __init__(self, params: BuyAndHoldParams) -> None:
        self._entry = Signal.at(params.level, "initial entry")

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        if ctx.warming_up or ctx.state.get("entered"):
            return _HOLD
        ctx.state["entered"] = True
        ctx.state["entered_at"] = bar.ts.isoformat()
        return self._entry


def build(params: BuyAndHoldParams) -> BuyAndHold:
    return BuyAndHold(params)


SPEC = StrategySpec("buy_and_hold", "Buy once and hold", BuyAndHoldParams, build)
