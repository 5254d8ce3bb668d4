"""Declared database passwords: one `<role>.password` file per role, read exactly as the
processes that connect with them read them, every problem refused before anything changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.core.errors import ConfigError
from fleetkit.store.roles import read_password_files, scram_verifier, verifier_matches


def write(folder: Path, role: str, content: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{role}.password").write_text(content, encoding="utf-8", newline="")


@pytest.mark.parametrize("content", ["s3cr3t\n", "s3cr3t", "s3cr3t\r\n"])
def test_the_password_is_the_files_one_line_without_its_newline(tmp_path: Path,
                                                                content: str) -> None:
    write(tmp_path, "fleet_bot_a", content)
    assert read_password_files(tmp_path, ["fleet_bot_a"]) == {"fleet_bot_a": "s3cr3t"}


def test_every_missing_file_is_counted_and_the_first_named_with_how_to_create_it(
        tmp_path: Path) -> None:
    write(tmp_path, "fleet_bot_b", "x\n")
    with pytest.raises(ConfigError) as caught:
        read_password_files(tmp_path, ["fleet_bot_a", "fleet_bot_b", "fleet_reader_login"])
    message = str(caught.value)
    assert f"no password file {tmp_path / 'fleet_bot_a.password'} (and 1 more)" in message
    assert "openssl rand" in message and "\n" not in message


@pytest.mark.parametrize(("content", "problem"), [
    ("", "is empty"), ("\n", "is empty"), ("Xq7-first\nXq7-second\n", "more than one line"),
    (" Xq7-padded\n", "white space"), ("Xq7-padded \n", "white space")])
def test_a_password_the_bots_would_read_differently_is_refused(
        tmp_path: Path, content: str, problem: str) -> None:
    write(tmp_path, "fleet_bot_a", content)
    with pytest.raises(ConfigError, match=problem) as caught:
        read_password_files(tmp_path, ["fleet_bot_a"])
    assert "fleet_bot_a.password" in str(caught.value)
    assert "Xq7" not in str(caught.value)  # never the password itself


def test_a_role_name_cannot_lead_the_file_out_of_its_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="role name"):
        read_password_files(tmp_path, ["../etc/passwd"])


def test_the_verifier_check_accepts_only_the_password_behind_it() -> None:
    verifier = scram_verifier("right")
    assert verifier_matches(verifier, "right")
    assert not verifier_matches(verifier, "wrong")
    assert not verifier_matches("md5abc", "right")
