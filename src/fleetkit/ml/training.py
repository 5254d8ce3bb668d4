"""Training a policy with PPO on vectorised environments, reproducibly, into a model
directory (ml.model_dir) that is verified before it is ever loaded.

Train on `FastTradingEnv` (the fast path, proven equal to the engine) for throughput; the
engine's `TradingEnv` is the ground truth to evaluate on. Seeding: stable-baselines3 seeds
Python's, numpy's and torch's generators, the action space and environment i with
`seed + i`; on CPU torch is held to deterministic algorithms for the run, so the same seed
on the same machine gives the same parameters bit for bit.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from fleetkit.ml.devices import DeviceError, resolve_device
from fleetkit.ml.env import FastTradingEnv, TradingEnv
from fleetkit.ml.model_dir import (
    MODEL_FILE,
    NORMALISATION_FILE,
    WEIGHTS_FILE,
    ModelManifest,
    TrainedModel,
    TrainingWindowInfo,
    load_model,
    save_variable_weights,
    sha256_of,
    write_manifest,
)
from fleetkit.ml.policies import POLICIES, PolicySpec, UnknownPolicyError, policy_spec
from fleetkit.ml.tft import TemporalFusionExtractor
from fleetkit.ml.window import TrainingWindow

__all__ = ["DeviceError", "TrainedModel", "TrainingProgress", "load_model",
           "resolve_device", "train"]

EnvFactory = Callable[[], FastTradingEnv | TradingEnv]
# Observations the TFT's saved variable weights are averaged over (from the last rollout).
_WEIGHT_SAMPLE = 4096


@dataclass(frozen=True, slots=True)
class TrainingProgress:
    """Reported after each rollout and at the end. `mean_episode_reward` is over the last
    100 finished episodes (None until one has finished)."""

    steps: int
    total_steps: int
    elapsed_s: float
    steps_per_s: float
    mean_episode_reward: float | None


ProgressCallback = Callable[[TrainingProgress], None]


def train(env_factory: EnvFactory, policy: str, steps: int, seed: int, *,
          out_dir: Path, device: str = "cpu", n_envs: int = 4,
          progress_callback: ProgressCallback | None = None,
          sb3_defaults: bool = False, threads: int | None = None,
          hyperparameters: Mapping[str, Any] | None = None,
          tensorboard_log: Path | None = None) -> TrainedModel:
    """Trains `policy` ("mlp" | "lstm" | "tft") for `steps` environment steps over
    `n_envs` environments from `env_factory`, seeded by `seed`, and saves it in `out_dir`
    (model, normalisation, manifest; the TFT's variable weights): load it again with
    `load_model`, which verifies it first. `sb3_defaults`: stable-baselines3's
    hyperparameters. `threads`: torch's threads for the run, default 1: these networks'
    operations are too small to split (on the 2-core VM two threads made the MLP run 1.8x
    slower and the TFT's no faster; bench/rl_train.py --threads); at most the cores this
    process may use. `tensorboard_log`: a folder for stable-baselines3's TensorBoard logs
    (needs the tensorboard package)."""
    if steps < 1 or n_envs < 1:
        raise ValueError(f"steps and n_envs must be at least 1, got {steps} and {n_envs}")
    if policy not in POLICIES:  # before building any environment
        raise UnknownPolicyError(f"unknown policy {policy!r}; choose one of "
                                 f"{', '.join(POLICIES)}")
    resolved = resolve_device(device)
    envs = [env_factory() for _ in range(n_envs)]
    window = envs[0].window
    spec = policy_spec(policy, window=window.window, columns=window.columns,
                       sb3_defaults=sb3_defaults)
    if hyperparameters:
        spec = replace(spec, hyperparameters={**spec.hyperparameters, **hyperparameters})
    vec = DummyVecEnv([_monitored(env) for env in envs])
    callback = _Progress(progress_callback, steps)
    with _reproducible_torch(resolved, threads or 1):
        model = spec.algorithm(spec.policy, vec, seed=seed, device=resolved,
                               policy_kwargs=spec.policy_kwargs,
                               tensorboard_log=None if tensorboard_log is None
                               else str(tensorboard_log),
                               **_fitted(spec, steps, n_envs))
        model.learn(total_timesteps=steps, callback=callback)
    vec.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _save(model, spec, window, out_dir, steps=steps, seed=seed, device=resolved,
                     n_envs=n_envs)
    return TrainedModel(out_dir, manifest, model)


def _monitored(env: gymnasium.Env[Any, Any]) -> Callable[[], gymnasium.Env[Any, Any]]:
    # Monitor records each episode's return, which the progress report averages.
    return lambda: Monitor(env)


def _fitted(spec: PolicySpec, steps: int, n_envs: int) -> dict[str, Any]:
    """The spec's hyperparameters with the rollout cut to the run (a 1,000-step test run
    should not collect 2,048 steps per environment) and a minibatch that divides it:
    stable-baselines3 warns (pytest: fails) on a truncated last minibatch."""
    params = dict(spec.hyperparameters)
    default_n_steps = 128 if spec.recurrent else 2048
    default_batch = 128 if spec.recurrent else 64
    n_steps = min(params.get("n_steps", default_n_steps), max(2, math.ceil(steps / n_envs)))
    buffer = n_steps * n_envs
    batch = min(params.get("batch_size", default_batch), buffer)
    while buffer % batch:
        batch -= 1
    params["n_steps"], params["batch_size"] = n_steps, max(batch, 2)
    return params


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def _reproducible_torch(device: str, threads: int) -> Iterator[None]:
    """torch's threads set to this process's cores and, on CPU, deterministic algorithms,
    for the run only: both are process-wide, and a caller's settings are put back."""
    before = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(min(threads, _cores()))
    # On CUDA deterministic mode needs CUBLAS_WORKSPACE_CONFIG set before CUDA starts and
    # refuses some kernels: GPU runs are fast, not bit-reproducible.
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(deterministic)


class _Progress(BaseCallback):
    def __init__(self, report: ProgressCallback | None, total: int) -> None:
        super().__init__()
        self.report = report
        self.total = total
        self.started = time.perf_counter()
        self.reported = -1

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self._send()

    def _on_training_end(self) -> None:
        self._send()

    def _send(self) -> None:
        steps = self.model.num_timesteps
        if self.report is None or steps == self.reported:
            return
        self.reported = steps
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        episodes: list[dict[str, Any]] = list(self.model.ep_info_buffer or [])
        mean = float(np.mean([e["r"] for e in episodes])) if episodes else None
        self.report(TrainingProgress(steps, self.total, elapsed, steps / elapsed, mean))


def _save(model: BaseAlgorithm, spec: PolicySpec, window: TrainingWindow, out_dir: Path,
          **run: Any) -> ModelManifest:
    for stale in (MODEL_FILE, NORMALISATION_FILE, WEIGHTS_FILE):
        (out_dir / stale).unlink(missing_ok=True)
    model.save(out_dir / MODEL_FILE)
    window.normalisation.save(out_dir / NORMALISATION_FILE)
    if spec.name == "tft":
        save_variable_weights(out_dir, window.columns, _tft_weights(model))
    files = [MODEL_FILE, NORMALISATION_FILE] + ([WEIGHTS_FILE] if spec.name == "tft" else [])
    tape = window.tape
    manifest = ModelManifest(
        policy=spec.name, algorithm=type(model).__name__, steps=run["steps"],
        seed=run["seed"], device=run["device"], n_envs=run["n_envs"],
        observation_shape=tuple(model.observation_space.shape or ()),
        actions=int(model.action_space.n),  # type: ignore[attr-defined]
        window=window.window, feature_set_hash=window.normalisation.feature_set_hash,
        feature_columns=window.columns,
        training_window=TrainingWindowInfo(
            tape.instrument.key, tape.interval_s, _iso(int(tape.ts_s[window.first_row])),
            _iso(int(tape.ts_s[-1])), len(tape)),
        versions={name: version(name) for name in
                  ("fleetkit", "torch", "stable-baselines3", "sb3-contrib", "gymnasium")},
        files={name: sha256_of(out_dir / name) for name in files},
        feature_set=None if window.feature_set is None else window.feature_set.to_mapping(),
        timeframe=None if window.feature_set is None else window.feature_set.base)
    write_manifest(out_dir, manifest)
    return manifest


def _tft_weights(model: BaseAlgorithm) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The variable weights averaged over (up to 4,096 of) the last rollout's
    observations: what the policy read while it learned last."""
    extractor = model.policy.features_extractor
    if not isinstance(extractor, TemporalFusionExtractor):
        raise TypeError("not a TFT policy")
    observations = model.rollout_buffer.observations  # type: ignore[attr-defined]
    sample = np.asarray(observations).reshape(-1, observations.shape[-1])[:_WEIGHT_SAMPLE]
    with torch.no_grad():
        extractor(torch.as_tensor(sample, device=model.device))
    return extractor.variable_weights()


def _iso(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat()
