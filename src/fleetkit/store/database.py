"""Opening the fleet database: connect, check the schema, and say clearly when we can't."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from fleetkit.core.errors import ConfigError, DatabaseUnavailableError
from fleetkit.sqlutil.engine import make_engine, read_transaction, redact_url, write_transaction
from fleetkit.store import migrate
from fleetkit.store.schema import fleet_meta


@dataclass(frozen=True, slots=True)
class Database:
    engine: Engine
    where: str  # the URL without its password, for messages

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def fleet_tag(self) -> str:
        """A short random id of this database, stamped into client order ids."""
        with read_transaction(self.engine) as conn:
            tag = conn.execute(select(fleet_meta.c.value).where(fleet_meta.c.key == "fleet_tag")
                               ).scalar_one_or_none()
        if tag is None:
            raise ConfigError(f"the database at {self.where} has no fleet tag: "
                              "run `fleet db upgrade`")
        return str(tag)

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, require_schema: bool = True, synchronous: str = "NORMAL",
                  application_name: str = "fleetkit", must_exist: bool = False) -> Database:
    """Connect and (by default) insist on the schema this code expects.

    Raises ConfigError for a malformed URL, DatabaseUnavailableError when the server or file
    can't be reached, SchemaMismatchError when `fleet db upgrade` is needed. `must_exist`
    refuses to create a new SQLite file (read commands must not leave empty databases).
    """
    where = redact_url(url)
    if must_exist:
        _require_sqlite_file(url)
    try:
        engine = make_engine(url, synchronous=synchronous, application_name=application_name)
    except ValueError as exc:
        raise ConfigError(f"{exc} (set --db or FLEET_DB_URL)") from None
    database = Database(engine, where)
    try:
        ping(database)
        if require_schema:
            migrate.require_current_schema(engine, where)
    except BaseException:
        engine.dispose()  # a refused database must not leave pooled connections behind
        raise
    return database


def _require_sqlite_file(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # make_engine reports it
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "")
        if not path.exists():
            raise ConfigError(f"no fleet database at {path}: start the fleet with `fleet up`, "
                              "or point --db / FLEET_DB_URL at the right one")


def ping(database: Database, *, write: bool = False) -> None:
    """Raise DatabaseUnavailableError unless the database answers. `write=True` also takes
    the write lock: a reader gets through a SQLite file that another process holds locked,
    so only a writer's ping proves a paused bot can write again."""
    try:
        if write:
            with write_transaction(database.engine) as conn:
                conn.execute(text("SELECT 1"))
        else:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, DatabaseUnavailableError) as exc:
        cause = exc.__cause__ if isinstance(exc, DatabaseUnavailableError) else exc
        reason = str(getattr(cause, "orig", None) or cause or exc).strip().splitlines()[0]
        raise DatabaseUnavailableError(
            f"cannot reach the database at {database.where}: {reason} — check --db / "
            "FLEET_DB_URL, or start the database server") from None


def upgrade_database(database: Database) -> tuple[str | None, str]:
    """Migrate to head and make sure the fleet tag exists (idempotent)."""
    before, after = migrate.upgrade(database.engine)
    with write_transaction(database.engine) as conn:
        exists = conn.execute(select(fleet_meta.c.key).where(fleet_meta.c.key == "fleet_tag")
                              ).first()
        if exists is None:
            conn.execute(insert(fleet_meta).values(key="fleet_tag", value=secrets.token_hex(2)))
    return before, after
