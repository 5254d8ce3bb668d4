"""Schema migrations: upgrade, report, and refuse to run against the wrong schema."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from fleetkit.core.errors import SchemaMismatchError
from fleetkit.sqlutil.engine import read_transaction, write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

# Every revision in migrations/versions, oldest first. A bot checks the schema against these
# without importing alembic (bot processes start faster and stay smaller); a test keeps the
# list equal to the migration scripts.
REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008",
                              "0009", "0010", "0011")
HEAD = REVISIONS[-1]

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every fleetkit process.
_PG_MIGRATION_LOCK = 0x666C6565


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return HEAD


def script_revisions() -> list[str]:
    """Revisions as alembic finds them in the scripts, oldest first (tests compare)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(scripts.walk_revisions()))]


def current_revision(engine: Engine) -> str | None:
    with read_transaction(engine) as conn:
        return _stored_revision(conn)


def _stored_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Bring the schema to `target`; safe to run twice or from two processes at once.

    Returns (revision before, revision after).
    """
    from alembic import command

    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent upgrades; the loser then finds nothing left to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = _stored_revision(conn)
        command.upgrade(alembic_config(conn), target)
        after = _stored_revision(conn)
    if after is None:
        raise RuntimeError("migration finished without a revision")
    return before, after


def require_current_schema(engine: Engine, where: str) -> None:
    """Raise SchemaMismatchError unless the database is exactly at this code's head."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaMismatchError(
            f"the database at {where} has no fleetkit schema: run `fleet db upgrade` first")
    if current not in REVISIONS:
        raise SchemaMismatchError(
            f"the database at {where} is at schema {current}, newer than this fleetkit "
            f"(expects {head}): upgrade fleetkit on this machine")
    raise SchemaMismatchError(
        f"the database at {where} is at schema {current}, this fleetkit expects {head}: "
        "run `fleet db upgrade`")
