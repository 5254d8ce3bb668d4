"""`fleet ml train`'s work: one model per timeframe of a config bot, trained on the fast
path into a temporary sibling of its directory and moved into place only once complete.

A run killed mid-training leaves the previous model where the bot reads it (and a
`.<timeframe>.training-<pid>` folder that the next run removes); the swap itself is one
rename where the platform can exchange two directories atomically (Linux renameat2),
otherwise two renames microseconds apart.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from fleetkit.core.errors import ConfigError
from fleetkit.ml.bot_data import BotTrainingData
from fleetkit.ml.devices import resolve_device
from fleetkit.ml.env import FastTradingEnv
from fleetkit.ml.model_dir import ModelManifest
from fleetkit.ml.model_swap import install
from fleetkit.ml.policies import POLICIES, UnknownPolicyError
from fleetkit.ml.training import ProgressCallback, TrainingProgress, train

TENSORBOARD_FOLDER = "tensorboard"
_TRAINING = ".{timeframe}.training-"


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """What `fleet ml train` was asked for, the config's ml section with the CLI's
    overrides applied."""

    policy: str
    steps: int
    seed: int
    device: str
    n_envs: int
    tensorboard: bool


@dataclass(frozen=True, slots=True)
class TrainedBotModel:
    directory: Path
    timeframe: str
    manifest: ModelManifest
    seconds: float
    mean_reward: float | None
    source: str
    notes: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"timeframe": self.timeframe, "path": str(self.directory),
                "policy": self.manifest.policy, "steps": self.manifest.steps,
                "seed": self.manifest.seed, "device": self.manifest.device,
                "seconds": round(self.seconds, 3), "mean_episode_reward": self.mean_reward,
                "feature_set_hash": self.manifest.feature_set_hash,
                "training_window": {"bars": self.manifest.training_window.bars,
                                    "start": self.manifest.training_window.start,
                                    "end": self.manifest.training_window.end},
                "bars_from": self.source, "notes": list(self.notes)}


def check_run(run: TrainingRun) -> str:
    """The device the run will use; UnknownPolicyError or DeviceError (one line each)
    before any data is read."""
    if run.policy not in POLICIES:
        raise UnknownPolicyError(f"unknown policy {run.policy!r}; choose one of "
                                 f"{', '.join(POLICIES)}")
    return resolve_device(run.device)


def tensorboard_missing() -> bool:
    return importlib.util.find_spec("tensorboard") is None


def train_bot_model(data: BotTrainingData, run: TrainingRun,
                    progress: ProgressCallback | None = None) -> TrainedBotModel:
    """Train `data`'s model and install it at data.model_dir, replacing the old one only
    once the new one is complete."""
    final = data.model_dir
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(final)
    partial = final.parent / f"{_TRAINING.format(timeframe=final.name)}{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    reported: list[float | None] = [None]

    def report(update: TrainingProgress) -> None:
        reported[0] = update.mean_episode_reward
        if progress is not None:
            progress(update)

    tape, matrix = data.training_tape, data.training_matrix

    def env() -> FastTradingEnv:
        return FastTradingEnv(data.recipe, tape, matrix, config=data.env_config,
                              venue=data.venue, normalisation=data.normalisation)

    try:
        env()  # refuses what the fast path cannot model, before any training
    except ValueError as exc:
        raise ConfigError(f"bot {data.bot.name}: {exc}") from None
    board = (data.models_dir / TENSORBOARD_FOLDER
             if run.tensorboard and not tensorboard_missing() else None)
    started = time.perf_counter()
    try:
        trained = train(env, run.policy, run.steps, run.seed, out_dir=partial,
                        device=run.device, n_envs=run.n_envs, progress_callback=report,
                        tensorboard_log=board)
        seconds = time.perf_counter() - started
        install(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return TrainedBotModel(final, data.timeframe, trained.manifest, seconds, reported[0],
                           data.source, data.notes)


def _remove_abandoned(final: Path) -> None:
    """Temporary folders of runs that were killed (their process is gone)."""
    prefix = _TRAINING.format(timeframe=final.name)
    for folder in final.parent.glob(f"{prefix}*"):
        pid = folder.name.removeprefix(prefix)
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
