"""The training pipeline's trainers (issue 17; docs/pipeline.md "Trainers"): where a model is
trained, by name.

    training:
      trainers:
        here:     {kind: local}                       # a subprocess on this machine
        gpu-box:                                      # a host of ~/.ssh/config (WireGuard ...)
          kind: ssh
          host: gpu-box
          workdir: fleet-trainer                      # relative to the login's home
          python: ~/fleet/.venv/bin/python            # fleetkit and the ml extra installed
          device: cuda
      retries: {attempts: 3, initial_s: 5, maximum_s: 60}

      trainer: gpu-box                                # default: the only one, or local
      bots:
        rl-btc: {period_hours: 2, timeout_s: 1800,
                 gate: {min_sharpe_vs_active: 0.0, must_beat: [flat], reject_collapsed: true}}
      publish: {remote: git@github.com:me/models.git}   # optional

FleetConfig's `training:` section (docs/pipeline.md). Nothing here connects anywhere; the
pipeline's trainers do.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from fleetkit.config.strict import Strict
from fleetkit.core.errors import ConfigError

DeviceName = Literal["cpu", "cuda", "auto"]  # config.ml's: `fleet ml train --device`
TRAINER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
# An ssh option as `-o` takes it: `Key=value` or `Key value`, nothing that starts a flag.
_SSH_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*(=| )\S.*$")


class LocalTrainerSettings(Strict):
    """A subprocess on this machine: the production box itself, or a workstation that both
    runs the fleet and trains."""

    kind: Literal["local"]
    workdir: str | None = Field(default=None, description="the trainer's working directory "
                                "(default: <fleet home>/trainer); one folder per run under it")
    python: str | None = Field(default=None, description="the Python that runs `-m fleetkit "
                               "ml train` (default: this one)")
    device: DeviceName = Field(default="auto", description="`fleet ml train --device`")


class SshTrainerSettings(Strict):
    """A host reached with the user's own OpenSSH (its ~/.ssh/config, keys, agent and host
    aliases); never a password prompt (BatchMode)."""

    kind: Literal["ssh"]
    host: str = Field(description="an alias of ~/.ssh/config, a host name, or user@host")
    port: int | None = Field(default=None, ge=1, le=65535, description="default: ssh's "
                             "(the config's Port, else 22)")
    workdir: str = Field(default="fleet-trainer", description="the working directory on "
                         "the trainer; relative to the login's home, ~/ allowed")
    python: str = Field(description="the trainer's Python with fleetkit and the ml extra, "
                        "e.g. ~/fleet/.venv/bin/python")
    device: DeviceName = Field(default="auto", description="`fleet ml train --device`")
    ssh_options: list[str] = Field(default_factory=list, description="extra `-o` options "
                                   "(e.g. ProxyJump=bastion); they win over the defaults")
    identity_file: str | None = Field(default=None, description="a private key to use "
                                      "(only it: IdentitiesOnly); default ssh's own choice")
    ssh_config: str | None = Field(default=None, description="an ssh config file instead of "
                                   "~/.ssh/config (ssh -F)")
    connect_timeout_s: int = Field(default=10, ge=1, le=300)
    server_alive_interval_s: int = Field(default=15, ge=1, le=600, description="a silent "
                                         "connection is dropped after 4 unanswered probes")
    operation_timeout_s: float = Field(default=600.0, gt=0, description="limit of one "
                                       "hashing, listing or housekeeping command")
    transfer_timeout_s: float = Field(default=3600.0, gt=0, description="limit of one "
                                      "file's upload or download")

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        # A host that starts with "-" would be read by ssh as an option (ProxyCommand=...).
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise ValueError(f"host {host!r}: an ssh host name, alias or user@host")
        return host

    @field_validator("ssh_options")
    @classmethod
    def _options(cls, options: list[str]) -> list[str]:
        for option in options:
            if not _SSH_OPTION.match(option):
                raise ValueError(f"ssh option {option!r}: write it as -o takes it, "
                                 "Key=value (e.g. ProxyJump=bastion)")
        return options


TrainerSettings = Annotated[LocalTrainerSettings | SshTrainerSettings,
                            Field(discriminator="kind")]


class RetrySettings(Strict):
    """Bounded retries of a trainer that does not answer or drops a transfer; never of a
    refused key or a training that failed on its own."""

    attempts: int = Field(default=3, ge=1, le=20, description="tries in all")
    initial_s: float = Field(default=5.0, ge=0, description="the first wait (doubled each "
                             "time, half of it random: core.backoff)")
    maximum_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RetrySettings:
        if self.maximum_s < self.initial_s:
            raise ValueError("retries.maximum_s must be at least retries.initial_s")
        return self


def _one_local() -> dict[str, LocalTrainerSettings | SshTrainerSettings]:
    return {"local": LocalTrainerSettings(kind="local")}


Beatable = Literal["flat", "buy_and_hold"]
# A period divides the UTC day: one run per (bot, timeframe, period).
PeriodHours = Literal[1, 2, 3, 4, 6, 8, 12, 24]


def _flat() -> list[Beatable]:
    return ["flat"]


class GateSettings(Strict):
    """What a candidate must show on the held-out bars before it is activated."""

    min_sharpe_vs_active: float | None = Field(
        default=0.0, description="the candidate's Sharpe minus the active version's must be "
        "at least this (null: not compared; nothing active: passes)")
    must_beat: list[Beatable] = Field(default_factory=_flat, description="the "
                                      "benchmarks whose return it must beat")
    reject_collapsed: bool = Field(default=True, description="refuse a policy that collapsed "
                                   "to one action")


class BotTrainingSettings(Strict):
    """One bot's training runs (`training.bots.<bot>`; `training.defaults` for the rest)."""

    trainer: str | None = Field(default=None, description="a name of training.trainers "
                                "(default: training.trainer)")
    timeout_s: float = Field(default=3600.0, gt=0, description="limit of the training "
                             "command on the trainer")
    period_hours: PeriodHours = Field(default=24, description="one run per this many hours "
                                      "of the UTC day (24: one a day, 2: every 2 hours)")
    gate: GateSettings = Field(default_factory=GateSettings)


class PublishSettings(Strict):
    """An optional git remote the activated model files are pushed to."""

    remote: str | None = Field(default=None, description="a git remote URL (nothing is "
                               "pushed without one)")
    branch: str = Field(default="models")

    @field_validator("remote", "branch")
    @classmethod
    def _no_option(cls, value: str | None) -> str | None:
        # git would read a leading "-" as an option.
        if value is not None and (not value or value.startswith("-")):
            raise ValueError(f"{value!r}: a git remote URL or branch name")
        return value


class TrainingSettings(Strict):
    trainers: dict[str, TrainerSettings] = Field(
        default_factory=_one_local,
        description="where models are trained, by name (default: one local trainer)")
    retries: RetrySettings = Field(default_factory=RetrySettings)
    trainer: str | None = Field(default=None, description="the trainer runs use unless a "
                                "bot names one (default: the only one configured, else local)")
    lease_s: float = Field(default=900.0, gt=0, description="a run's claim lasts this long "
                           "past each step's start (the train step: its timeout more); a "
                           "claim past its lease is taken over by the next `fleet train run`")
    defaults: BotTrainingSettings = Field(default_factory=BotTrainingSettings)
    bots: dict[str, BotTrainingSettings] = Field(default_factory=dict, description="per bot")
    publish: PublishSettings = Field(default_factory=PublishSettings)

    @field_validator("trainers")
    @classmethod
    def _names(cls, trainers: dict[str, Any]) -> dict[str, Any]:
        for name in trainers:
            if not TRAINER_NAME.match(name):
                raise ValueError(f"trainer name {name!r}: lowercase letters, digits, - and _")
        return trainers

    @model_validator(mode="after")
    def _known_trainers(self) -> TrainingSettings:
        named = [("training.trainer", self.trainer)] + [
            (f"training.bots.{bot}.trainer", s.trainer) for bot, s in self.bots.items()]
        for where, name in named:
            if name is not None and name not in self.trainers:
                raise ValueError(f"{where} {name!r} is not in training.trainers "
                                 f"({', '.join(sorted(self.trainers)) or 'none'})")
        return self

    def for_bot(self, bot: str) -> BotTrainingSettings:
        return self.bots.get(bot, self.defaults)

    def trainer_for(self, bot: str) -> str:
        """The trainer name a bot's runs use (its own, training.trainer, the only one)."""
        chosen = self.for_bot(bot).trainer or self.trainer
        if chosen is not None:
            return chosen
        if len(self.trainers) == 1:
            return next(iter(self.trainers))
        return "local"


def parse_training_settings(raw: object, where: str = "training") -> TrainingSettings:
    """The `training:` mapping, or ConfigError naming the first bad key and the fix."""
    try:
        return TrainingSettings.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{where}.{key}: {error['msg']}" if key else
                          f"{where}: {error['msg']}") from None
