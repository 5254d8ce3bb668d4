"""Training's promises: seeded CPU runs give the same model, the model directory
round-trips, and a directory that changed or does not fit is refused before anything in
it is unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from fleetkit.ml.model_dir import (
    MANIFEST,
    MODEL_FILE,
    NORMALISATION_FILE,
    ModelRefusedError,
    load_model,
    sha256_of,
)
from fleetkit.ml.training import TrainedModel, TrainingProgress, train
from tests.unit.ml.envs import CONFIG, coin_market, fast_env

STEPS = 512


@pytest.fixture(scope="module")
def market():  # type: ignore[no-untyped-def]
    return coin_market(bars=400)


@pytest.fixture(scope="module")
def observations(market: object) -> np.ndarray:
    env = fast_env(market)  # type: ignore[arg-type]
    return np.stack([env.reset(seed=s)[0] for s in range(32)])


def _train(market: object, out: Path, seed: int = 7, **kwargs: object) -> TrainedModel:
    return train(lambda: fast_env(market), "mlp", STEPS, seed,  # type: ignore[arg-type]
                 out_dir=out, n_envs=2, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(market: object, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return _train(market, tmp_path_factory.mktemp("model"))


def _parameters(model: TrainedModel) -> dict[str, torch.Tensor]:
    return model.model.policy.state_dict()


def test_the_same_seed_on_cpu_gives_the_same_model(
        market: object, trained: TrainedModel, tmp_path: Path,
        observations: np.ndarray) -> None:
    again = _train(market, tmp_path / "again")
    first, second = _parameters(trained), _parameters(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert np.array_equal(again.predict(observations)[0], trained.predict(observations)[0])
    # ...and the test can tell: another seed learns other parameters.
    other = _parameters(_train(market, tmp_path / "other", seed=8))
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_saved_model_loads_back_and_predicts_the_same_actions(
        trained: TrainedModel, observations: np.ndarray) -> None:
    loaded = load_model(trained.directory)
    assert loaded.manifest == trained.manifest
    assert np.array_equal(loaded.predict(observations)[0], trained.predict(observations)[0])
    original, reloaded = _parameters(trained), _parameters(loaded)
    assert all(torch.equal(original[k], reloaded[k]) for k in original)


def test_the_manifest_says_what_the_model_is_and_checksums_every_file(
        trained: TrainedModel, market: object) -> None:
    manifest = json.loads((trained.directory / MANIFEST).read_text())
    env = fast_env(market)  # type: ignore[arg-type]
    assert manifest["format"] == "fleetkit.ml.model/1"
    assert (manifest["policy"], manifest["steps"], manifest["seed"]) == ("mlp", STEPS, 7)
    assert manifest["observation_shape"] == [CONFIG.window * len(env.window.columns) + 2]
    assert manifest["feature_columns"] == list(env.window.columns)
    assert manifest["feature_set_hash"] == env.window.normalisation.feature_set_hash
    assert manifest["training_window"]["instrument"] == "CRYPTO:BTC/USDT"
    assert manifest["training_window"]["bars"] == len(env.window.tape)
    assert set(manifest["files"]) == {MODEL_FILE, NORMALISATION_FILE}
    for name, digest in manifest["files"].items():
        assert sha256_of(trained.directory / name) == digest
    saved = json.loads((trained.directory / NORMALISATION_FILE).read_text())
    assert saved["feature_set_hash"] == manifest["feature_set_hash"]


def test_progress_reports_steps_per_second_and_mean_episode_reward(
        market: object, tmp_path: Path) -> None:
    seen: list[TrainingProgress] = []
    _train(market, tmp_path, progress_callback=seen.append)
    assert [p.steps for p in seen] == sorted({p.steps for p in seen})
    assert seen[-1].steps >= STEPS == seen[-1].total_steps
    assert all(p.steps_per_s > 0 for p in seen)
    # Episodes of 120 bars end within 256 steps per environment.
    assert isinstance(seen[-1].mean_episode_reward, float)


@pytest.fixture
def copy_of(trained: TrainedModel, tmp_path: Path) -> Path:
    directory = tmp_path / "copy"
    directory.mkdir()
    for file in trained.directory.iterdir():
        (directory / file.name).write_bytes(file.read_bytes())
    return directory


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a refused model was loaded")

    monkeypatch.setattr(PPO, "load", refuse)


@pytest.mark.parametrize("name", [MODEL_FILE, NORMALISATION_FILE])
def test_a_file_changed_by_one_byte_is_refused_before_loading(
        copy_of: Path, name: str, no_unpickling: None) -> None:
    data = bytearray((copy_of / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy_of / name).write_bytes(bytes(data))
    with pytest.raises(ModelRefusedError, match=rf"{name} has sha256 .* changed since "
                                                r"training; refusing to load it") as refused:
        load_model(copy_of)
    assert "\n" not in str(refused.value)


def test_a_missing_file_or_manifest_is_refused(copy_of: Path, no_unpickling: None) -> None:
    (copy_of / NORMALISATION_FILE).unlink()
    with pytest.raises(ModelRefusedError, match=f"{NORMALISATION_FILE} is missing"):
        load_model(copy_of)
    (copy_of / MANIFEST).unlink()
    with pytest.raises(ModelRefusedError, match=r"manifest\.json is missing"):
        load_model(copy_of)


def test_a_manifest_that_drops_a_file_is_refused(copy_of: Path, no_unpickling: None) -> None:
    manifest = json.loads((copy_of / MANIFEST).read_text())
    del manifest["files"][MODEL_FILE]
    (copy_of / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelRefusedError, match=r"lists no model\.zip"):
        load_model(copy_of)


def test_a_model_for_another_feature_set_or_shape_is_refused(
        trained: TrainedModel, no_unpickling: None) -> None:
    with pytest.raises(ModelRefusedError, match=r"trained on feature set .* not this one"):
        load_model(trained.directory, feature_set_hash="0" * 64)
    with pytest.raises(ModelRefusedError, match=r"takes observations of shape \(74,\), not "
                                                r"\(75,\)"):
        load_model(trained.directory, observation_shape=(75,))
