"""`rl_policy`: trade the levels learned policies pick (see strategy.learned).

This module is what the registry imports for every bot, so it holds only the parameters:
numpy, the feature code and torch are imported when an rl_policy strategy is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from fleetkit.strategy.base import Strategy, StrategyParams, StrategySpec


class RlPolicyParams(StrategyParams):
    model: str | list[str] = Field(
        description="a model directory written by training; a list of them; or a directory "
                    "of one model per timeframe (15m/, 1h/, 1d/ ...: what `fleet ml train` "
                    "writes)")
    features: dict[str, Any] | None = Field(
        default=None,
        description="the feature set the models were trained on (the `ml.features` "
                    "mapping): only for models whose manifest does not declare it; if "
                    "given it must be the manifest's")
    combine: Literal["mean", "agree", "finest_confirmed", "finest_unopposed"] = Field(
        default="mean", description="several models: mean level rounded toward hold; trade "
                                    "only when all agree; the finest model's level when "
                                    "every slower one is on its side; or the finest "
                                    "model's level unless a slower one is on the other side")
    device: Literal["cpu", "cuda", "auto"] = "cpu"

    @field_validator("model")
    @classmethod
    def _some_model(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one model directory")
        return value

    @field_validator("features")
    @classmethod
    def _a_feature_set(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from fleetkit.features.parse import parse_feature_set  # late: plain bots skip it

        parse_feature_set(value)  # FeatureSetError (a ValueError) names the key
        return value

    @property
    def models(self) -> list[str]:
        return [self.model] if isinstance(self.model, str) else list(self.model)


def build(params: RlPolicyParams) -> Strategy:
    from fleetkit.strategy.learned import build_rl_policy  # late: numpy and the features

    return build_rl_policy(params.models, params.features, params.combine, params.device)


SPEC = StrategySpec("rl_policy", "learned policies (PPO: MLP, LSTM or TFT), one per "
                                 "timeframe, pick the level", RlPolicyParams, build)
