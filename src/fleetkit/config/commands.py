"""Which command lines a scheduled job or a market-hours service may run: checked when the
config is loaded, so `fleet up`, `fleet jobs`, the scheduler and every other command refuse
the same lines with the same words."""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence

from fleetkit.config.models import FleetConfig, JobSettings, ServiceSettings
from fleetkit.core.errors import ConfigError

# The `fleet` command's own commands (tests/unit/config/test_job_commands.py holds this
# list equal to the CLI's). The config sits below the CLI, so it cannot ask the CLI.
FLEET_COMMANDS = frozenset({
    "backtest", "bot", "broker", "calendar", "dashboard", "data", "db", "deploy", "events",
    "exchange", "halt", "init", "jobs", "metrics", "ml", "model", "monitor", "notify",
    "reconcile", "resume", "scheduler", "services", "status", "strategies", "train", "up",
})
# Supervisors: they never return, and a scheduler must not start a scheduler.
SUPERVISORS = ("up", "scheduler")

# Names of the in-process job kinds plugins register (runtime.scheduler.register_job_kind
# declares each here); a job whose first word names one runs in the scheduler's process.
_JOB_KINDS: set[str] = set()


def declare_job_kind(name: str) -> None:
    _JOB_KINDS.add(name)


def check_commands(config: FleetConfig, source: str) -> None:
    """ConfigError naming the first job or service whose command cannot run."""
    check_job_commands(config.jobs, source)
    check_service_commands(config.services, source)


def check_job_commands(jobs: Sequence[JobSettings], source: str) -> None:
    """Each job's first word must be a fleet command that finishes or a registered kind."""
    for job in jobs:
        _check(f"{source}: job {job.name}", job.command, _JOB_KINDS,
               "runs until stopped and cannot be a job — schedule a command that finishes, "
               'e.g. "reconcile --all"', "a fleet command or a registered job kind")


def check_service_commands(services: Sequence[ServiceSettings], source: str) -> None:
    """Each service's first word must be a fleet command that is not itself a supervisor."""
    for service in services:
        _check(f"{source}: service {service.name}", service.command, (),
               "cannot run as a market-hours service — name the command the service should "
               'run, e.g. "metrics serve"', "a fleet command")


def _check(who: str, command: str, kinds: Collection[str], not_here: str,
           expected: str) -> None:
    word = shlex.split(command)[0]  # the models have checked that it splits into words
    if word in kinds:
        return
    if word in SUPERVISORS:
        raise ConfigError(f"{who}: `fleet {word}` {not_here}")
    if word not in FLEET_COMMANDS:
        known = ", ".join(sorted(FLEET_COMMANDS.difference(SUPERVISORS)))
        raise ConfigError(f"{who}: {word!r} is not {expected} (commands: {known})")
