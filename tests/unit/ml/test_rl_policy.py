"""The rl_policy strategy: what it trades in a backtest is what the policy picks on the
environment's own observations; a changed model, another feature set's model and NaN
features stop it with one line instead of a trade."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO

from fleetkit.backtest.run import BacktestSpec, run_backtest
from fleetkit.core.errors import StrategyError
from fleetkit.core.market_data import Bar
from fleetkit.core.signals import SignalLevel
from fleetkit.features.errors import FeatureError
from fleetkit.ml.model_dir import MODEL_FILE
from fleetkit.ml.policy_loader import VerifiedPolicy
from fleetkit.ml.training import TrainedModel, train
from fleetkit.strategy.base import StrategyContext, build_strategy
from fleetkit.strategy.learned import RlPolicyStrategy, combine_levels
from tests.unit.ml.envs import COIN, VENUE, coin_market, engine_env, fast_env, feature_set


@pytest.fixture(scope="module")
def market():  # type: ignore[no-untyped-def]
    return coin_market(bars=400)


@pytest.fixture(scope="module")
def trained(market: Any, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train(lambda: fast_env(market), "mlp", 256, 3,
                 out_dir=tmp_path_factory.mktemp("model"), n_envs=1)


def _params(directory: Path, timeframe: str = "1h") -> dict[str, Any]:
    return {"model": str(directory), "features": feature_set(timeframe).to_mapping()}


def _spec(market: Any, params: dict[str, Any]) -> BacktestSpec:
    recipe = market[0]
    return BacktestSpec("rl_policy", params, recipe.sizing, recipe.limits, VENUE)


def test_the_backtest_trades_what_the_policy_picks_on_the_environments_observations(
        market: Any, trained: TrainedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, np.ndarray, int]] = []
    act, observe = VerifiedPolicy.act, RlPolicyStrategy.observation

    def observation(self: RlPolicyStrategy, ctx: StrategyContext, close: float,
                    index: int = 0) -> np.ndarray:
        obs = observe(self, ctx, close, index)
        seen.append((0, obs, -1))
        return obs

    def acting(self: VerifiedPolicy, obs: np.ndarray) -> int:
        action = act(self, obs)
        seen[-1] = (0, seen[-1][1], action)
        return action

    monkeypatch.setattr(RlPolicyStrategy, "observation", observation)
    monkeypatch.setattr(VerifiedPolicy, "act", acting)
    _, tape, _ = market
    result = run_backtest(_spec(market, _params(trained.directory)), tape)
    env = engine_env(market)
    first = env.window.first_row
    decisions = len(tape) - first  # every bar from the env's first decision row on
    assert len(seen) == decisions
    held = 0
    for row, (_, obs, action) in zip(range(first, len(tape)), seen, strict=True):
        expected = env.window.observation(row, float(obs[-2]), float(obs[-1]))
        assert np.array_equal(obs, expected), f"row {row}"
        assert action == int(trained.predict(expected)[0])
        held += obs[-2] != 0
    assert held > 0  # the position part was exercised: the bot traded
    assert result.trades or held


def test_a_model_changed_by_one_byte_halts_the_bot_with_the_reason_and_is_never_loaded(
        market: Any, trained: TrainedModel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(trained.directory, changed)
    data = bytearray((changed / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (changed / MODEL_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(PPO, "load", lambda *a, **k: pytest.fail("unpickled a changed model"))
    strategy = build_strategy("rl_policy", _params(changed))
    assert isinstance(strategy, RlPolicyStrategy)
    assert strategy.refused is not None and "\n" not in strategy.refused
    assert "model.zip has sha256" in strategy.refused
    _, tape, _ = market
    with pytest.raises(StrategyError, match=r"model\.zip has sha256"):
        run_backtest(_spec(market, _params(changed)), tape)


def test_another_feature_sets_model_is_refused(trained: TrainedModel) -> None:
    strategy = build_strategy("rl_policy", _params(trained.directory, "4h"))
    assert isinstance(strategy, RlPolicyStrategy)
    assert strategy.refused is not None and "trained on feature set" in strategy.refused
    # ...and the right one is not.
    good = build_strategy("rl_policy", _params(trained.directory))
    assert isinstance(good, RlPolicyStrategy) and good.refused is None


def test_nan_features_raise_naming_the_column_never_a_signal(
        market: Any, trained: TrainedModel) -> None:
    _, tape, _ = market
    strategy = build_strategy("rl_policy", _params(trained.directory))
    recipe = market[0]
    ctx = StrategyContext(COIN, position_size_usd=recipe.sizing.position_size_usd,
                          usd_per_unit=recipe.sizing.usd_per_unit)
    for i in range(300):
        strategy.on_bar(_bar(tape, i), ctx)
    bad = _bar(tape, 300)
    bad = Bar(bad.ts, bad.open, bad.high, bad.low, float("nan"), bad.volume)
    with pytest.raises(FeatureError, match=r"feature 1h\.\w+ is nan"):
        strategy.on_bar(bad, ctx)


def test_combine_rules() -> None:
    S = SignalLevel
    assert combine_levels([S.STRONG_BUY, S.WEAK_BUY], "mean") is S.BUY
    assert combine_levels([S.STRONG_BUY, S.HOLD], "mean") is S.WEAK_BUY  # 1.5 -> 1
    assert combine_levels([S.STRONG_SELL, S.HOLD], "mean") is S.WEAK_SELL  # -1.5 -> -1
    assert combine_levels([S.BUY, S.BUY], "agree") is S.BUY
    assert combine_levels([S.BUY, S.WEAK_BUY], "agree") is S.HOLD


def test_inference_per_bar_is_far_inside_the_bar(market: Any, trained: TrainedModel) -> None:
    """Features update + predict, p99 over the decision bars (printed for the docs)."""
    _, tape, _ = market
    recipe = market[0]
    strategy = build_strategy("rl_policy", _params(trained.directory))
    ctx = StrategyContext(COIN, position_size_usd=recipe.sizing.position_size_usd,
                          usd_per_unit=recipe.sizing.usd_per_unit)
    times = []
    for i in range(len(tape)):
        started = time.perf_counter()
        strategy.on_bar(_bar(tape, i), ctx)
        times.append(time.perf_counter() - started)
    decided = np.array(times[100:]) * 1000
    p50, p99 = np.percentile(decided, [50, 99])
    print(f"rl_policy MLP per bar: p50 {p50:.3f} ms, p99 {p99:.3f} ms over {len(decided)}")
    assert p99 < 50  # generous for a shared CI machine; the goal (5 ms) is in docs/ml.md


def _bar(tape: Any, i: int) -> Bar:
    return Bar(datetime.fromtimestamp(int(tape.ts_s[i]), UTC), float(tape.open[i]),
               float(tape.high[i]), float(tape.low[i]), float(tape.close[i]),
               float(tape.volume[i]))
