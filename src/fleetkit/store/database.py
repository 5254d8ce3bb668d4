"""Opening the fleet database: connect, check the schema, and say clearly when we can't."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from fleetkit.core.errors import ConfigError, DatabaseUnavailableError, SchemaMismatchError
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


@dataclass(frozen=True, slots=True)
class SchemaPlacement:
    """Which schema branches live in the database at `url`."""

    url: str
    branches: tuple[str, ...]


def placements(fleet_url: str, market_data_url: str | None = None
               ) -> tuple[SchemaPlacement, ...]:
    """Every branch in the fleet database, unless market data has a database of its own."""
    if market_data_url is None or market_data_url == fleet_url:
        return (SchemaPlacement(fleet_url, migrate.BRANCH_NAMES),)
    return (SchemaPlacement(fleet_url, tuple(b for b in migrate.BRANCH_NAMES
                                             if b != migrate.MARKET_DATA)),
            SchemaPlacement(market_data_url, (migrate.MARKET_DATA,)))


def open_database(url: str, *, require_schema: bool = True,
                  branches: Sequence[str] = migrate.BOT_BRANCHES, synchronous: str = "NORMAL",
                  application_name: str = "fleetkit", must_exist: bool = False,
                  home: Path | None = None) -> Database:
    """Connect and (by default) insist that `branches` are at the revisions this code
    expects (a bot checks only the trading branch).

    Raises ConfigError for a malformed URL, DatabaseUnavailableError when the server or file
    can't be reached, SchemaMismatchError when `fleet db upgrade` is needed. `must_exist`
    refuses to create a new SQLite file (read commands must not leave empty databases). A
    new SQLite file's missing directory is made only inside `home` (the fleet home).
    """
    where = redact_url(url)
    if must_exist:
        _require_sqlite_file(url)
    _require_sqlite_directory(url, home)
    try:
        engine = make_engine(url, synchronous=synchronous, application_name=application_name)
    except ValueError as exc:
        raise ConfigError(f"{exc} (set --db or FLEET_DB_URL)") from None
    database = Database(engine, where)
    try:
        ping(database)
        if require_schema:
            migrate.require_current_schema(engine, where, branches)
    except BaseException:
        engine.dispose()  # a refused database must not leave pooled connections behind
        raise
    return database


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names; None for anything else (make_engine reports bad URLs)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database or ""
    if (parsed.get_backend_name() != "sqlite" or database in ("", ":memory:")
            or database.startswith("file:")):
        return None
    return Path(database).expanduser()


def _require_sqlite_file(url: str) -> None:
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise ConfigError(f"no fleet database at {path}: start the fleet with `fleet up`, "
                          "or point --db / FLEET_DB_URL at the right one")


def _require_sqlite_directory(url: str, home: Path | None) -> None:
    """A mistyped path must not scatter directories over the disk: only the fleet home's
    own are made; anywhere else the directory must exist already."""
    path = sqlite_path(url)
    if path is None:
        return
    folder = path.absolute().parent
    if folder.is_dir():
        return
    if home is not None and folder.resolve().is_relative_to(home.resolve()):
        folder.mkdir(parents=True, exist_ok=True)
        return
    raise ConfigError(f"no directory {folder} for the SQLite database {path}: create it "
                      f"(mkdir -p {folder}), or point --db / FLEET_DB_URL at a file in an "
                      "existing directory")


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


def upgrade_database(database: Database, branches: Sequence[str] = migrate.BRANCH_NAMES, *,
                     strict: bool = True) -> tuple[migrate.BranchUpgrade, ...]:
    """Migrate each branch to its head and make sure the fleet tag exists (idempotent).

    A branch a newer fleetkit migrated is left alone while the others are upgraded; then
    `strict` raises SchemaMismatchError naming it (otherwise the caller reports it).
    """
    done = migrate.upgrade(database.engine, branches)
    trading = [u.after for u in done if u.after.branch == migrate.TRADING]
    if trading and trading[0].state is migrate.SchemaState.CURRENT:
        with write_transaction(database.engine) as conn:
            exists = conn.execute(select(fleet_meta.c.key)
                                  .where(fleet_meta.c.key == "fleet_tag")).first()
            if exists is None:
                conn.execute(insert(fleet_meta).values(key="fleet_tag",
                                                       value=secrets.token_hex(2)))
    newer = [u.after for u in done if u.after.state is migrate.SchemaState.NEWER]
    if strict and newer:
        raise SchemaMismatchError("; ".join(migrate.mismatch(s, database.where) for s in newer))
    return done


@dataclass(frozen=True, slots=True)
class PlacementUpgrade:
    where: str
    branches: tuple[migrate.BranchUpgrade, ...]


def upgrade_placements(layout: Sequence[SchemaPlacement], *, home: Path | None = None,
                       application_name: str = "fleetkit", strict: bool = True
                       ) -> list[PlacementUpgrade]:
    """`fleet db upgrade`: every branch of every database it lives in, one database after
    the other (each under its own migration lock)."""
    done: list[PlacementUpgrade] = []
    for placement in layout:
        database = open_database(placement.url, require_schema=False, home=home,
                                 application_name=application_name)
        try:
            done.append(PlacementUpgrade(database.where, upgrade_database(
                database, placement.branches, strict=strict)))
        finally:
            database.dispose()
    return done
