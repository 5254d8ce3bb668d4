"""The three policies: each trains briefly on the fast environment and predicts valid
actions; the TFT extractor's shapes and variable weights; unknown policies and devices
refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from fleetkit.core.errors import ConfigError
from fleetkit.ml.model_dir import load_model
from fleetkit.ml.policies import POLICIES, UnknownPolicyError, policy_spec
from fleetkit.ml.tft import TemporalFusionExtractor, ranked_weights
from fleetkit.ml.training import DeviceError, resolve_device, train
from tests.unit.ml.envs import coin_market, fast_env


@pytest.fixture(scope="module")
def market():  # type: ignore[no-untyped-def]
    return coin_market(bars=400)


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policy_trains_briefly_and_predicts_valid_actions(
        policy: str, market: object, tmp_path: Path) -> None:
    trained = train(lambda: fast_env(market), policy, 256, seed=1,  # type: ignore[arg-type]
                    out_dir=tmp_path, n_envs=2)
    env = fast_env(market)  # type: ignore[arg-type]
    observations = np.stack([env.reset(seed=s)[0] for s in range(5)])
    actions, state = trained.predict(observations, episode_start=np.ones(5, dtype=bool))
    assert actions.shape == (5,)
    assert all(env.action_space.contains(np.int64(a)) for a in actions)
    assert (state is not None) == (policy == "lstm")  # the LSTM carries its state
    loaded = load_model(tmp_path)
    assert loaded.manifest.policy == policy
    assert loaded.manifest.algorithm == ("RecurrentPPO" if policy == "lstm" else "PPO")
    assert loaded.manifest.observation_shape == env.observation_space.shape
    assert bool(loaded.variable_weights()) == (policy == "tft")


def test_the_tft_reads_every_column_and_says_how_much(market: object, tmp_path: Path) -> None:
    trained = train(lambda: fast_env(market), "tft", 256, seed=1,  # type: ignore[arg-type]
                    out_dir=tmp_path, n_envs=2)
    columns = trained.manifest.feature_columns
    shown = load_model(tmp_path).variable_weights()
    assert sorted(name for name, _ in shown) == sorted(columns)
    assert sum(w for _, w in shown) == pytest.approx(1.0, abs=1e-5)
    assert [w for _, w in shown] == sorted((w for _, w in shown), reverse=True)


def _extractor(window: int = 6, columns: int = 5) -> TemporalFusionExtractor:
    space = spaces.Box(-10, 10, (window * columns + 2,), np.float32)
    return TemporalFusionExtractor(space, window, [f"f{i}" for i in range(columns)],
                                   hidden=16, heads=4)


def test_the_tft_extractor_makes_one_vector_per_observation_and_weights_per_column() -> None:
    torch.manual_seed(0)
    extractor = _extractor()
    observations = torch.randn(7, 6 * 5 + 2)
    out = extractor(observations)
    assert out.shape == (7, extractor.features_dim) == (7, 16 + 2)
    # The state columns (position, unrealised P&L) reach the heads as they are.
    assert torch.equal(out[:, -2:], observations[:, -2:])
    weights = extractor.variable_weights()
    assert weights.shape == (5,)
    assert (weights > 0).all()
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_the_tft_variable_weights_follow_the_input() -> None:
    """The weights are the last forward pass's, not fixed numbers."""
    torch.manual_seed(0)
    extractor = _extractor()
    extractor(torch.randn(4, 32))
    first = extractor.variable_weights()
    extractor(torch.randn(4, 32) * 5)
    assert not np.allclose(first, extractor.variable_weights())


def test_the_tft_extractor_sees_only_its_own_rows() -> None:
    """Changing the oldest row changes the output; so the whole window is read."""
    torch.manual_seed(0)
    extractor = _extractor()
    observations = torch.randn(1, 32)
    changed = observations.clone()
    changed[0, :5] += 3.0  # the oldest row
    assert not torch.allclose(extractor(observations), extractor(changed))


def test_the_tft_refuses_an_observation_of_another_shape() -> None:
    space = spaces.Box(-10, 10, (31,), np.float32)
    with pytest.raises(ValueError, match="6 rows x 5 columns"):
        TemporalFusionExtractor(space, 6, [f"f{i}" for i in range(5)])


def test_ranked_weights_put_the_heaviest_first() -> None:
    assert ranked_weights(("a", "b", "c"), [0.2, 0.5, 0.3]) == [
        ("b", 0.5), ("c", 0.3), ("a", 0.2)]


def test_an_unknown_policy_is_refused_in_one_line(tmp_path: Path) -> None:
    built: list[int] = []

    def factory():  # type: ignore[no-untyped-def]
        built.append(1)
        raise AssertionError("no environment should be built for an unknown policy")

    with pytest.raises(UnknownPolicyError) as refused:
        train(factory, "gru", 100, seed=0, out_dir=tmp_path)
    assert isinstance(refused.value, ConfigError)  # the CLI exits 2
    assert isinstance(refused.value, ValueError)
    assert str(refused.value) == "unknown policy 'gru'; choose one of mlp, lstm, tft"
    assert built == []
    with pytest.raises(UnknownPolicyError):
        policy_spec("transformer", window=4, columns=("a",))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_in_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DeviceError) as refused:
        train(lambda: pytest.fail("built an environment"), "mlp", 100, seed=0,
              out_dir=tmp_path, device="cuda")
    message = str(refused.value)
    assert "\n" not in message
    assert "--device cuda" in message and "--device cpu" in message
    assert isinstance(refused.value, ConfigError)
    assert resolve_device("auto") == "cpu"


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(DeviceError, match="choose one of cpu, cuda, auto"):
        resolve_device("tpu")
