"""`fleet dashboard`, `fleet dashboard passwd`, `fleet dashboard chart` as a user runs them:
refusals are one line with the fix and exit 2; the chart lands under the data directory and,
when alerts are configured, in the outbox for the trading concern."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.dashboard.auth import verify_password
from fleetkit.store.schema import outbox
from tests.acceptance.cli_support import assert_user_error, fleet
from tests.integration.dashboard.dashboard_seed import seed_fleet
from tests.support import migrated_database

ROUTES = """notify:
  routes:
    - name: ops
      type: telegram
      concerns: [trading]
      token_env: FLEET_TEST_UNSET_TOKEN
      chat_id: "-100123"
"""




def test_it_refuses_to_listen_beyond_loopback_without_authentication(tmp_path: Path) -> None:
    result = fleet("dashboard", "--host", "0.0.0.0", cwd=tmp_path)  # noqa: S104
    assert_user_error(result, "refusing to listen on 0.0.0.0", "dashboard.auth")


def test_it_says_where_the_database_is_missing_instead_of_serving_errors(tmp_path: Path
                                                                         ) -> None:
    assert_user_error(fleet("dashboard", cwd=tmp_path), "no fleet database", "fleet up")


def test_a_missing_users_secret_stops_it_before_it_serves(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "dashboard:\n  auth:\n    users_env: FLEET_TEST_NO_SUCH_USERS\n", encoding="utf-8")
    assert_user_error(fleet("dashboard", cwd=tmp_path), "$FLEET_TEST_NO_SUCH_USERS")


def test_an_oidc_login_without_its_secrets_stops_it_before_it_serves(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "dashboard:\n  auth:\n    oidc: true\n    oidc_secrets_file: oidc.toml\n",
        encoding="utf-8")
    assert_user_error(fleet("dashboard", "--host", "0.0.0.0", cwd=tmp_path),  # noqa: S104
                      "oidc_secrets_file", "oidc.toml does not exist")
    (tmp_path / "oidc.toml").write_text('[auth]\nclient_id = "fleet"\n', encoding="utf-8")
    assert_user_error(fleet("dashboard", cwd=tmp_path),
                      "lacks redirect_uri, cookie_secret, client_secret, server_metadata_url")


def test_passwd_prints_a_line_for_the_users_file_and_never_the_password(tmp_path: Path
                                                                        ) -> None:
    result = fleet("dashboard", "passwd", "alice", "--password-stdin", cwd=tmp_path,
                   stdin="correct horse battery\n")
    assert result.returncode == 0, result.stderr
    name, _, hashed = result.stdout.strip().partition(":")
    assert name == "alice"
    assert verify_password("correct horse battery", hashed)
    assert "correct horse" not in result.stdout
    short = fleet("dashboard", "passwd", "bob", "--password-stdin", cwd=tmp_path,
                  stdin="hunter2\n")
    assert_user_error(short, "at least 12 characters")


def test_chart_draws_the_day_for_the_fleet_and_each_bot_and_queues_it_once(
        tmp_path: Path, database_url: str) -> None:
    database: Any = migrated_database(database_url)
    try:
        seeded = seed_fleet(database)
    finally:
        database.dispose()
    (tmp_path / "fleet.yaml").write_text(ROUTES, encoding="utf-8")
    day = seeded.now.date().isoformat()
    env = {"FLEET_DB_URL": database_url}
    result = fleet("dashboard", "chart", "--day", day, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "var" / "charts" / day
    assert sorted(p.name for p in folder.iterdir()) == ["alpha.png", "beta.png", "fleet.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in folder.iterdir())
    assert "fleet -434.50 USD" in result.stdout
    assert "queued for the trading concern" in result.stdout
    again = fleet("dashboard", "chart", "--day", day, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "queued" not in again.stdout  # once per day, however often it runs
    database = migrated_database(database_url)
    try:
        with database.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.kind, outbox.c.concern, outbox.c.attachment)
                                .where(outbox.c.kind == "pnl.day_chart")).all()
    finally:
        database.dispose()
    assert rows == [("pnl.day_chart", "trading", str(folder / "fleet.png"))]


def test_chart_of_a_day_without_trading_says_so(tmp_path: Path, database_url: str) -> None:
    migrated_database(database_url).dispose()
    result = fleet("dashboard", "chart", "--day", "2020-01-02", cwd=tmp_path,
                   env={"FLEET_DB_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "no P&L was recorded on 2020-01-02" in result.stdout
    assert_user_error(fleet("dashboard", "chart", "--day", "yesterday", cwd=tmp_path,
                            env={"FLEET_DB_URL": database_url}), "YYYY-MM-DD")


def test_chart_by_default_draws_yesterday(tmp_path: Path, database_url: str) -> None:
    migrated_database(database_url).dispose()
    result = fleet("dashboard", "chart", cwd=tmp_path, env={"FLEET_DB_URL": database_url})
    yesterday = datetime.now(UTC).date().toordinal() - 1
    assert datetime.fromordinal(yesterday).date().isoformat() in result.stdout


@pytest.mark.parametrize("args", [("dashboard", "--help"), ("dashboard", "passwd", "--help"),
                                  ("dashboard", "chart", "--help")])
def test_every_dashboard_command_has_help(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = fleet(*args, cwd=tmp_path)
    assert result.returncode == 0
    assert "Usage:" in result.stdout
