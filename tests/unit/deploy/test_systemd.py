"""`fleet deploy systemd`: units systemd accepts, with restart, limits and hardening, ordered
after the database and the migration; env files per bot; timers for scheduled jobs; an
install script that does nothing on a dry run; the same bytes for the same config."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit.config.loader import BUILTIN_DEMO, LoadedConfig, load_config
from fleetkit.deploy.files import write_bundle
from fleetkit.deploy.systemd import ScheduledJob, SystemdOptions, job_units, systemd_bundle

HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
             "ProtectHome": "yes"}


@pytest.fixture
def demo() -> LoadedConfig:
    return load_config(BUILTIN_DEMO)


def fleet_bin() -> str:
    """An executable that exists here: `systemd-analyze verify` checks ExecStart."""
    candidate = Path(sys.executable).parent / "fleet"
    return str(candidate if candidate.exists() else Path(sys.executable))


def units(loaded: LoadedConfig, options: SystemdOptions | None = None,
          jobs: tuple[ScheduledJob, ...] = ()) -> dict[str, str]:
    files = systemd_bundle(loaded, options or SystemdOptions(), jobs).files
    return {f.path.removeprefix("units/"): f.content for f in files
            if f.path.startswith("units/")}


def parse(text: str) -> configparser.ConfigParser:
    # strict=False: a unit may repeat a key (EnvironmentFile=); the last one wins here.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_the_generated_units_pass_systemd_analyze_verify(demo: LoadedConfig,
                                                         tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine: units checked by "
                    "parsing only")
    backup = ScheduledJob("backup", "*-*-* 02:30:00", ("db", "current"), "nightly backup")
    write_bundle(tmp_path, systemd_bundle(demo, SystemdOptions(fleet_bin=fleet_bin()),
                                          (backup,)))
    unit_dir = tmp_path / "units"
    names = sorted(p.name for p in unit_dir.iterdir())
    assert "fleet-backup.timer" in names
    # The template is checked through an instance, as systemd would load it.
    paths = [str(unit_dir / n) for n in names] + [str(unit_dir / "fleet-bot@us-sma-jpm.service")]
    result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # no unknown keys, no bad values, nothing ignored


def test_one_bot_template_and_a_unit_for_each_fleet_process_grouped_by_a_target(
        demo: LoadedConfig) -> None:
    assert set(units(demo)) == {
        "fleet-bot@.service", "fleet-broker.service", "fleet-migrate.service",
        "fleet-scheduler.service", "fleet-metrics.service", "fleet-notifier.service",
        "fleet-dashboard.service",
        "fleet.target"}
    target = parse(units(demo)["fleet.target"])
    assert target["Install"]["WantedBy"] == "multi-user.target"
    for name, text in units(demo).items():
        if name.endswith(".service"):
            unit = parse(text)
            assert unit["Install"]["WantedBy"] == "fleet.target", name
            assert unit["Unit"]["PartOf"] == "fleet.target", name


def test_a_bot_restarts_on_failure_within_limits_and_hardened(demo: LoadedConfig) -> None:
    text = units(demo)["fleet-bot@.service"]
    unit = parse(text)
    service = unit["Service"]
    assert service["ExecStart"] == "/opt/fleetkit/bin/fleet bot run %i"
    assert service["User"] == "fleet"
    assert service["Restart"] == "on-failure"
    assert int(service["RestartSec"]) > 0
    assert service["MemoryMax"] and service["CPUQuota"].endswith("%")
    assert int(service["TasksMax"]) > 0
    assert {k: service[k] for k in HARDENING} == HARDENING
    assert service["ReadWritePaths"] == "/var/lib/fleet"
    assert "FLEET_HOME=/var/lib/fleet" in service["Environment"]
    env_files = [line.split("=", 1)[1] for line in text.splitlines()
                 if line.startswith("EnvironmentFile=")]
    assert env_files == ["-/etc/fleet/fleet.env", "/etc/fleet/bots/%i.env"]
    for key in ("After", "Wants"):
        assert {"postgresql.service", "fleet-migrate.service"} <= set(unit["Unit"][key].split())


def test_migrations_are_a_one_shot_the_others_wait_for(demo: LoadedConfig) -> None:
    migrate = parse(units(demo)["fleet-migrate.service"])["Service"]
    assert migrate["Type"] == "oneshot"
    assert migrate["RemainAfterExit"] == "yes"
    assert migrate["ExecStart"].endswith(" db upgrade")
    assert "Restart" not in migrate
    broker = parse(units(demo)["fleet-broker.service"])
    assert broker["Service"]["ExecStart"].endswith(" broker serve")
    assert "fleet-migrate.service" in broker["Unit"]["After"].split()


def test_the_dashboard_binds_the_loopback_address_only(demo: LoadedConfig) -> None:
    dashboard = parse(units(demo)["fleet-dashboard.service"])["Service"]
    assert "--host 127.0.0.1" in dashboard["ExecStart"]
    assert "0.0.0.0" not in "".join(units(demo).values())  # noqa: S104


def test_prefix_user_home_and_executable_are_the_ones_asked_for(demo: LoadedConfig) -> None:
    options = SystemdOptions(prefix="paper", user="trader", home="/srv/paper",
                             fleet_bin="/usr/local/bin/fleet")
    generated = units(demo, options)
    assert "paper-bot@.service" in generated and "paper.target" in generated
    bot = parse(generated["paper-bot@.service"])
    assert bot["Service"]["User"] == "trader"
    assert bot["Service"]["ReadWritePaths"] == "/srv/paper"
    assert bot["Service"]["ExecStart"] == "/usr/local/bin/fleet bot run %i"
    assert "/etc/paper/bots/%i.env" in generated["paper-bot@.service"]
    assert bot["Install"]["WantedBy"] == "paper.target"


@pytest.mark.parametrize("kwargs", [{"prefix": "Fleet"}, {"prefix": "a b"}, {"user": "root x"},
                                    {"home": "var/lib"}, {"home": "/a b"}, {"home": "/a/../etc"},
                                    {"fleet_bin": "fleet"}])
def test_options_that_would_break_a_unit_file_are_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="--"):
        SystemdOptions(**kwargs)


def test_no_timers_without_scheduled_jobs(demo: LoadedConfig) -> None:
    assert not [name for name in units(demo) if name.endswith(".timer")]


def test_a_scheduled_job_is_a_persistent_timer_and_a_one_shot_service() -> None:
    job = ScheduledJob("backup", "daily", ("db", "current"), "nightly backup")
    files = {f.path: f.content for f in job_units(SystemdOptions(), job)}
    timer = parse(files["units/fleet-backup.timer"])
    assert timer["Timer"]["OnCalendar"] == "daily"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "fleet-backup.service"
    service = parse(files["units/fleet-backup.service"])["Service"]
    assert service["Type"] == "oneshot"
    assert "RemainAfterExit" not in service  # or the timer could never start it again
    assert service["ExecStart"] == "/opt/fleetkit/bin/fleet db current"


def test_a_job_with_a_bad_name_or_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="job name"):
        ScheduledJob("Backup!", "daily", (), "x")
    with pytest.raises(ValueError, match="calendar"):
        ScheduledJob("backup", "daily\nExecStart=/bin/sh", (), "x")


def test_every_bot_gets_a_private_env_file(demo: LoadedConfig, tmp_path: Path) -> None:
    write_bundle(tmp_path, systemd_bundle(demo, SystemdOptions()))
    env_files = sorted((tmp_path / "bots").iterdir())
    assert sorted(p.stem for p in env_files) == sorted(b.name for b in demo.config.bots)
    for path in [*env_files, tmp_path / "fleet.env"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "fleet.yaml").read_text(encoding="utf-8").startswith(
        "# fleetkit demo fleet")


def test_the_install_script_only_prints_on_a_dry_run(demo: LoadedConfig,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, systemd_bundle(demo, SystemdOptions()))
    script = out / "install.sh"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    # Stand-ins for the commands that change the system: a dry run must call none of them.
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("install", "systemctl", "useradd"):
        (fake / name).write_text(f"#!/bin/sh\necho {name} >> {tmp_path}/called\n",
                                 encoding="utf-8")
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DRY_RUN": "1"}
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "called").exists()
    assert "+ install -m 0600 fleet.env /etc/fleet/fleet.env" in result.stdout
    assert "units/fleet-bot@.service" in result.stdout
    assert "/etc/systemd/system/\n" in result.stdout
    assert "fleet-bot@$bot.service" in result.stdout


def test_the_same_config_gives_byte_identical_units(demo: LoadedConfig) -> None:
    first = systemd_bundle(demo, SystemdOptions())
    again = systemd_bundle(load_config(BUILTIN_DEMO), SystemdOptions())
    assert first == again


def test_the_scheduler_is_enabled_only_when_the_config_has_jobs(demo: LoadedConfig,
                                                                tmp_path: Path) -> None:
    def files(loaded: LoadedConfig) -> dict[str, str]:
        return {f.path: f.content for f in systemd_bundle(loaded, SystemdOptions()).files}

    without = files(demo)
    assert "no enabled jobs" in without["units/fleet-scheduler.service"]
    assert "fleet-scheduler.service" not in without["install.sh"]
    path = tmp_path / "fleet.yaml"
    path.write_text('bots:\n  - {name: a, market: NYSE, symbols: [JPM], strategy: sma_cross}\n'
                    'jobs:\n  - {name: nightly, command: "reconcile --all", '
                    'cron: "0 2 * * *"}\n', encoding="utf-8")
    with_jobs = files(load_config(path))
    assert "NOTE" not in with_jobs["units/fleet-scheduler.service"]
    assert "enable --now fleet-migrate.service fleet-broker.service fleet-scheduler.service" \
        in with_jobs["install.sh"]
    assert not [p for p in with_jobs if p.endswith(".timer")]  # the scheduler runs the jobs
