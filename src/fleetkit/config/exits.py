"""Protective exits in the config (`defaults.exits`, or a bot's own `exits`)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from fleetkit.config.strict import Strict

_KINDS = ("stop_loss", "take_profit", "trailing_stop")


class ExitSettings(Strict):
    """Stop-loss, take-profit and trailing stop, each in percent or in ATR multiples (not
    both); judged at every bar close, whatever the strategy says (docs/backtest.md)."""

    stop_loss_pct: Decimal | None = Field(default=None, gt=0, lt=100, description="close "
                                          "when the price is this % worse than the average")
    take_profit_pct: Decimal | None = Field(default=None, gt=0, description="close when the "
                                            "price is this % better than the average")
    trailing_stop_pct: Decimal | None = Field(default=None, gt=0, lt=100, description="close "
                                              "when the price falls back this % from the best "
                                              "close since entry")
    stop_loss_atr: Decimal | None = Field(default=None, gt=0)
    take_profit_atr: Decimal | None = Field(default=None, gt=0)
    trailing_stop_atr: Decimal | None = Field(default=None, gt=0)
    atr_period: int = Field(default=14, ge=1, le=1000, description="bars in the ATR")

    @model_validator(mode="after")
    def _one_unit_each(self) -> ExitSettings:
        for kind in _KINDS:
            if getattr(self, f"{kind}_pct") is not None and getattr(self, f"{kind}_atr") \
                    is not None:
                raise ValueError(f"give {kind}_pct or {kind}_atr, not both")
        return self
