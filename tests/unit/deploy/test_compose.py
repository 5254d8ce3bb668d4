"""`fleet deploy compose`: the generated project is valid Compose, runs what the fleet needs in
the right order, publishes nothing but a loopback dashboard, keeps secrets out of every file,
connects each bot as its own database role with only its own password, and is the same bytes
for the same config. Also: how generated files are written."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.config.loader import BUILTIN_DEMO, LoadedConfig, load_config, parse_config
from fleetkit.core.errors import ConfigError
from fleetkit.deploy.compose import compose_bundle
from fleetkit.deploy.files import (
    MANIFEST,
    Bundle,
    GeneratedFile,
    OutputDirError,
    write_bundle,
)
from fleetkit.deploy.spec import LIVE_CONFIRM_ENV, DbRoles, fleet_processes

DATA = Path(__file__).resolve().parents[2] / "data"
SCHEMA = DATA / "compose-spec" / "compose-spec.json"
MIXED = """
fleet: {name: mixed}
exchanges:
  realex: {ccxt_id: binance, credentials: {api_key_env: REAL_KEY, secret_env: REAL_SECRET}}
  testex: {ccxt_id: binance, testnet: true,
           credentials: {api_key_env: TEST_KEY, secret_env: TEST_SECRET,
                         password_file: /run/keys/test-pass}}
live: {enabled: true}
bots:
  - {name: sand, market: NYSE, symbols: [JPM], strategy: sma_cross}
  - {name: pap, mode: paper, exchange: realex, market: CRYPTO, symbols: [BTC/USDT],
     strategy: sma_cross}
  - {name: real, mode: live, exchange: realex, market: CRYPTO, symbols: [ETH/USDT],
     strategy: sma_cross}
  - {name: rehearse, mode: live, exchange: testex, market: CRYPTO, symbols: [SOL/USDT],
     strategy: sma_cross}
"""


@pytest.fixture
def demo() -> LoadedConfig:
    return load_config(BUILTIN_DEMO)


@pytest.fixture
def mixed(tmp_path: Path) -> LoadedConfig:
    path = tmp_path / "fleet.yaml"
    path.write_text(MIXED, encoding="utf-8")
    return load_config(path)


def generated(loaded: LoadedConfig, **kwargs: Any) -> dict[str, str]:
    return {f.path: f.content for f in compose_bundle(loaded, **kwargs).files}


def compose_of(loaded: LoadedConfig) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(generated(loaded)["docker-compose.yml"])
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


@pytest.mark.parametrize("which", ["demo", "mixed"])
def test_the_compose_file_is_valid_against_the_compose_specification(
        which: str, request: pytest.FixtureRequest) -> None:
    loaded: LoadedConfig = request.getfixturevalue(which)
    assert schema_errors(compose_of(loaded)) == []


def test_the_schema_check_would_catch_a_mistake(demo: LoadedConfig) -> None:
    document = compose_of(demo)
    document["services"]["migrate"]["depends_on"]["postgres"]["condition"] = "service_happy"
    document["services"]["postgres"]["helthcheck"] = {}
    errors = schema_errors(document)
    assert any(e.startswith("services/postgres:") and "helthcheck" in e for e in errors)
    assert any(e.startswith("services/migrate/depends_on") for e in errors)


def test_the_demo_fleet_gets_one_service_per_bot_plus_the_fleet_processes(
        demo: LoadedConfig) -> None:
    services = compose_of(demo)["services"]
    bots = {name for name in services if name.startswith("bot-")}
    assert bots == {f"bot-{bot.name}" for bot in demo.config.bots}
    assert len(bots) == 37
    assert set(services) - bots == {"postgres", "migrate", "roles", "broker", "scheduler",
                                    "metrics", "notifier", "dashboard"}


def test_postgres_keeps_its_data_in_a_named_volume_and_reports_health_with_pg_isready(
        demo: LoadedConfig) -> None:
    document = compose_of(demo)
    postgres = document["services"]["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in document["volumes"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert document["secrets"]["db_password"] == {"file": "./secrets/db_password"}


def test_migrations_run_once_after_the_database_is_healthy(demo: LoadedConfig) -> None:
    migrate = compose_of(demo)["services"]["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_every_bot_restarts_and_waits_for_a_healthy_database_and_finished_migrations(
        demo: LoadedConfig) -> None:
    services = compose_of(demo)["services"]
    for bot in demo.config.bots:
        service = services[f"bot-{bot.name}"]
        assert service["command"] == ["bot", "run", bot.name]
        assert service["restart"] == "unless-stopped"
        assert service["env_file"] == [f"env/{bot.name}.env"]
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
            "roles": {"condition": "service_completed_successfully"},
            "broker": {"condition": "service_healthy"}}
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


def test_sandbox_bots_wait_for_the_broker_and_exchange_bots_get_a_way_out(
        mixed: LoadedConfig) -> None:
    services = compose_of(mixed)["services"]
    assert "broker" in services["bot-sand"]["depends_on"]
    assert services["bot-sand"]["networks"] == ["internal"]
    for name in ("pap", "real", "rehearse"):
        assert "broker" not in services[f"bot-{name}"]["depends_on"]
        assert services[f"bot-{name}"]["networks"] == ["internal", "outside"]


def test_the_broker_is_healthchecked_and_reachable_only_inside_the_project(
        demo: LoadedConfig) -> None:
    document = compose_of(demo)
    broker = document["services"]["broker"]
    assert broker["command"] == ["broker", "serve", "--host", "0.0.0.0"]  # noqa: S104
    assert "/v1/health" in " ".join(broker["healthcheck"]["test"])
    assert "ports" not in broker
    assert broker["networks"] == ["internal"]
    assert document["networks"]["internal"] == {"internal": True}


def test_only_the_dashboard_and_metrics_publish_a_port_and_only_on_the_loopback_address(
        demo: LoadedConfig) -> None:
    services = compose_of(demo)["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"dashboard": ["127.0.0.1:8501:8501"],
                         "metrics": ["127.0.0.1:9108:9108"]}


def test_every_process_runs_a_real_command_and_only_those_turned_off_have_a_profile(
        demo: LoadedConfig) -> None:
    import typer.main

    from fleetkit.cli.app import app

    group: Any = typer.main.get_command(app)

    def exists(args: tuple[str, ...]) -> bool:
        node = group
        for word in args:
            if word.startswith("-"):
                break
            node = getattr(node, "commands", {}).get(word)
            if node is None:
                return False
        return True

    services = compose_of(demo)["services"]
    every = "0.0.0.0"  # noqa: S104 - what compose binds inside each container
    for process in fleet_processes(demo.config, DbRoles(), "/run/secrets",
                                   dashboard_host=every):
        assert exists(process.args), process.args
        assert ("profiles" in services[process.name]) is (process.off is not None)


def test_the_scheduler_starts_by_default_only_when_the_config_has_jobs(
        demo: LoadedConfig, tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text(MIXED, encoding="utf-8")
    assert compose_of(load_config(bare))["services"]["scheduler"]["profiles"] == ["pending"]
    # The demo has jobs and market-hours services: its scheduler runs.
    assert "profiles" not in compose_of(demo)["services"]["scheduler"]
    path = tmp_path / "fleet.yaml"
    path.write_text(MIXED + 'jobs:\n  - {name: nightly, command: "reconcile --all", '
                    'cron: "0 2 * * *"}\n', encoding="utf-8")
    scheduler = compose_of(load_config(path))["services"]["scheduler"]
    assert "profiles" not in scheduler
    assert scheduler["command"] == ["scheduler", "run"]
    assert scheduler["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_the_generated_config_points_at_the_compose_services_and_keeps_every_bot(
        demo: LoadedConfig) -> None:
    copy = parse_config(generated(demo)["config/fleet.yaml"], "copy")
    assert copy.database.url == "postgresql://fleet@postgres:5432/fleet"
    assert copy.database.password_file == "/run/secrets/db_password"
    assert copy.sandbox.base_url == "http://broker:8765"
    assert copy.bots == demo.config.bots
    assert copy.risk == demo.config.risk and copy.runtime == demo.config.runtime


# --- each bot its own database role ----------------------------------------------------------

OWNER_SECRET = "db_password"  # the owner's secret, by name


def secrets_of(service: dict[str, Any]) -> list[str]:
    """The secrets a service is given, by name, whichever syntax names them."""
    return [s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])]


def resolved(value: str) -> str:
    """A Compose value with `${NAME:-default}` as Compose resolves it with nothing set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_each_bot_gets_only_its_own_password_never_the_owners(mixed: LoadedConfig) -> None:
    document = compose_of(mixed)
    services = document["services"]
    for bot in mixed.config.bots:
        role = f"fleet_bot_{bot.name}"
        service = services[f"bot-{bot.name}"]
        assert secrets_of(service) == [role]
        assert document["secrets"][role] == {"file": f"./secrets/{role}.password"}
        holders = {name for name, s in services.items() if role in secrets_of(s)}
        assert holders == {f"bot-{bot.name}", "roles"}  # and the one-shot that sets it
    assert "secrets" not in document["x-fleet-service"]  # the anchor gives none to anyone


def test_each_bot_connects_as_its_role_with_the_password_from_its_secret(
        mixed: LoadedConfig) -> None:
    for bot in mixed.config.bots:
        environment = compose_of(mixed)["services"][f"bot-{bot.name}"]["environment"]
        role = f"fleet_bot_{bot.name}"
        assert resolved(environment["FLEET_DB_URL"]) == f"postgresql://{role}@postgres:5432/fleet"
        assert environment["FLEET_DB_PASSWORD_FILE"] == f"/run/secrets/{role}"
        # Its own environment replaces the anchor's (a merge key is shallow): all of it is here.
        assert environment["FLEET_CONFIG"] == "/etc/fleet/fleet.yaml"
        assert environment["FLEET_LOG_FORMAT"] == "json"


def test_a_bots_environment_wins_over_the_owner_url_in_the_config_copy(
        mixed: LoadedConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `fleet bot run` will connect with, worked out by the runtime itself."""
    from fleetkit.runtime.wiring import database_url

    files = generated(mixed)
    environment = yaml.safe_load(files["docker-compose.yml"])["services"]["bot-real"][
        "environment"]
    secret = tmp_path / "fleet_bot_real"
    secret.write_text("bot-pass\n", encoding="utf-8")
    monkeypatch.setenv("FLEET_DB_URL", resolved(environment["FLEET_DB_URL"]))
    monkeypatch.setenv("FLEET_DB_PASSWORD_FILE", str(secret))
    copy = LoadedConfig(parse_config(files["config/fleet.yaml"], "copy"), "copy", tmp_path)
    assert copy.config.database.password_file == "/run/secrets/db_password"  # not read
    assert database_url(copy) == "postgresql://fleet_bot_real:bot-pass@postgres:5432/fleet"


def test_the_owner_password_goes_only_to_what_connects_as_the_owner(
        demo: LoadedConfig) -> None:
    services = compose_of(demo)["services"]
    owners = {name for name, s in services.items() if OWNER_SECRET in secrets_of(s)}
    assert owners == {"postgres", "migrate", "roles", "broker", "scheduler", "notifier"}


def test_metrics_and_dashboard_read_as_the_read_only_role(demo: LoadedConfig) -> None:
    document = compose_of(demo)
    assert document["secrets"]["fleet_reader_login"] == {
        "file": "./secrets/fleet_reader_login.password"}
    for name in ("metrics", "dashboard"):
        service = document["services"][name]
        assert secrets_of(service) == ["fleet_reader_login"]
        assert resolved(service["environment"]["FLEET_DB_URL"]) == \
            "postgresql://fleet_reader_login@postgres:5432/fleet"
        assert service["environment"]["FLEET_DB_PASSWORD_FILE"] == \
            "/run/secrets/fleet_reader_login"
        assert service["depends_on"]["roles"] == {"condition": "service_completed_successfully"}


def test_roles_run_once_after_migrations_with_every_password_where_the_command_reads_it(
        mixed: LoadedConfig) -> None:
    services = compose_of(mixed)["services"]
    roles = services["roles"]
    assert roles["command"] == ["db", "roles", "--passwords-from", "/run/secrets",
                                "--role-prefix", "fleet_bot_", "--reader-role",
                                "fleet_reader_login"]
    assert roles["restart"] == "no"
    assert roles["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                   "migrate": {"condition": "service_completed_successfully"}}
    mounted = {s["source"]: s["target"] for s in roles["secrets"] if isinstance(s, dict)}
    expected = [*(f"fleet_bot_{b.name}" for b in mixed.config.bots), "fleet_reader_login"]
    assert mounted == {role: f"/run/secrets/{role}.password" for role in expected}
    assert OWNER_SECRET in roles["secrets"]  # it connects as the owner
    assert "roles" not in services["migrate"]["depends_on"]
    assert "roles" not in services["scheduler"]["depends_on"]


def test_role_and_secret_names_follow_the_options_and_bad_ones_are_refused(
        mixed: LoadedConfig) -> None:
    roles = DbRoles(bot_prefix="paper_", reader="paper_reader")
    document = yaml.safe_load(generated(mixed, roles=roles)["docker-compose.yml"])
    assert secrets_of(document["services"]["bot-real"]) == ["paper_real"]
    assert "paper_reader" in document["secrets"]
    assert schema_errors(document) == []
    with pytest.raises(ConfigError, match="can't be a database role name"):
        compose_bundle(mixed, roles=DbRoles(bot_prefix="Fleet "))
    with pytest.raises(ConfigError, match="also a bot's role"):
        compose_bundle(mixed, roles=DbRoles(reader="fleet_bot_real"))
    with pytest.raises(ConfigError, match="owner's secret"):
        compose_bundle(mixed, roles=DbRoles(reader="db_password"))


def test_bot_names_with_digits_and_dashes_make_valid_roles_and_secrets(
        tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("bots:\n  - {name: 1st-bot_x, market: NYSE, symbols: [JPM], "
                    "strategy: sma_cross}\n", encoding="utf-8")
    document = compose_of(load_config(path))
    assert secrets_of(document["services"]["bot-1st-bot_x"]) == ["fleet_bot_1st-bot_x"]
    assert schema_errors(document) == []


def run_secrets_script(out: Path, path: str) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("sh")
    assert shell is not None
    return subprocess.run([shell, str(out / "secrets.sh")], env={"PATH": path},
                          capture_output=True, text=True, timeout=60, check=False)


def test_secrets_sh_creates_every_missing_password_file_and_never_replaces_one(
        mixed: LoadedConfig, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, compose_bundle(mixed))
    assert stat.S_IMODE((out / "secrets.sh").stat().st_mode) == 0o755
    (out / "secrets").mkdir()
    (out / "secrets" / "fleet_bot_sand.password").write_text("mine\n", encoding="utf-8")
    result = run_secrets_script(out, os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    names = [OWNER_SECRET, *(f"fleet_bot_{b.name}.password" for b in mixed.config.bots
                             if b.name != "sand"), "fleet_reader_login.password"]
    assert stat.S_IMODE((out / "secrets").stat().st_mode) == 0o700
    for name in names:
        path = out / "secrets" / name
        assert re.fullmatch(r"[0-9a-f]{64}\n", path.read_text(encoding="utf-8")), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the containers' users read it
    values = {name: (out / "secrets" / name).read_text() for name in names}
    assert len(set(values.values())) == len(names)
    assert (out / "secrets" / "fleet_bot_sand.password").read_text() == "mine\n"
    again = run_secrets_script(out, os.environ["PATH"])
    assert again.returncode == 0 and "0 password files created" in again.stdout
    assert {name: (out / "secrets" / name).read_text() for name in names} == values
    # The operator's secrets/ never blocks regenerating the project.
    write_bundle(out, compose_bundle(mixed))


def test_secrets_sh_needs_no_openssl(mixed: LoadedConfig, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, compose_bundle(mixed))
    tools = tmp_path / "bin"  # the script's commands, and no openssl among them
    tools.mkdir()
    for name in ("dirname", "mkdir", "chmod", "od", "tr"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    result = run_secrets_script(out, str(tools))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", (out / "secrets" / OWNER_SECRET).read_text())


def test_env_files_name_what_each_bot_needs_and_leave_every_value_empty(
        mixed: LoadedConfig) -> None:
    files = generated(mixed)
    assignments = {name: re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", files[f"env/{name}.env"],
                                    re.MULTILINE)
                   for name in ("sand", "pap", "real", "rehearse")}
    assert assignments["sand"] == []
    assert assignments["pap"] == []  # public prices only: no key for a paper bot
    assert assignments["real"] == [("REAL_KEY", ""), ("REAL_SECRET", ""),
                                   (LIVE_CONFIRM_ENV, "")]
    assert assignments["rehearse"] == [("TEST_KEY", ""), ("TEST_SECRET", "")]  # a testnet
    assert "/run/keys/test-pass" in files["env/rehearse.env"]  # said where, to mount it


def test_the_live_confirmation_variable_is_the_one_the_runtime_reads() -> None:
    from fleetkit.runtime.connections import LIVE_CONFIRM_ENV as RUNTIME_NAME

    assert LIVE_CONFIRM_ENV == RUNTIME_NAME


def test_no_generated_file_holds_a_secret_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"REAL_KEY": "sk-live-0123456789abcdef", "REAL_SECRET": "s3cr3t-real-value",
               "TEST_KEY": "tk-0123456789", "TEST_SECRET": "t3st-s3cr3t",
               "FLEET_DB_URL": "postgresql://fleet:hunter2-db-pass@db.example/fleet"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "fleet.yaml"
    config.write_text(MIXED, encoding="utf-8")
    write_bundle(tmp_path / "out", compose_bundle(load_config(config)))
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for value in [*secrets.values(), "hunter2"]:
                assert value not in text, f"{path.name} holds {value}"


def test_the_same_config_gives_byte_identical_output(demo: LoadedConfig,
                                                     tmp_path: Path) -> None:
    write_bundle(tmp_path / "a", compose_bundle(demo))
    write_bundle(tmp_path / "b", compose_bundle(load_config(BUILTIN_DEMO)))
    a = {p.relative_to(tmp_path / "a"): p.read_bytes()
         for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes()
         for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert a == b
    # compose, config copy, secrets.sh, env files, the image with the ml extra (Dockerfile,
    # torch's pins: the demo has learning bots), manifest
    assert len(a) == 1 + 1 + 1 + 37 + 2 + 1


def test_the_image_is_the_one_asked_for(plain_demo: LoadedConfig, demo: LoadedConfig) -> None:
    document = yaml.safe_load(generated(plain_demo, image="registry.local/fleetkit:1.2")
                              ["docker-compose.yml"])
    images = {s["image"] for s in document["services"].values()}
    assert images == {"postgres:15", "registry.local/fleetkit:1.2"}
    # With learning bots the fleet's own image is built FROM it (plus the ml extra).
    files = generated(demo, image="registry.local/fleetkit:1.2")
    assert "FROM registry.local/fleetkit:1.2\n" in files["image/Dockerfile"]


# --- writing generated files ----------------------------------------------------------------


def bundle(*files: tuple[str, str], edits: tuple[str, ...] = ()) -> Bundle:
    return Bundle("test", tuple(GeneratedFile(p, c, operator_edits=p in edits)
                                for p, c in files), operator_files=("secrets/pw",))


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_are_written_with_their_modes_and_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, Bundle("test", (GeneratedFile("a.yml", "a\n"),
                                      GeneratedFile("env/b.env", "b\n", 0o600))))
    assert tree(out)["a.yml"] == "a\n"
    assert (out / "env" / "b.env").stat().st_mode & 0o777 == 0o600
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == {"a.yml", "env/b.env"}


def test_a_directory_with_files_we_did_not_write_is_refused_and_nothing_is_written(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputDirError, match=r"notes\.txt.*--force"):
        write_bundle(out, bundle(("a.yml", "a")))
    assert tree(out) == {"notes.txt": "mine"}


def test_force_overwrites_generated_files_and_leaves_the_others_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "a.yml").write_text("someone else's", encoding="utf-8")
    write_bundle(out, bundle(("a.yml", "a")), force=True)
    assert tree(out) == {"notes.txt": "mine", "a.yml": "a", MANIFEST: tree(out)[MANIFEST]}


def test_regenerating_over_our_own_untouched_files_needs_no_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, bundle(("a.yml", "1"), ("old.yml", "x")))
    report = write_bundle(out, bundle(("a.yml", "2")))
    assert tree(out)["a.yml"] == "2"
    assert "old.yml" not in tree(out)  # ours, untouched and no longer needed: removed
    assert report.removed == ("old.yml",)


def test_an_edited_generated_file_counts_as_foreign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, bundle(("a.yml", "1")))
    (out / "a.yml").write_text("hand edit", encoding="utf-8")
    with pytest.raises(OutputDirError, match=r"a\.yml"):
        write_bundle(out, bundle(("a.yml", "2")))
    assert (out / "a.yml").read_text() == "hand edit"


def test_env_files_the_operator_filled_in_are_kept_even_with_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, bundle(("env/a.env", "KEY=\n"), edits=("env/a.env",)))
    (out / "env" / "a.env").write_text("KEY=filled-in\n", encoding="utf-8")
    for force in (False, True):
        report = write_bundle(out, bundle(("env/a.env", "KEY=\n"), edits=("env/a.env",)),
                              force=force)
        assert report.kept == ("env/a.env",)
        assert (out / "env" / "a.env").read_text() == "KEY=filled-in\n"


def test_files_under_an_operator_directory_are_not_foreign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "secrets").mkdir(parents=True)
    (out / "secrets" / "gone_bot.password").write_text("x", encoding="utf-8")
    (out / "secretsx").write_text("x", encoding="utf-8")
    mine = Bundle("test", (GeneratedFile("a.yml", "a"),), operator_files=("secrets/",))
    with pytest.raises(OutputDirError, match="secretsx"):
        write_bundle(out, mine)
    (out / "secretsx").unlink()
    write_bundle(out, mine)
    assert tree(out)["secrets/gone_bot.password"] == "x"


def test_the_operators_password_file_is_not_foreign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "secrets").mkdir(parents=True)
    (out / "secrets" / "pw").write_text("x", encoding="utf-8")
    write_bundle(out, bundle(("a.yml", "a")))
    assert tree(out)["secrets/pw"] == "x"


def test_a_symlink_in_the_output_is_never_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep", encoding="utf-8")
    os.symlink(victim, out / "a.yml")
    with pytest.raises(OutputDirError):
        write_bundle(out, bundle(("a.yml", "a")))
    write_bundle(out, bundle(("a.yml", "a")), force=True)
    assert victim.read_text() == "keep"
    assert not (out / "a.yml").is_symlink() and (out / "a.yml").read_text() == "a"


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("", encoding="utf-8")
    with pytest.raises(OutputDirError, match="not a directory"):
        write_bundle(out, bundle(("a.yml", "a")), force=True)


@pytest.mark.parametrize("path", ["/etc/passwd", "../up.yml", "a/../../b", MANIFEST])
def test_generated_paths_stay_inside_the_output_directory(path: str) -> None:
    with pytest.raises(ValueError, match="relative output path"):
        GeneratedFile(path, "")


# --- the image ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def first(instructions: list[tuple[str, str]], keyword: str, fragment: str) -> int:
    return next(i for i, (k, a) in enumerate(instructions) if k == keyword and fragment in a)


def test_the_image_runs_as_a_non_root_user_with_fleet_as_its_entrypoint() -> None:
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1] == "fleet"
    assert first(instructions, "USER", "fleet") < first(instructions, "ENTRYPOINT", "")
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["fleet"]
    assert 'VOLUME ["/var/lib/fleet"]' in [f"{k} {a}" for k, a in instructions]


def test_dependencies_are_installed_in_their_own_layer_before_the_source_is_copied() -> None:
    instructions = dockerfile()
    pyproject = first(instructions, "COPY", "pyproject.toml")
    dependencies = first(instructions, "RUN", "pip install -r")
    source = first(instructions, "COPY", "src")
    package = first(instructions, "RUN", "pip install --no-deps")
    assert pyproject < dependencies < source < package


def test_the_dependency_layer_installs_the_projects_dependencies_and_the_live_extra(
        tmp_path: Path) -> None:
    import shlex
    import subprocess
    import sys
    import tomllib

    run = next(a for k, a in dockerfile() if k == "RUN" and "pip install -r" in a)
    words = shlex.split(run.split("&&")[0].split(">")[0])
    assert words[:2] == ["python", "-c"]
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    default = next(a for k, a in dockerfile() if k == "ARG" and a.startswith("FLEETKIT_EXTRAS="))
    listed = subprocess.run([sys.executable, "-c", words[2]], cwd=tmp_path, check=True,
                            env={**os.environ, "FLEETKIT_EXTRAS": default.split("=", 1)[1]},
                            capture_output=True, text=True).stdout.split("\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    expected = project["dependencies"] + extras["live"] + extras["oidc"]
    assert [line for line in listed if line] == expected
    assert any(line.startswith("ccxt") for line in expected)  # live bots run from it too
    assert any(line.startswith("Authlib") for line in expected)  # an OIDC dashboard too


def test_the_image_holds_no_secret() -> None:
    for keyword, args in dockerfile():
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            for name in names:
                assert not re.search(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", name.upper()), name
            assert not re.search(r"://[^/\s]*:[^/\s]*@", args)  # no URL with a password


def test_the_build_context_is_an_allowlist_without_data_or_secrets() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"  # everything out ...
    allowed = {line[1:] for line in lines if line.startswith("!")}
    # ... but what the build needs (constraints/: torch's CPU build, for the ml extra)
    assert allowed == {"pyproject.toml", "README.md", "src/", "constraints/"}


def test_the_dashboard_starts_only_with_authentication_and_takes_its_users_from_env(
        tmp_path: Path) -> None:
    """Inside a container it listens beyond loopback: without dashboard.auth it is behind a
    profile; with users_env the users come from the operator's environment, never the file."""
    def load(extra: str) -> LoadedConfig:
        path = tmp_path / "fleet.yaml"
        path.write_text(MIXED + extra, encoding="utf-8")
        return load_config(path)

    plain = compose_of(load(""))["services"]["dashboard"]
    assert plain["profiles"] == ["pending"]
    guarded = compose_of(load("dashboard:\n  auth:\n    users_env: DASH_USERS\n"))
    dashboard = guarded["services"]["dashboard"]
    assert "profiles" not in dashboard
    assert dashboard["environment"]["DASH_USERS"].startswith("${DASH_USERS:?")
    assert dashboard["ports"] == ["127.0.0.1:8501:8501"]


def test_the_dashboards_login_files_are_compose_secrets_not_config_files(
        tmp_path: Path) -> None:
    """A users file or an OIDC [auth] section is mounted from secrets/ into the dashboard
    alone, and the config copy points at it there."""
    path = tmp_path / "fleet.yaml"
    path.write_text(MIXED + "dashboard:\n  auth:\n    users_file: users.txt\n"
                    "    oidc: true\n    oidc_secrets_file: oidc.toml\n", encoding="utf-8")
    loaded = load_config(path)
    bundle = {f.path: f.content for f in compose_bundle(loaded).files}
    compose = yaml.safe_load(bundle["docker-compose.yml"])

    dashboard = compose["services"]["dashboard"]
    assert "profiles" not in dashboard
    assert {"dashboard_users", "dashboard_oidc.toml"} <= set(dashboard["secrets"])
    assert compose["secrets"]["dashboard_oidc.toml"] == {
        "file": "./secrets/dashboard_oidc.toml"}
    others = [s for name, s in compose["services"].items() if name != "dashboard"]
    assert not any("dashboard_oidc.toml" in str(s.get("secrets")) for s in others)
    auth = yaml.safe_load(bundle["config/fleet.yaml"])["dashboard"]["auth"]
    assert auth["users_file"] == "/run/secrets/dashboard_users"
    assert auth["oidc_secrets_file"] == "/run/secrets/dashboard_oidc.toml"
    assert "secrets/dashboard_oidc.toml (docs/dashboard.md)" in bundle["docker-compose.yml"]
