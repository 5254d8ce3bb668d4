"""A bot's `ml:` section: strict like the rest of the config, defaults resolved, the
feature set checked at load time, and an rl_policy bot's model directory filled in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit.config.loader import parse_config
from fleetkit.config.ml import POLICY_NAMES, ml_feature_set, ml_signal, ml_timeframes
from fleetkit.core.errors import ConfigError
from fleetkit.features import FeatureSetError, default_feature_set, parse_feature_set
from fleetkit.features.spec import from_base

BOT = """
bots:
  - name: rl-nifty
    market: NSE
    symbols: [RELIANCE]
    strategy: sma_cross
    bar_interval: 15m
    ml: {ML}
"""


def load(ml: str, home: Path = Path("/fleet")) -> object:
    return parse_config(BOT.replace("{ML}", ml), "fleet.yaml", home=home)


@pytest.mark.parametrize(("ml", "message"), [
    ("{polcy: mlp}", "bots[0] (rl-nifty).ml.polcy: unknown key; known keys here: device"),
    ("{policy: gru}", "bots[0] (rl-nifty).ml.policy: must be one of 'mlp', 'lstm' or 'tft'"),
    ("{steps: 0}", "bots[0] (rl-nifty).ml.steps: must be a number ≥ 1, got 0"),
    ("{holdout_fraction: 1}", "ml.holdout_fraction: must be a number < 1.0, got 1"),
    ("{device: tpu}", "ml.device: must be one of 'cpu', 'cuda' or 'auto'"),
    ("{signal: NIFTY}", "ml.signal: 'NIFTY' is not MARKET:SYMBOL"),
    ("{timeframes: [2h]}", "ml.timeframes: '2h' is not a feature timeframe; use one of 1m, 5m"),
    ("{levels: [0, 4]}", "ml.levels: levels are signal levels from -3"),
    ("{reward: {sharpe_eta: 2}}", "ml.reward.sharpe_eta: must be a number < 1.0, got 2"),
    ("{features: {timeframes: {15m: [{kind: rsi, period: 1}]}}}",
     "ml: features.timeframes.15m[0].period: must be an integer of at least 2, got 1"),
    ("{timeframes: [15m, 1h], features: {timeframes: {15m: [rsi]}}}",
     "ml: timeframes: 1h has no features; declare it under features.timeframes"),
    ("{features: {timeframes: {1h: [rsi]}}}",
     "bot rl-nifty: ml.timeframes: 15m has no features; declare it under "
     "ml.features.timeframes (declared: 1h)"),
])
def test_a_bad_ml_section_is_refused_in_one_line(ml: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(ml)
    assert "\n" not in str(raised.value)
    assert message in str(raised.value), str(raised.value)


def test_defaults_come_from_the_bot() -> None:
    config = load("{}")
    bot = config.bot("rl-nifty")  # type: ignore[attr-defined]
    assert bot.ml.policy == "mlp" and bot.ml.steps == 20_000 and bot.ml.history_bars == 4000
    assert bot.ml.models_dir == "/fleet/models/rl-nifty"
    assert ml_timeframes(bot, "1m") == ["15m"]
    assert ml_signal(bot) == "NSE:RELIANCE"
    assert ml_feature_set(bot, "1m") == default_feature_set(["15m"])


def test_the_default_timeframe_must_be_a_feature_timeframe() -> None:
    with pytest.raises(ConfigError, match="defaults to the bar interval 30m, which is no "
                                          "feature timeframe"):
        parse_config(BOT.replace("bar_interval: 15m", "bar_interval: 30m")
                     .replace("{ML}", "{}"), "fleet.yaml")


def test_models_dir_is_under_the_fleet_home_and_fills_an_rl_policy_bots_model() -> None:
    text = """
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    params: {features: {timeframes: {1h: [rsi]}, calendar: []}}
    bar_interval: 1h
    ml: {features: {timeframes: {1h: [rsi]}, calendar: []}}
  - name: rl-own
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    params: {model: /elsewhere, features: {timeframes: {1h: [rsi]}, calendar: []}}
    bar_interval: 1h
    ml: {models_dir: trained/own, timeframes: [1h]}
"""
    config = parse_config(text, "fleet.yaml", home=Path("/srv/fleet"))
    assert config.bot("rl-btc").params["model"] == "/srv/fleet/models/rl-btc"
    own = config.bot("rl-own")
    assert own.ml is not None and own.ml.models_dir == "/srv/fleet/trained/own"
    assert own.params["model"] == "/elsewhere"  # given: kept


def test_policy_names_are_the_trainers() -> None:
    from fleetkit.ml.policies import POLICIES

    assert tuple(POLICIES) == POLICY_NAMES


def test_a_model_reads_its_timeframe_and_the_ones_above() -> None:
    declared = parse_feature_set({"timeframes": {"15m": ["rsi"], "1h": ["atr"],
                                                 "1d": ["returns"]},
                                  "calendar": ["time_of_day"]})
    assert [t.timeframe for t in from_base(declared, "15m").timeframes] == ["15m", "1h", "1d"]
    hourly = from_base(declared, "1h")
    assert hourly.base == "1h" and hourly.columns == ("1h.atr_14", "1d.ret_1",
                                                      "calendar.tod_sin", "calendar.tod_cos")
    assert from_base(declared, "1d").columns[0] == "1d.ret_1"
    with pytest.raises(FeatureSetError, match="4h is not declared"):
        from_base(declared, "4h")


def test_loading_a_config_without_ml_imports_no_features() -> None:
    probe = ("import sys; from fleetkit.config.loader import parse_config; "
             "parse_config('bots: [{name: a, market: CRYPTO, symbols: [BTC/USDT], "
             "strategy: sma_cross}]', 'x'); "
             "print('fleetkit.features' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
