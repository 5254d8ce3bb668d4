"""Job and service commands are checked once, when the config is loaded: whatever command
loads it — `fleet up`, `fleet jobs`, the scheduler — refuses the same lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from fleetkit.cli.app import app
from fleetkit.config.commands import FLEET_COMMANDS
from fleetkit.config.loader import load_config
from fleetkit.core.errors import ConfigError
from fleetkit.runtime.scheduler import JOB_KINDS, register_job_kind

BOT = '{name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}'


def write(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"bots: [{BOT}]\n{section}\n", encoding="utf-8")
    return path


def test_the_config_knows_exactly_the_clis_commands() -> None:
    commands = set(getattr(typer.main.get_command(app), "commands", {}))
    assert commands == FLEET_COMMANDS, "update config/commands.py FLEET_COMMANDS"


@pytest.mark.parametrize(("section", "expected"), [
    ('jobs: [{name: bad, command: "reconcil --all", cron: "0 2 * * *"}]',
     "job bad: 'reconcil' is not a fleet command or a registered job kind (commands: "),
    ('jobs: [{name: bad, command: "up", cron: "0 2 * * *"}]',
     "job bad: `fleet up` runs until stopped"),
    ('jobs: [{name: bad, command: "scheduler run", cron: "0 2 * * *", enabled: false}]',
     "job bad: `fleet scheduler` runs until stopped"),
    ('services: [{name: svc, command: "up", market: CRYPTO}]',
     "service svc: `fleet up` cannot run as a market-hours service"),
    ('services: [{name: svc, command: "metrix serve", market: CRYPTO}]',
     "service svc: 'metrix' is not a fleet command"),
])
def test_a_command_no_job_can_run_is_refused_when_the_config_is_loaded(
        tmp_path: Path, section: str, expected: str) -> None:
    path = write(tmp_path, section)
    with pytest.raises(ConfigError, match="^" + str(path).replace("\\", "\\\\")) as raised:
        load_config(path)
    assert expected in str(raised.value)


def test_fleet_commands_and_registered_job_kinds_are_accepted(tmp_path: Path) -> None:
    register_job_kind("archive-ticks", lambda call: "archived")
    try:
        loaded = load_config(write(tmp_path, """jobs:
  - {name: recon, command: "reconcile --all", cron: "0 * * * *"}
  - {name: archive, command: "archive-ticks --days 3", cron: "0 2 * * *"}
services: [{name: exporter, command: "metrics serve --port 9999", market: CRYPTO}]"""))
    finally:
        del JOB_KINDS["archive-ticks"]
    assert [job.name for job in loaded.config.jobs] == ["recon", "archive"]
