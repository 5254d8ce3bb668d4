"""A learning bot's `ml:` section: what it learns from and how `fleet ml train` trains it.

    ml:
      signal: "NSE:NIFTY 50"          # whose bars the features read (default: the bot's
                                      # first instrument)
      timeframes: [15m, 1h, 1d]       # one model per timeframe (default: [bar_interval])
      features: {timeframes: {15m: default, 1h: default, 1d: [rsi, atr]}}
      policy: mlp                     # mlp | lstm | tft
      steps: 20000
      models_dir: models/rl-nifty     # under the fleet home; <models_dir>/<timeframe>/
      train_if_missing: true          # rl_policy: train the missing models at start

The feature set is checked at load time with `features.parse_feature_set`, imported only
when a bot has this section: it is plain data (no numpy, no TA-Lib), so a bot that does not
learn never imports it and one that does pays nothing heavy either. The model for timeframe
TF reads the set restricted to the timeframes from TF up, with TF as its base.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from fleetkit.config.strict import Strict
from fleetkit.core.instruments import MARKETS, instrument_key

if TYPE_CHECKING:
    from fleetkit.config.models import BotSettings
    from fleetkit.features.spec import FeatureSet

# ml.policies.POLICIES, spelled here so that loading a config never imports torch (a test
# holds the two equal).
POLICY_NAMES = ("mlp", "lstm", "tft")
PolicyName = Literal["mlp", "lstm", "tft"]
DeviceName = Literal["cpu", "cuda", "auto"]
# The timeframes a feature set can hold (core.bars.TIMEFRAMES).
FEATURE_TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")
MODELS_FOLDER = "models"
RL_POLICY = "rl_policy"
# `params.model: registry`: the bot trades its active versions in the model registry
# (strategy.learned.REGISTRY, spelled here: config never imports the strategy's numpy).
MODELS_FROM_REGISTRY = "registry"


class RewardSettings(Strict):
    """ml.spec.RewardWeights, field for field."""

    sharpe: float = Field(default=0.001, ge=0, description="weight of the differential "
                          "Sharpe ratio")
    drawdown: float = Field(default=0.5, ge=0, description="weight of a step's increase in "
                            "drawdown")
    sharpe_eta: float = Field(default=0.01, gt=0, lt=1, description="rate of the Sharpe "
                              "term's moving averages")


class MLSettings(Strict):
    """How a learning bot is trained (`fleet ml train`); docs/ml.md "Configuring a learning
    bot"."""

    signal: str | None = Field(default=None, description='instrument whose bars the '
                               'features read, "MARKET:SYMBOL"; default: the bot\'s first')
    timeframes: list[str] | None = Field(
        default=None, min_length=1, description="one model per timeframe; default: the "
        "bot's bar_interval")
    features: dict[str, Any] | None = Field(
        default=None, description="the feature set (docs/ml.md); default: every indicator "
        "on each timeframe and every calendar feature")
    policy: PolicyName = "mlp"
    steps: int = Field(default=20_000, ge=1, description="environment steps per model")
    seed: int = 0
    window: int = Field(default=32, ge=1, description="feature rows in an observation")
    episode_bars: int = Field(default=512, ge=1, description="steps before an episode is "
                              "truncated")
    n_envs: int = Field(default=4, ge=1, le=256, description="environments stepped together")
    history_bars: int = Field(default=4000, ge=2, description="bars of the finest timeframe "
                              "to learn from, after the features' warm-up")
    holdout_fraction: float = Field(default=0.2, ge=0, lt=1, description="the last part "
                                    "of the history, left out of training for evaluation")
    reward: RewardSettings = Field(default_factory=RewardSettings)
    levels: list[int] | None = Field(
        default=None, min_length=2, description="the signal level (-3..3) of each action; "
        "default: all seven")
    device: DeviceName = "cpu"
    models_dir: str | None = Field(default=None, description="default: models/<bot name> "
                                   "under the fleet home; a relative path is from there")
    tensorboard: bool = Field(default=False, description="log training to "
                              "<models_dir>/tensorboard/ (needs the tensorboard package)")
    train_if_missing: bool = Field(
        default=False, description="an rl_policy bot trains each model it lacks "
        "(<models_dir>/<timeframe>/ without a manifest.json) when it starts, before it "
        "trades: `fleet ml train` in a subprocess (docs/ml.md)")
    train_timeout_s: float = Field(default=600.0, gt=0, description="how long that "
                                   "training may take before it is stopped")

    @field_validator("signal")
    @classmethod
    def _instrument_key(cls, value: str | None) -> str | None:
        if value is None:
            return value
        market, sep, symbol = value.partition(":")
        if not sep or not symbol or market not in MARKETS:
            raise ValueError(f'{value!r} is not MARKET:SYMBOL; write e.g. "NSE:NIFTY 50" '
                             f"(markets: {', '.join(MARKETS)})")
        return value

    @field_validator("timeframes")
    @classmethod
    def _known_timeframes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        for timeframe in value:
            if timeframe not in FEATURE_TIMEFRAMES:
                raise ValueError(f"{timeframe!r} is not a feature timeframe; use one of "
                                 f"{', '.join(FEATURE_TIMEFRAMES)}")
        if len(set(value)) != len(value):
            raise ValueError("timeframes: a timeframe is listed twice")
        return value

    @field_validator("levels")
    @classmethod
    def _signal_levels(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        if any(isinstance(v, bool) or not -3 <= v <= 3 for v in value):
            raise ValueError("levels are signal levels from -3 (strong sell) to 3 (strong buy)")
        if len(set(value)) != len(value):
            raise ValueError("levels: each level once")
        return value

    @model_validator(mode="after")
    def _feature_set(self) -> MLSettings:
        if self.features is not None:
            # Reported at `bots[i].ml`: the keys are named from there.
            feature_set = parse_features(self.features, where="features")
            if self.timeframes is not None:
                check_timeframes(self.timeframes, feature_set, where="")
        return self


def parse_features(mapping: Mapping[str, Any], *, where: str = "ml.features") -> FeatureSet:
    """The declared set; its errors name the key from `where` (a FeatureSetError is a
    ValueError: pydantic reports it at the bot)."""
    from fleetkit.features.parse import parse_feature_set  # late: only learning bots

    return parse_feature_set(mapping, where=where)


def check_timeframes(timeframes: list[str], feature_set: FeatureSet, *,
                     where: str = "ml.") -> None:
    """Each model's timeframe is the base of its features: the set must declare it."""
    declared = [t.timeframe for t in feature_set.timeframes]
    for timeframe in timeframes:
        if timeframe not in declared:
            raise ValueError(f"{where}timeframes: {timeframe} has no features; declare it "
                             f"under {where}features.timeframes (declared: "
                             f"{', '.join(declared)}) or drop it")


def ml_timeframes(bot: BotSettings, default_interval: str) -> list[str]:
    """The bot's model timeframes, finest first (default: its bar interval)."""
    if bot.ml is None:
        raise ValueError(f"bot {bot.name} has no ml section")
    chosen = bot.ml.timeframes or [bot.bar_interval or default_interval]
    return sorted(chosen, key=FEATURE_TIMEFRAMES.index)


def ml_feature_set(bot: BotSettings, default_interval: str) -> FeatureSet:
    """The bot's declared feature set, or the default one on its timeframes."""
    if bot.ml is None:
        raise ValueError(f"bot {bot.name} has no ml section")
    if bot.ml.features is not None:
        return parse_features(bot.ml.features)
    from fleetkit.features.spec import default_feature_set

    return default_feature_set(ml_timeframes(bot, default_interval))


def ml_signal(bot: BotSettings) -> str:
    """The instrument whose bars the features read: ml.signal, else the bot's signal, else
    its (first) traded instrument."""
    if bot.ml is not None and bot.ml.signal is not None:
        return bot.ml.signal
    if bot.signal is not None:
        return bot.signal
    return instrument_key(bot.market, bot.symbols[0])


def check_bot_timeframes(bot: BotSettings, default_interval: str) -> None:
    """Refuse a bar interval that is no feature timeframe as the default, and a model
    timeframe the declared features lack (the whole config is needed for the default).
    An rl_policy bot following the registry (`params.model: registry`) needs an `ml:`
    section: its timeframes are the versions it follows, models_dir where they land."""
    if bot.ml is None:
        if bot.strategy == RL_POLICY and bot.params.get("model") == MODELS_FROM_REGISTRY:
            raise ValueError(f"bot {bot.name}: params.model registry needs an ml: section "
                             "(its timeframes are the model versions the bot follows); add "
                             "one, e.g. ml: {timeframes: [1h]}")
        return
    if bot.ml.timeframes is None:
        interval = bot.bar_interval or default_interval
        if interval not in FEATURE_TIMEFRAMES:
            raise ValueError(f"bot {bot.name}: ml.timeframes defaults to the bar interval "
                             f"{interval}, which is no feature timeframe; list ml.timeframes "
                             f"from {', '.join(FEATURE_TIMEFRAMES)}")
    if bot.ml.features is not None:
        try:
            check_timeframes(ml_timeframes(bot, default_interval),
                             parse_features(bot.ml.features))
        except ValueError as exc:
            raise ValueError(f"bot {bot.name}: {exc}") from None


def prepare_bot(data: Any, home: Path | None) -> Any:
    """A bot's raw mapping before it is validated: `ml.models_dir` resolved under the
    fleet home, and an rl_policy bot without `params.model` given that directory (each
    `<timeframe>/` in it is a model). Anything malformed is left for validation to name."""
    if not isinstance(data, Mapping) or not isinstance(data.get("ml"), Mapping):
        return data
    ml = dict(data["ml"])
    name = data.get("name")
    given = ml.get("models_dir")
    if not isinstance(name, str) or not (given is None or isinstance(given, str)):
        return data
    if home is None:
        from fleetkit.config.loader import fleet_home  # late: the loader imports the models

        home = fleet_home()
    folder = Path(given or f"{MODELS_FOLDER}/{name}").expanduser()
    ml["models_dir"] = str(folder if folder.is_absolute() else home / folder)
    prepared = {**data, "ml": ml}
    params = data.get("params")
    if data.get("strategy") == RL_POLICY and (params is None or (
            isinstance(params, Mapping) and "model" not in params)):
        prepared["params"] = {**(params or {}), "model": ml["models_dir"]}
    return prepared

