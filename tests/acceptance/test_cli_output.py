"""What users notice at the command line: `fleet --version`, `fleet status` in a pipe,
`fleet events --kind` with a short kind, and a job command refused by `fleet up` too."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleetkit.config.loader import load_config
from fleetkit.engine.ports import Event
from fleetkit.runtime.fleet import prepare_database
from fleetkit.store.database import Database, open_database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from tests.acceptance.cli_support import assert_user_error, fleet

# Long names and details: a table at 80 columns would cut every one of them.
BOTS = [f"a-rather-long-bot-name-{i}-for-a-narrow-table" for i in range(3)]


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fleet database with BOTS registered as `fleet up` registers them; the config path."""
    config = tmp_path / "fleet.yaml"
    config.write_text("bots:\n" + "".join(
        f'  - {{name: {name}, market: CRYPTO, symbols: ["BTC/USDT", "ETH/USDT"], '
        "strategy: buy_and_hold}\n" for name in BOTS), encoding="utf-8")
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    prepare_database(load_config(config), f"sqlite:///{tmp_path / 'var' / 'fleet.db'}"
                     ).dispose()
    return config


def database_of(config: Path) -> Database:
    return open_database(f"sqlite:///{config.parent / 'var' / 'fleet.db'}")


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = fleet("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fleetkit {version('fleetkit')}"


def test_status_in_a_pipe_is_tab_separated_with_a_header_and_a_row_per_bot(
        registered: Path) -> None:
    result = fleet("status", "--config", str(registered), cwd=registered.parent)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    columns = header.split("\t")
    assert columns[:5] == ["bot", "market", "mode", "strategy", "state"]
    assert "…" not in result.stdout
    assert [row.split("\t")[0] for row in rows] == sorted(BOTS)
    for row in rows:
        record = dict(zip(columns, row.split("\t"), strict=True))
        assert (record["market"], record["strategy"], record["state"]) == (
            "CRYPTO", "buy_and_hold", "STOPPED")


def test_status_in_a_pipe_before_any_bot_prints_only_the_header(tmp_path: Path) -> None:
    assert fleet("db", "upgrade", cwd=tmp_path).returncode == 0
    result = fleet("status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [result.stdout.splitlines()[0]]
    assert "no bots registered yet" in result.stderr


def record_events(config: Path) -> None:
    database = database_of(config)
    try:
        engine = database.engine
        bot_id = FleetStore(engine).bot(BOTS[0]).id
        ledger = SqlLedger(engine, "-")
        at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
        for offset, kind in enumerate(["order.submitted", "order.fill", "fill.refused",
                                       "risk.denied", "order.fill"]):
            ledger.record_event(bot_id, Event(kind, f"{kind} #{offset}"),
                                at + timedelta(seconds=offset))
    finally:
        database.dispose()


def events_json(config: Path, *args: str) -> list[str]:
    result = fleet("events", "--json", "--config", str(config), *args, cwd=config.parent)
    assert result.returncode == 0, result.stderr
    return [event["message"] for event in json.loads(result.stdout)]


def test_events_by_short_kind_find_the_full_kind_newest_first(registered: Path) -> None:
    record_events(registered)
    assert events_json(registered, "--kind", "fill") == [
        "order.fill #4", "fill.refused #2", "order.fill #1"]
    assert events_json(registered, "--kind", "order.fill") == ["order.fill #4", "order.fill #1"]
    assert events_json(registered, "--kind", "order") == [
        "order.fill #4", "order.fill #1", "order.submitted #0"]
    assert events_json(registered, "--kind", "denied") == ["risk.denied #3"]
    # Nothing of these kinds happened yet, but they are kinds fleetkit alerts on.
    assert events_json(registered, "--kind", "control") == []


def test_events_refuse_a_kind_that_names_nothing_and_list_the_kinds(registered: Path) -> None:
    record_events(registered)
    result = fleet("events", "--kind", "fil", "--config", str(registered),
                   cwd=registered.parent)
    assert_user_error(result, "--kind 'fil' names no event kind recorded", "order.fill",
                      "fill.refused", "risk.denied")


def test_up_refuses_a_job_command_that_fleet_jobs_refuses(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text('bots:\n  - {name: a, market: CRYPTO, symbols: ["BTC/USDT"], '
                      "strategy: buy_and_hold}\n"
                      'jobs:\n  - {name: nightly, command: "reconcil --all", '
                      'cron: "0 2 * * *"}\n', encoding="utf-8")
    for command in (["up", "--for", "5", "--no-live"], ["jobs"]):
        result = fleet(*command, "--config", str(config), cwd=tmp_path)
        assert_user_error(result, "job nightly: 'reconcil' is not a fleet command")
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "var").exists()
    assert os.listdir(tmp_path) == ["fleet.yaml"]
