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

Not part of FleetConfig yet: the pipeline reads it with `parse_training_settings` until
`fleet train` lands. Nothing here connects anywhere; the pipeline's trainers do.
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


class TrainingSettings(Strict):
    trainers: dict[str, TrainerSettings] = Field(
        default_factory=_one_local,
        description="where models are trained, by name (default: one local trainer)")
    retries: RetrySettings = Field(default_factory=RetrySettings)

    @field_validator("trainers")
    @classmethod
    def _names(cls, trainers: dict[str, Any]) -> dict[str, Any]:
        for name in trainers:
            if not TRAINER_NAME.match(name):
                raise ValueError(f"trainer name {name!r}: lowercase letters, digits, - and _")
        return trainers


def parse_training_settings(raw: object, where: str = "training") -> TrainingSettings:
    """The `training:` mapping, or ConfigError naming the first bad key and the fix."""
    try:
        return TrainingSettings.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"{where}.{key}: {error['msg']}" if key else
                          f"{where}: {error['msg']}") from None
