"""Schema branches (trading, operations, market_data): each checked on its own, so a bot
starts whatever the other branches are at; today's databases upgrade in place without
loss; the new bases round-trip; market data may live in a database of its own; a database
from a newer fleetkit is named as such, branch by branch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url

from fleetkit.cli.app import main
from fleetkit.config.loader import load_config
from fleetkit.core.errors import SchemaMismatchError
from fleetkit.runtime.wiring import market_data_url
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store import migrate
from fleetkit.store.database import Database, open_database, upgrade_database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.schema import metadata
from tests.integration.bot_roles import CONFIG, Fleet, drop_roles, trade
from tests.support import migrated_database, pg_schema_url

MARKET_DATA_TABLES = ("bars", "option_quotes", "option_quote_minutes", "straddle_snapshots",
                      "collector_gaps", "collector_counters", "option_chain_minutes")
OTHER_TABLES = ("alembic_version_operations", "alembic_version_market_data", *MARKET_DATA_TABLES)


@pytest.fixture(autouse=True)
def _no_ambient_fleet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("FLEET_CONFIG", "FLEET_DB_URL", "FLEET_DB_PASSWORD_FILE",
                 "FLEET_MARKET_DATA_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))


OPERATIONS_DROPS = tuple(f"DROP TABLE {t}" for t in ("training_steps", "training_runs",
                                                      "model_history", "model_files",
                                                      "model_versions"))


def execute(engine: Engine, *statements: str) -> None:
    with write_transaction(engine) as conn:
        for statement in statements:
            conn.execute(text(statement))


def states(engine: Engine) -> dict[str, migrate.SchemaState]:
    return {s.branch: s.state for s in migrate.schema_status(engine)}


def owner_url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


# --- each process checks its own branches ---------------------------------------------


def test_a_bot_starts_while_the_other_branches_are_behind_or_ahead(
        fleet_db: Database, database_url: str) -> None:
    execute(fleet_db.engine, "DELETE FROM alembic_version_operations",
            "UPDATE alembic_version_market_data SET version_num = 'market_data_0099'")
    open_database(database_url).dispose()  # a bot: trading only
    with pytest.raises(SchemaMismatchError, match=r"no operations schema.*fleet db upgrade"):
        open_database(database_url, branches=(migrate.OPERATIONS,))
    with pytest.raises(SchemaMismatchError, match="migrated by a newer fleetkit"):
        open_database(database_url, branches=migrate.COLLECTOR_BRANCHES)


def test_a_bot_refuses_a_trading_branch_from_a_newer_fleetkit_and_says_so(
        fleet_db: Database, database_url: str) -> None:
    execute(fleet_db.engine, "UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaMismatchError, match=r"trading schema 0099, newer than this "
                                                  r"fleetkit.*upgrade fleetkit"):
        open_database(database_url)
    open_database(database_url, branches=migrate.COLLECTOR_BRANCHES).dispose()


def test_no_branch_check_imports_alembic(tmp_path: Path) -> None:
    """Bots start fast and small: the check is plain SQL against each branch's list."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrated_database(url).dispose()
    probe = ("import sys; from fleetkit.store.database import open_database; "
             "from fleetkit.store import migrate; "
             f"[open_database({url!r}, branches=(b,)).dispose() for b in migrate.BRANCH_NAMES]; "
             "print('alembic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


# --- today's databases upgrade in place -------------------------------------------------


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every trading model table as the database has it, in a stable order
    (the other branches' tables arrive with the upgrade)."""
    found = MetaData()
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        found.reflect(conn, only=[t.name for t in metadata.sorted_tables
                                  if t.name not in OTHER_TABLES and t.name in present])
        return {t.name: [dict(r._mapping) for r in conn.execute(
                    t.select().order_by(*t.primary_key.columns))]
                for t in found.sorted_tables}


def same_rows(before: dict[str, list[dict[str, Any]]],
              after: dict[str, list[dict[str, Any]]]) -> None:
    """Every row kept, column for column (columns and tables added since `before` aside:
    a table new since then starts empty)."""
    assert set(before) <= set(after)
    assert not any(after[name] for name in set(after) - set(before))
    for name, rows in before.items():
        assert [{k: row[k] for k in old} for row, old in zip(after[name], rows, strict=True)
                ] == rows, name


def todays_layout(database: Database) -> None:
    """What fleetkit made before the branches: trading only, in alembic_version."""
    upgrade_database(database, (migrate.TRADING,))
    tables = set(inspect(database.engine).get_table_names())
    assert "alembic_version" in tables and not tables & set(OTHER_TABLES)


def downgrade_trading(database: Database, revision: str) -> None:
    if revision != migrate.HEAD:
        with write_transaction(database.engine) as conn:
            command.downgrade(migrate.alembic_config(conn), revision)


def upgraded_by_the_cli(database: Database, config: Path, start: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["db", "upgrade", "--config", str(config), "--db", owner_url(database)]) == 0
    out = capsys.readouterr().out
    trading = (f"trading: migrated {start} -> {migrate.HEAD}" if start != migrate.HEAD
               else f"trading: already at {migrate.HEAD}, nothing to do")
    assert trading in out
    assert f"operations: migrated empty -> {migrate.branch('operations').head}" in out
    assert f"market_data: migrated empty -> {migrate.branch('market_data').head}" in out
    assert all(s is migrate.SchemaState.CURRENT for s in states(database.engine).values())


@pytest.mark.parametrize("start", ["0011", "0009"])
def test_a_sqlite_database_from_before_the_branches_upgrades_in_place_without_loss(
        tmp_path: Path, start: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    database = open_database(f"sqlite:///{tmp_path / 'fleet.db'}", require_schema=False)
    try:
        todays_layout(database)
        store = FleetStore(database.engine)
        ids = {name: store.register_bot(name=name, market="CRYPTO", currency="USDT",
                                        strategy="buy_and_hold", mode="paper", settings={},
                                        now=datetime.now(UTC)) for name in ("alpha", "beta")}
        trade(database, ids["alpha"], "a-1", "100")
        downgrade_trading(database, start)
        before = dump(database.engine)
        assert before["fills"] and before["orders"] and before["events"]
        upgraded_by_the_cli(database, config, start, capsys)
        same_rows(before, dump(database.engine))
        bot = open_database(owner_url(database))  # the bot's own check passes
        trade(bot, ids["beta"], "b-1", "100")  # and it trades as before
        bot.dispose()
    finally:
        database.dispose()


@pytest.fixture
def todays_pg_fleet(pg_base_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Fleet]:
    """A PostgreSQL fleet as fleetkit made it before the branches: trading at head, a login
    role per bot under row-level security and the 0011 triggers."""
    owner = open_database(pg_schema, require_schema=False)
    todays_layout(owner)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    schema = str(make_url(pg_schema).query["options"]).split("=", 1)[1]
    made = Fleet(pg_base_url, schema, owner, config, f"fkm{uuid.uuid4().hex[:8]}_",
                 tmp_path / "secrets", {})
    try:
        assert made.roles() == 0
        made.ids.update({b.name: b.id for b in FleetStore(owner.engine).bots()})
        yield made
    finally:
        drop_roles(owner.engine, made.prefix)
        owner.dispose()


def guards(fleet: Fleet) -> int:
    with fleet.owner.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s "
            "AND t.tgname LIKE 'fleet_guard%'"), {"s": fleet.schema}).scalar_one())


@pytest.mark.parametrize("start", ["0011", "0009"])
def test_a_postgresql_fleet_with_bot_roles_from_before_the_branches_upgrades_in_place(
        todays_pg_fleet: Fleet, start: str, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = todays_pg_fleet
    alpha = open_database(fleet.url_as(fleet.role("alpha")))
    trade(alpha, fleet.ids["alpha"], "a-1", "100")  # as its own role, under RLS
    alpha.dispose()
    downgrade_trading(fleet.owner, start)
    before = dump(fleet.owner.engine)
    assert before["fills"] and before["orders"] and before["events"]
    upgraded_by_the_cli(fleet.owner, fleet.config, start, capsys)
    same_rows(before, dump(fleet.owner.engine))
    assert guards(fleet) == 13  # the bots' confinement is in place
    beta = open_database(fleet.url_as(fleet.role("beta")))  # checks trading only
    try:
        trade(beta, fleet.ids["beta"], "b-1", "100")
        with beta.engine.connect() as conn:  # RLS: beta sees only its own fills
            assert conn.execute(text("SELECT count(*) FROM fills")).scalar_one() == 1
    finally:
        beta.dispose()


# --- the new bases ----------------------------------------------------------------------


def test_the_new_bases_downgrade_and_upgrade_again(fleet_db: Database,
                                                   database_url: str) -> None:
    with write_transaction(fleet_db.engine) as conn:
        for name in (migrate.OPERATIONS, migrate.MARKET_DATA):
            command.downgrade(migrate.alembic_config(conn, name), f"{name}@base")
    assert states(fleet_db.engine) == {
        migrate.TRADING: migrate.SchemaState.CURRENT,
        migrate.OPERATIONS: migrate.SchemaState.EMPTY,
        migrate.MARKET_DATA: migrate.SchemaState.EMPTY}
    open_database(database_url).dispose()  # bots carry on meanwhile
    done = upgrade_database(fleet_db)
    assert [u.changed for u in done] == [False, True, True]
    assert set(states(fleet_db.engine).values()) == {migrate.SchemaState.CURRENT}


# --- a database from a newer fleetkit ---------------------------------------------------


def test_upgrading_a_database_from_a_newer_fleetkit_names_the_branch_and_exits_2(
        fleet_db: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The operations branch as if never migrated here: its tables gone with its row.
    execute(fleet_db.engine, "UPDATE alembic_version SET version_num = '0099'",
            "DELETE FROM alembic_version_operations", *OPERATIONS_DROPS)
    assert main(["db", "upgrade", "--db", database_url]) == 2
    out, err = capsys.readouterr()
    assert f"trading: at 0099, newer than this fleetkit's {migrate.HEAD}: left as is" in out
    # The others still are.
    assert f"operations: migrated empty -> {migrate.branch('operations').head}" in out
    assert "this database was migrated by a newer fleetkit" in err
    assert "upgrade fleetkit" in err and "internal error" not in err
    assert migrate.current_revision(fleet_db.engine) == "0099"


def test_current_says_upgrade_fleetkit_for_a_branch_a_newer_fleetkit_migrated(
        fleet_db: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(fleet_db.engine, "UPDATE alembic_version SET version_num = '0099'",
            "DELETE FROM alembic_version_operations")
    assert main(["db", "current", "--db", database_url]) == 2
    lines = {line.split(": ", 1)[0].rsplit(" ", 1)[1]: line
             for line in capsys.readouterr().out.splitlines()}
    assert "(this database was migrated by a newer fleetkit: upgrade fleetkit)" in lines[
        "trading"]
    assert "fleet db upgrade" not in lines["trading"]
    assert "(run `fleet db upgrade`)" in lines["operations"]
    assert "(up to date)" in lines["market_data"]

    assert main(["db", "current", "--db", database_url, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    branches = {b["branch"]: b for b in report["databases"][0]["branches"]}
    assert branches["trading"]["state"] == "newer"
    assert branches["trading"]["action"].endswith("upgrade fleetkit")
    assert branches["operations"]["state"] == "empty"
    assert report["up_to_date"] is False and report["current"] == "0099"


def test_current_reports_every_branch_up_to_date(fleet_db: Database, database_url: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--db", database_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["up_to_date"] is True and report["head"] == migrate.HEAD
    assert [(b["branch"], b["current"]) for b in report["databases"][0]["branches"]] == [
        (b.name, b.head) for b in migrate.BRANCHES]


# --- market data in a database of its own -----------------------------------------------


@pytest.fixture
def market_data_db(backend: str, request: pytest.FixtureRequest,
                   tmp_path: Path) -> Iterator[str]:
    """A second empty database on the same backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'market.db'}"
        return
    base = str(request.getfixturevalue("pg_base_url"))
    schema = f"t_md_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_market_data_lives_in_its_own_database_when_configured(
        database_url: str, market_data_db: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(f"database:\n  market_data: {{url: {json.dumps(market_data_db)}}}\n"
                      + CONFIG)
    args = ["--config", str(config), "--db", database_url]
    assert main(["db", "upgrade", *args]) == 0
    out = capsys.readouterr().out
    assert f"market_data: migrated empty -> {migrate.branch('market_data').head}" in out
    fleet, market = create_engine(database_url), create_engine(market_data_db)
    try:
        assert "alembic_version_market_data" not in inspect(fleet).get_table_names()
        assert set(inspect(market).get_table_names()) == {"alembic_version_market_data",
                                                          *MARKET_DATA_TABLES}
    finally:
        fleet.dispose()
        market.dispose()

    assert main(["db", "current", *args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [[b["branch"] for b in d["branches"]] for d in report["databases"]] == [
        ["trading", "operations"], ["market_data"]]
    assert report["up_to_date"] is True

    url = market_data_url(load_config(config), database_url)
    assert url == market_data_db
    open_database(url, branches=migrate.COLLECTOR_BRANCHES).dispose()
    with pytest.raises(SchemaMismatchError, match="no fleetkit schema"):
        open_database(url)  # no trading branch there


def test_without_the_setting_every_branch_lives_in_the_fleet_database(
        database_url: str) -> None:
    loaded = load_config(None)
    assert market_data_url(loaded, database_url) == database_url
    assert main(["db", "upgrade", "--db", database_url]) == 0
    database = open_database(database_url, branches=migrate.BRANCH_NAMES)
    database.dispose()


def test_current_before_the_market_data_database_exists_says_to_upgrade(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrated_database(fleet_url).dispose()
    market = tmp_path / "market.db"
    assert main(["db", "current", "--db", fleet_url, "--market-data-db",
                 f"sqlite:///{market}"]) == 0
    out = capsys.readouterr().out
    head = migrate.branch("market_data").head
    assert f"market_data: at no schema, code expects {head} (run `fleet db upgrade`)" in out
    assert not market.exists()  # a report creates nothing


# --- two upgrades at once ---------------------------------------------------------------


def test_two_upgrades_at_once_both_succeed_and_migrate_once(database_url: str,
                                                             tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLEET_CONFIG", "FLEET_DB_URL")}
    runs = [subprocess.Popen([sys.executable, "-m", "fleetkit", "db", "upgrade", "--db",
                              database_url], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    migrated = [out for out, _ in outputs if f"trading: migrated empty -> {migrate.HEAD}" in out]
    assert len(migrated) == 1, outputs  # the other found nothing left to do
    database = open_database(database_url, branches=migrate.BRANCH_NAMES)
    try:
        assert database.fleet_tag()
    finally:
        database.dispose()
