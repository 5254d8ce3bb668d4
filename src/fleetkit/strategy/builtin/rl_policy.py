"""`rl_policy`: trade the levels a learned policy picks (see strategy.learned).

This module is what the registry imports for every bot, so it holds only the parameters:
numpy, the feature code and torch are imported when an rl_policy strategy is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from fleetkit.strategy.base import Strategy, StrategyParams, StrategySpec


class RlPolicyParams(StrategyParams):
    model: str | list[str] = Field(
        description="model directory written by training (several: one per timeframe)")
    features: dict[str, Any] = Field(
        description="the feature set the model was trained on (the `ml.features` mapping)")
    combine: Literal["mean", "agree"] = Field(
        default="mean", description="several models: mean level rounded toward hold, or "
                                    "trade only when all agree")
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    @field_validator("model")
    @classmethod
    def _some_model(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one model directory")
        return value

    @field_validator("features")
    @classmethod
    def _a_feature_set(cls, value: dict[str, Any]) -> dict[str, Any]:
        from fleetkit.features.parse import parse_feature_set  # late: plain bots skip it

        parse_feature_set(value)  # FeatureSetError (a ValueError) names the key
        return value

    @property
    def models(self) -> list[str]:
        return [self.model] if isinstance(self.model, str) else list(self.model)


def build(params: RlPolicyParams) -> Strategy:
    from fleetkit.strategy.learned import build_rl_policy  # late: numpy and the features

    return build_rl_policy(params.models, params.features, params.combine, params.device)


SPEC = StrategySpec("rl_policy", "a learned policy (PPO: MLP, LSTM or TFT) picks the level",
                    RlPolicyParams, build)
