"""A trainer from the config's `training.trainers` (config.pipeline): the one place that
knows every kind, so adding an executor is a settings class, an implementation of the
Trainer port and one branch here (docs/pipeline.md, "Adding an executor")."""

from __future__ import annotations

from pathlib import Path

from fleetkit.config.pipeline import (
    LocalTrainerSettings,
    SshTrainerSettings,
    TrainingSettings,
)
from fleetkit.core.errors import ConfigError
from fleetkit.pipeline.local_trainer import TRAINER_FOLDER, LocalTrainer
from fleetkit.pipeline.ssh_trainer import SshTrainer
from fleetkit.pipeline.trainers import Backoff, Trainer


def build_trainer(name: str, settings: LocalTrainerSettings | SshTrainerSettings, *,
                  home: Path) -> Trainer:
    """`home`: the fleet home, where a local trainer's workdir defaults to (and a relative
    one is resolved in)."""
    if isinstance(settings, SshTrainerSettings):
        return SshTrainer(name, settings)
    root = Path(settings.workdir).expanduser() if settings.workdir else Path(TRAINER_FOLDER)
    return LocalTrainer(name, root if root.is_absolute() else home / root,
                        python=settings.python, device=settings.device)


def trainer_named(training: TrainingSettings, name: str, *, home: Path) -> Trainer:
    """The configured trainer `name`, or ConfigError listing the ones there are."""
    settings = training.trainers.get(name)
    if settings is None:
        known = ", ".join(sorted(training.trainers)) or "none"
        raise ConfigError(f"no trainer named {name!r} in training.trainers (configured: "
                          f"{known})")
    return build_trainer(name, settings, home=home)


def retry_backoff(training: TrainingSettings) -> Backoff:
    return Backoff(training.retries.initial_s, training.retries.maximum_s)
