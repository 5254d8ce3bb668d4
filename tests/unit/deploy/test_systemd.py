"""`fleet deploy systemd`: units systemd accepts, with restart, limits and hardening, ordered
after the database and the migration; each bot connecting as its own database role with a
password only its unit gets; env files per bot; timers for scheduled jobs; an install script
that does nothing on a dry run; the same bytes for the same config."""

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
from fleetkit.core.errors import ConfigError
from fleetkit.deploy.files import write_bundle
from fleetkit.deploy.spec import DbRoles
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


def values(text: str, key: str) -> list[str]:
    """Every value of a key systemd reads as a list (Environment=, LoadCredential= ...)."""
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


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
        "fleet-roles.service",
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
    assert "FLEET_HOME=/var/lib/fleet" in values(text, "Environment")[0]
    assert values(text, "EnvironmentFile") == ["-/etc/fleet/fleet.env", "/etc/fleet/bots/%i.env"]
    for key in ("After", "Wants"):
        assert {"postgresql.service", "fleet-migrate.service", "fleet-roles.service"} <= set(
            unit["Unit"][key].split())


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
    assert values(generated["paper-bot@.service"], "LoadCredential") == [
        "db:/etc/paper/db/fleet_bot_%i.password"]


def test_each_bot_unit_gets_only_its_own_password_as_a_credential(demo: LoadedConfig) -> None:
    text = units(demo)["fleet-bot@.service"]
    # systemd reads the root-only file and hands this instance a private copy: no bot, and
    # no other unit, can read another bot's password.
    assert values(text, "LoadCredential") == ["db:/etc/fleet/db/fleet_bot_%i.password"]
    assert "FLEET_DB_PASSWORD_FILE=%d/db" in values(text, "Environment")
    for name, other in units(demo).items():
        if name not in ("fleet-bot@.service", "fleet-roles.service"):
            assert "fleet_bot_" not in other, name


def test_the_roles_one_shot_runs_after_migrations_with_every_password(
        demo: LoadedConfig) -> None:
    text = units(demo)["fleet-roles.service"]
    unit = parse(text)
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    assert service["RemainAfterExit"] == "yes"
    assert service["User"] == "fleet"
    assert service["ExecStart"] == ("/opt/fleetkit/bin/fleet db roles --passwords-from %d "
                                    "--role-prefix fleet_bot_ --reader-role fleet_reader_login")
    roles = [f"fleet_bot_{b.name}" for b in demo.config.bots] + ["fleet_reader_login"]
    assert values(text, "LoadCredential") == [
        f"{role}.password:/etc/fleet/db/{role}.password" for role in roles]
    for key in ("After", "Wants"):
        assert "fleet-migrate.service" in unit["Unit"][key].split()
    assert values(text, "EnvironmentFile") == ["-/etc/fleet/fleet.env"]  # as the owner


def test_metrics_and_dashboard_connect_as_the_read_only_role(demo: LoadedConfig) -> None:
    for name in ("fleet-metrics.service", "fleet-dashboard.service"):
        text = units(demo)[name]
        assert values(text, "LoadCredential") == ["db:/etc/fleet/db/fleet_reader_login.password"]
        assert "FLEET_DB_PASSWORD_FILE=%d/db" in values(text, "Environment")
        assert values(text, "EnvironmentFile") == ["-/etc/fleet/fleet.env",
                                                   "/etc/fleet/reader.env"]
        assert "fleet-roles.service" in parse(text)["Unit"]["After"].split()
    for name in ("fleet-scheduler.service", "fleet-migrate.service", "fleet-broker.service",
                 "fleet-notifier.service"):
        assert values(units(demo)[name], "LoadCredential") == [], name  # the owner's


def files_of(loaded: LoadedConfig, options: SystemdOptions | None = None) -> dict[str, str]:
    return {f.path: f.content for f in systemd_bundle(loaded, options or SystemdOptions()).files}


def test_env_files_name_each_role_as_a_template_when_the_config_has_no_postgresql(
        demo: LoadedConfig) -> None:
    files = files_of(demo)
    text = files["bots/us-sma-jpm.env"]
    assert "# FLEET_DB_URL=postgresql://fleet_bot_us-sma-jpm@HOST:5432/fleet" in text
    assert "/etc/fleet/db/fleet_bot_us-sma-jpm.password" in text
    assert not [line for line in text.splitlines() if line.startswith("FLEET_DB_URL=")]
    assert "# FLEET_DB_URL=postgresql://fleet_reader_login@HOST:5432/fleet" in \
        files["reader.env"]


def test_env_files_are_filled_in_from_the_configs_postgresql_server(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text('database: {url: "postgresql+psycopg://fleet@db.internal:6432/trading'
                    '?sslmode=require", password_file: /etc/fleet/owner.password}\n'
                    "bots:\n  - {name: a-1, market: NYSE, symbols: [JPM], strategy: sma_cross}\n",
                    encoding="utf-8")
    files = files_of(load_config(path))
    assert values(files["bots/a-1.env"], "FLEET_DB_URL") == [
        "postgresql+psycopg://fleet_bot_a-1@db.internal:6432/trading?sslmode=require"]
    assert values(files["reader.env"], "FLEET_DB_URL") == [
        "postgresql+psycopg://fleet_reader_login@db.internal:6432/trading?sslmode=require"]
    assert "owner.password" not in files["bots/a-1.env"]


def test_a_bots_env_file_wins_over_the_owner_in_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `fleet bot run` connects with under the unit: the runtime works it out."""
    from fleetkit.runtime.wiring import database_url

    path = tmp_path / "fleet.yaml"
    owner = tmp_path / "owner.password"
    owner.write_text("owner-pass\n", encoding="utf-8")
    path.write_text(f'database: {{url: "postgresql://fleet@db:5432/fleet", password_file: '
                    f'{owner}}}\n'
                    "bots:\n  - {name: a, market: NYSE, symbols: [JPM], strategy: sma_cross}\n",
                    encoding="utf-8")
    loaded = load_config(path)
    credential = tmp_path / "db"  # what LoadCredential= puts at %d/db
    credential.write_text("bot-pass\n", encoding="utf-8")
    (url,) = values(files_of(loaded)["bots/a.env"], "FLEET_DB_URL")
    monkeypatch.setenv("FLEET_DB_URL", url)
    monkeypatch.setenv("FLEET_DB_PASSWORD_FILE", str(credential))
    assert database_url(loaded) == "postgresql://fleet_bot_a:bot-pass@db:5432/fleet"


def test_bad_role_names_are_refused_before_anything_is_written(demo: LoadedConfig) -> None:
    with pytest.raises(ConfigError, match="can't be a database role name"):
        systemd_bundle(demo, SystemdOptions(roles=DbRoles(bot_prefix="Bad ")))
    with pytest.raises(ConfigError, match="also a bot's role"):
        systemd_bundle(demo, SystemdOptions(roles=DbRoles(reader="fleet_bot_us-sma-jpm")))


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
    assert "+ install -m 0600 reader.env /etc/fleet/reader.env" in result.stdout
    assert "units/fleet-bot@.service" in result.stdout
    assert "/etc/systemd/system/\n" in result.stdout
    assert "fleet-bot@$bot.service" in result.stdout
    # Every role's password file, root's only, created where missing (here: all of them).
    assert "+ install -d -m 0700 /etc/fleet/db\n" in result.stdout
    for role in [*(f"fleet_bot_{b.name}" for b in demo.config.bots), "fleet_reader_login"]:
        assert f"+ create /etc/fleet/db/{role}.password (a random password, mode 0600)" \
            in result.stdout
    assert f"Database passwords: {len(demo.config.bots) + 1} new in /etc/fleet/db" \
        in result.stdout


def test_the_install_step_creates_missing_password_files_root_only_and_keeps_the_rest(
        tmp_path: Path) -> None:
    """The password step of install.sh, run for real against a scratch directory."""
    from fleetkit.deploy.passwords import install_password_files

    folder = tmp_path / "db"
    script = tmp_path / "step.sh"
    script.write_text("\n".join(["set -eu", 'run() { echo "+ $*"; "$@"; }',
                                 *install_password_files(str(folder), ("fleet_bot_a", "r"))])
                      + "\n", encoding="utf-8")
    for run in range(2):
        result = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert f"Database passwords: {2 if run == 0 else 0} new" in result.stdout
        if run == 0:
            first = {p.name: p.read_text() for p in folder.iterdir()}
            (folder / "r.password").write_text("copied-from-the-first-host\n")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "fleet_bot_a.password").stat().st_mode) == 0o600
    assert (folder / "fleet_bot_a.password").read_text() == first["fleet_bot_a.password"]
    assert (folder / "r.password").read_text() == "copied-from-the-first-host\n"
    assert len(first["fleet_bot_a.password"].strip()) == 64


def test_the_same_config_gives_byte_identical_units(demo: LoadedConfig) -> None:
    first = systemd_bundle(demo, SystemdOptions())
    again = systemd_bundle(load_config(BUILTIN_DEMO), SystemdOptions())
    assert first == again


def test_cron_jobs_get_timers_and_the_scheduler_runs_only_what_has_none(
        demo: LoadedConfig, tmp_path: Path) -> None:
    def files(text: str) -> dict[str, str]:
        path = tmp_path / "fleet.yaml"
        path.write_text('bots:\n  - {name: a, market: NYSE, symbols: [JPM], '
                        'strategy: sma_cross}\n' + text, encoding="utf-8")
        bundle = systemd_bundle(load_config(path), SystemdOptions(fleet_bin=fleet_bin()))
        return {f.path: f.content for f in bundle.files}

    without = files("")
    assert "no enabled jobs" in without["units/fleet-scheduler.service"]
    assert "fleet-scheduler.service" not in without["install.sh"]
    # The demo runs market-hours services: its scheduler is installed and enabled.
    demo_files = {f.path: f.content for f in systemd_bundle(demo, SystemdOptions()).files}
    assert "fleet-scheduler.service" in demo_files["install.sh"]

    cron_only = files('jobs:\n  - {name: nightly_check, command: "reconcile --all", '
                      'cron: "30 2 * * 1-5", timezone: Asia/Kolkata}\n')
    timer = parse(cron_only["units/fleet-job-nightly_check.timer"])["Timer"]
    assert timer["OnCalendar"] == "Mon,Tue,Wed,Thu,Fri *-*-* 02:30:00 Asia/Kolkata"
    assert (timer["Persistent"], timer["AccuracySec"]) == ("true", "1s")
    service = parse(cron_only["units/fleet-job-nightly_check.service"])["Service"]
    assert service["ExecStart"].endswith(" scheduler tick nightly_check")
    assert service["Type"] == "oneshot"
    assert "every job runs from its own timer" in cron_only["units/fleet-scheduler.service"]
    assert "fleet-job-nightly_check.timer" in cron_only["install.sh"]
    assert "fleet-scheduler.service" not in cron_only["install.sh"]

    mixed = files('jobs:\n  - {name: nightly, command: "reconcile --all", cron: "0 2 * * *"}\n'
                  '  - {name: at-open, command: "db current", when: {market: NYSE, at: open}}\n'
                  'services:\n  - {name: exporter, command: "metrics serve", market: NYSE}\n')
    assert "NOTE" not in mixed["units/fleet-scheduler.service"]
    assert "fleet-scheduler.service" in mixed["install.sh"]
    assert [p for p in mixed if p.endswith(".timer")] == ["units/fleet-job-nightly.timer"]
    if shutil.which("systemd-analyze") is not None:
        write_bundle(tmp_path / "out", systemd_bundle(
            load_config(tmp_path / "fleet.yaml"), SystemdOptions(fleet_bin=fleet_bin())))
        unit_dir = tmp_path / "out" / "units"
        paths = [str(p) for p in sorted(unit_dir.iterdir()) if "@" not in p.name]
        result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""
