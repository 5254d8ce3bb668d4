"""`fleet db upgrade`, `fleet db current` and `fleet up` as a new user meets them: a
database migrated by a newer fleetkit is named as such (exit 2, never an internal error),
and a mistyped SQLite path never scatters directories over the disk."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from fleetkit.testing.loopback import free_port
from tests.acceptance.cli_support import assert_user_error, fleet


def newer_database(workdir: Path) -> Path:
    """The default database, then migrated by a fleetkit newer than this one."""
    assert fleet("db", "upgrade", cwd=workdir).returncode == 0
    path = workdir / "var" / "fleet.db"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    return path


def test_fleet_up_on_a_database_from_a_newer_fleetkit_says_to_upgrade_fleetkit(
        tmp_path: Path) -> None:
    newer_database(tmp_path)
    config = tmp_path / "fleet.yaml"
    config.write_text(f"sandbox: {{port: {free_port()}}}\nbots:\n  - {{name: a, market: "
                      'CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}\n',
                      encoding="utf-8")
    result = fleet("up", "--config", str(config), "--for", "5", "--no-live", cwd=tmp_path)
    assert_user_error(result, "migrated by a newer fleetkit", "upgrade fleetkit")
    assert "internal error" not in result.stderr


def test_db_upgrade_on_a_database_from_a_newer_fleetkit_says_to_upgrade_fleetkit(
        tmp_path: Path) -> None:
    newer_database(tmp_path)
    result = fleet("db", "upgrade", cwd=tmp_path)
    assert_user_error(result, "trading schema 0099", "migrated by a newer fleetkit",
                      "upgrade fleetkit")
    assert "internal error" not in result.stderr


def test_db_current_on_a_database_from_a_newer_fleetkit_says_to_upgrade_fleetkit(
        tmp_path: Path) -> None:
    newer_database(tmp_path)
    result = fleet("db", "current", cwd=tmp_path)
    assert_user_error(result, "migrated by a newer fleetkit", "upgrade fleetkit")
    trading = next(line for line in result.stdout.splitlines() if " trading: " in line)
    assert "upgrade fleetkit" in trading and "fleet db upgrade" not in trading
    result = fleet("db", "current", "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert json.loads(result.stdout)["databases"][0]["branches"][0]["state"] == "newer"


def test_db_upgrade_refuses_a_missing_directory_outside_the_fleet_home(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "dir" / "x.db"
    result = fleet("db", "upgrade", "--db", f"sqlite:///{target}", cwd=tmp_path)
    assert_user_error(result, f"no directory {target.parent}", f"mkdir -p {target.parent}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()


def test_db_upgrade_makes_missing_directories_inside_the_fleet_home(tmp_path: Path) -> None:
    target = tmp_path / "var" / "data" / "fleet.db"
    result = fleet("db", "upgrade", "--db", f"sqlite:///{target}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert target.is_file()
