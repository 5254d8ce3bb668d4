"""Migrations: the migrated schema is exactly the table definitions, on both backends;
upgrading twice changes nothing; a bot refuses a schema it was not built for."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from fleetkit.core.errors import SchemaMismatchError
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store import migrate
from fleetkit.store.database import open_database, upgrade_database
from fleetkit.store.schema import metadata


@pytest.mark.parametrize("branch", migrate.BRANCH_NAMES)
def test_the_revision_list_matches_the_migration_scripts(branch: str) -> None:
    assert list(migrate.branch(branch).revisions) == migrate.script_revisions(branch)


def test_every_script_is_in_one_branch_and_no_branch_leans_on_another() -> None:
    """Branches may live in different databases: none may need another's revisions, and
    each is one line of revisions (its version table holds one row)."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    listed = [r for b in migrate.BRANCHES for r in b.revisions]
    assert sorted(listed) == sorted(s.revision for s in scripts.walk_revisions())
    assert len(set(listed)) == len(listed)
    for of in migrate.BRANCHES:
        assert scripts.get_revision(of.revisions[0]).down_revision is None
        assert of.name in scripts.get_revision(of.revisions[0]).branch_labels
        for older, newer in zip(of.revisions, of.revisions[1:], strict=False):
            assert scripts.get_revision(newer).down_revision == older
        for revision in of.revisions:
            assert not scripts.get_revision(revision).dependencies, revision


def test_the_migrated_schema_matches_the_table_definitions(fleet_db: Any) -> None:
    with fleet_db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            # The branches' version tables are alembic's bookkeeping, not models.
            "include_name": lambda name, kind, _parents: not (
                kind == "table" and migrate.is_version_table(name))})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_upgrading_twice_is_a_no_op(fleet_db: Any) -> None:
    done = upgrade_database(fleet_db)
    assert [u.after.stored for u in done] == [(b.head,) for b in migrate.BRANCHES]
    assert not any(u.changed for u in done)
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
