"""Bad input at the command line: one clear line naming the problem and the fix, exit code 2,
no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetkit.testing.loopback import free_port
from tests.acceptance.cli_support import assert_json_user_error, assert_user_error, fleet


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def write(workdir: Path, text: str) -> Path:
    path = workdir / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BOT = '{name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: sma_cross}'


@pytest.mark.parametrize(("config", "fragments"), [
    (f"bots:\n  - {BOT}\nrisk: {{max_order_value_usd: -5}}\n",
     ("fleet.yaml", "risk.max_order_value_usd", "must be a number > 0, got -5")),
    (f"bots:\n  - {BOT}\nrisk: {{max_order_valu_usd: 5}}\n",
     ("risk.max_order_valu_usd", "unknown key", "max_order_value_usd")),
    ('bots:\n  - {name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: nope}\n',
     ("unknown strategy 'nope'", "sma_cross")),
    ('bots:\n  - {name: a, market: MARS, symbols: ["X"], strategy: sma_cross}\n',
     ("unknown market 'MARS'",)),
    ('bots:\n  - {name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: sma_cross,\n'
     '     params: {fast: 40, slow: 10}}\n', ("fast (40) must be smaller than slow (10)",)),
    ("bots: [\n", ("fleet.yaml line", "yaml")),
    ("database: {url: 'postgresql://u:secret@h/db'}\n", ("password", "FLEET_DB_URL")),
])
def test_a_bad_config_is_one_line_naming_the_key_and_nothing_is_written(
        workdir: Path, config: str, fragments: tuple[str, ...]) -> None:
    path = write(workdir, config)
    result = fleet("up", "--config", str(path), "--for", "5", "--no-live", cwd=workdir)
    assert_user_error(result, *fragments)
    assert "secret" not in result.stderr
    assert not (workdir / "var").exists()


def test_an_unknown_symbol_names_the_known_ones(workdir: Path) -> None:
    path = write(workdir, 'bots:\n  - {name: a, market: NYSE, symbols: ["NOPE"], '
                          "strategy: sma_cross}\n")
    result = fleet("up", "--config", str(path), "--for", "5", "--no-live", cwd=workdir)
    assert_user_error(result, "'NOPE'", "known:", "JPM")


def test_a_missing_config_file_says_how_to_get_one(workdir: Path) -> None:
    assert_user_error(fleet("status", "--config", "nope.yaml", cwd=workdir),
                      "nope.yaml not found", "fleet init")


def test_an_unreachable_database_url_names_the_fix(workdir: Path) -> None:
    result = fleet("status", "--db", "postgresql://nobody:hunter2@127.0.0.1:1/x", cwd=workdir)
    assert_user_error(result, "cannot reach the database", "FLEET_DB_URL")
    assert "hunter2" not in result.stderr  # passwords never reach logs or errors


@pytest.mark.parametrize("command", [("status",), ("events",), ("db", "current"),
                                     ("notify", "status"), ("reconcile", "--all")])
def test_a_json_command_on_a_dead_database_prints_a_json_error_and_exits_2(
        workdir: Path, command: tuple[str, ...]) -> None:
    url = f"postgresql://nobody:hunter2@127.0.0.1:{free_port()}/fleet"  # nothing listens
    result = fleet(*command, "--json", "--db", url, cwd=workdir)
    assert_json_user_error(result, "database_unavailable", "cannot reach the database",
                           "FLEET_DB_URL")
    assert "hunter2" not in result.stdout + result.stderr


def test_a_json_command_refusing_bad_input_prints_a_json_error(workdir: Path) -> None:
    assert_json_user_error(fleet("calendar", "MARS", "--json", cwd=workdir), "user",
                           "unknown market 'MARS'")
    assert_json_user_error(fleet("status", "--json", "--config", "nope.yaml", cwd=workdir),
                           "config", "nope.yaml not found")


def test_a_mistyped_option_under_json_is_a_json_usage_error(workdir: Path) -> None:
    result = fleet("status", "--json", "--bogus", cwd=workdir)
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"]["kind"] == "usage"


def test_a_malformed_database_url_names_the_fix(workdir: Path) -> None:
    assert_user_error(fleet("status", "--db", "not a url", cwd=workdir),
                      "cannot parse database url", "sqlite:///")


def test_status_before_any_fleet_ran_says_how_to_start_one(workdir: Path) -> None:
    assert_user_error(fleet("status", cwd=workdir), "no fleet database", "fleet up")
    assert not (workdir / "var").exists()


def test_an_unknown_bot_name_is_a_user_error(workdir: Path) -> None:
    assert_user_error(fleet("bot", "run", "no-such-bot", cwd=workdir), "no bot named")
    assert not (workdir / "var").exists()


def test_halting_an_unknown_bot_names_the_bot(workdir: Path) -> None:
    assert fleet("db", "upgrade", cwd=workdir).returncode == 0
    assert_user_error(fleet("halt", "ghost", "--reason", "x", cwd=workdir), "no bot named 'ghost'")


def test_halting_without_a_reason_is_refused(workdir: Path) -> None:
    assert_user_error(fleet("halt", "--all", cwd=workdir), "--reason is required")


def test_an_unknown_option_is_a_usage_error(workdir: Path) -> None:
    result = fleet("up", "--fro", "5", cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_backtest_with_an_unknown_parameter_lists_the_known_ones(workdir: Path) -> None:
    assert_user_error(fleet("backtest", "--strategy", "sma_cross", "-p", "fsat=3", cwd=workdir),
                      "fsat", "fast, slow")


def test_a_backtest_csv_with_a_bad_row_names_the_row(workdir: Path) -> None:
    csv = workdir / "bars.csv"
    csv.write_text("time,open,high,low,close\n2024-01-01T00:00:00Z,10,11,9,10\n"
                   "2024-01-01T00:01:00Z,10,11,9,nan\n", encoding="utf-8")
    assert_user_error(fleet("backtest", "--strategy", "sma_cross", "--csv", str(csv),
                            cwd=workdir), "row 3", "close")


def test_the_help_of_every_command_works(workdir: Path) -> None:
    for command in (["--help"], ["up", "--help"], ["status", "--help"], ["halt", "--help"],
                    ["resume", "--help"], ["bot", "run", "--help"], ["broker", "serve", "--help"],
                    ["db", "upgrade", "--help"], ["db", "current", "--help"],
                    ["backtest", "--help"], ["strategies", "--help"], ["init", "--help"]):
        result = fleet(*command, cwd=workdir)
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout
