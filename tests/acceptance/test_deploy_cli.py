"""`fleet deploy compose | systemd` as a user runs them: the real CLI in a subprocess, the
built-in 37-bot demo fleet, an output directory that is refused, forced and regenerated."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.acceptance.cli_support import fleet


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_compose_for_the_demo_fleet_has_a_service_for_each_of_its_37_bots(
        tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    result = fleet("deploy", "compose", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load((out / "docker-compose.yml").read_text(encoding="utf-8"))
    bots = [name for name in document["services"] if name.startswith("bot-")]
    assert len(bots) == 37
    assert len(list((out / "env").glob("*.env"))) == 37
    assert (out / "config" / "fleet.yaml").is_file()
    assert not (tmp_path / "var").exists()  # generating touches no database


def test_a_directory_of_someone_elses_files_is_refused_until_forced(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "docker-compose.yml").write_text("services: {mine: {image: x}}\n", encoding="utf-8")
    (out / "notes.txt").write_text("keep me\n", encoding="utf-8")
    before = snapshot(out)
    refused = fleet("deploy", "compose", "--out", str(out), cwd=tmp_path)
    assert_one_line_error(refused, "--force", "docker-compose.yml")
    assert snapshot(out) == before  # nothing written

    forced = fleet("deploy", "compose", "--out", str(out), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me\n"
    assert "bot-us-sma-jpm" in (out / "docker-compose.yml").read_text(encoding="utf-8")


def test_regenerating_is_byte_identical_and_keeps_filled_in_env_files(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert fleet("deploy", "compose", "--out", str(out), cwd=tmp_path).returncode == 0
    first = snapshot(out)
    again = fleet("deploy", "compose", "--out", str(out), cwd=tmp_path)  # no --force needed
    assert again.returncode == 0, again.stderr
    assert snapshot(out) == first

    filled = out / "env" / "us-sma-jpm.env"
    filled.write_text("SOME_TOKEN=filled-in\n", encoding="utf-8")
    kept = fleet("deploy", "compose", "--out", str(out), "--force", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert "env/us-sma-jpm.env" in kept.stdout
    assert filled.read_text(encoding="utf-8") == "SOME_TOKEN=filled-in\n"


def test_compose_passwords_come_from_secrets_sh_and_never_block_regenerating(
        tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    result = fleet("deploy", "compose", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "secrets.sh" in result.stdout.splitlines()[-1]  # the `next:` hint
    made = subprocess.run(["sh", str(out / "secrets.sh")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert "39 password files created" in made.stdout  # the owner, 37 bots, the reader
    (out / ".env").write_text("FLEET_DB_HOST=db.internal\n", encoding="utf-8")
    again = fleet("deploy", "compose", "--out", str(out), cwd=tmp_path)  # no --force needed
    assert again.returncode == 0, again.stderr
    assert len(list((out / "secrets").iterdir())) == 39


def test_the_generated_roles_command_refuses_a_missing_password_file_in_one_line(
        tmp_path: Path) -> None:
    empty = tmp_path / "passwords"
    empty.mkdir()
    result = fleet("db", "roles", "--passwords-from", str(empty), "--db",
                   f"sqlite:///{tmp_path / 'fleet.db'}", cwd=tmp_path)
    # The demo's 37 bots: the first missing file named, the others counted.
    assert_one_line_error(result, f"no password file {empty / 'fleet_bot_'}", "(and 36 more)")
    assert not (tmp_path / "fleet.db").exists()  # refused before the database was opened


def test_systemd_for_the_demo_fleet_writes_units_env_files_and_an_install_script(
        tmp_path: Path) -> None:
    out = tmp_path / "units"
    result = fleet("deploy", "systemd", "--out", str(out), "--prefix", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "units" / "demo-bot@.service").is_file()
    assert (out / "units" / "demo-roles.service").is_file()
    assert (out / "units" / "demo.target").is_file()
    assert "/etc/demo/db" in result.stdout  # the `next:` hint says where passwords go
    assert len(list((out / "bots").glob("*.env"))) == 37
    assert os.access(out / "install.sh", os.X_OK)


def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert_one_line_error(fleet("deploy", "compose", "--out", str(out), "--config",
                                "nope.yaml", cwd=tmp_path), "nope.yaml not found")
    assert_one_line_error(fleet("deploy", "systemd", "--out", str(out), "--prefix", "Bad Name",
                                cwd=tmp_path), "--prefix")
    assert_one_line_error(fleet("deploy", "compose", "--out", str(out), "--image", "a b",
                                cwd=tmp_path), "--image")
    (tmp_path / "empty.yaml").write_text("fleet: {name: none}\n", encoding="utf-8")
    assert_one_line_error(fleet("deploy", "compose", "--out", str(out), "--config",
                                str(tmp_path / "empty.yaml"), cwd=tmp_path), "no bots")
    assert not out.exists()
