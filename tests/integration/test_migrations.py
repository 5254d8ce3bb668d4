"""Migrations: the migrated schema is exactly the table definitions, on both backends;
upgrading twice changes nothing; a bot refuses a schema it was not built for."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from fleetkit.core.errors import SchemaMismatchError
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store import migrate
from fleetkit.store.database import open_database, upgrade_database
from fleetkit.store.schema import metadata


def test_the_revision_list_matches_the_migration_scripts() -> None:
    assert list(migrate.REVISIONS) == migrate.script_revisions()


def test_the_migrated_schema_matches_the_table_definitions(fleet_db: Any) -> None:
    with fleet_db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrading_twice_is_a_no_op(fleet_db: Any) -> None:
    before, after = upgrade_database(fleet_db)
    assert before == after == migrate.HEAD
    tag = fleet_db.fleet_tag()
    upgrade_database(fleet_db)
    assert fleet_db.fleet_tag() == tag


def test_a_database_without_a_schema_is_refused_with_the_fix(database_url: str) -> None:
    with pytest.raises(SchemaMismatchError, match="run `fleet db upgrade` first"):
        open_database(database_url)


def test_a_database_at_an_older_revision_is_refused_with_the_fix(fleet_db: Any,
                                                                   database_url: str) -> None:
    with write_transaction(fleet_db.engine) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaMismatchError, match=r"newer than this fleetkit|fleet db upgrade"):
        open_database(database_url)


def test_a_database_from_a_newer_fleetkit_is_refused(fleet_db: Any, database_url: str) -> None:
    with write_transaction(fleet_db.engine) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaMismatchError, match="newer than this fleetkit"):
        open_database(database_url)
