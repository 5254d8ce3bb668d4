"""Creating database engines with the settings fleetkit relies on, and naming databases safely."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from fleetkit.core.errors import DatabaseUnavailableError
from fleetkit.sqlutil.errors import is_unavailable

SQLITE_BUSY_TIMEOUT_MS = 10_000
BUSY_TIMEOUT_ENV = "FLEET_SQLITE_BUSY_TIMEOUT_MS"


def normalize_url(url: str) -> URL:
    """Parse a database URL; `postgresql://` means psycopg 3. Raises ValueError with the fix."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(
            f"cannot parse database URL {redact_url(url)!r}: use sqlite:///path/to/file.db "
            "or postgresql://user@host:5432/dbname"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: "
                         "fleetkit runs on SQLite or PostgreSQL")
    return parsed


def redact_url(url: str | URL) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str, *, synchronous: str = "NORMAL", pool_size: int = 2,
                application_name: str = "fleetkit", connect_timeout_s: int = 5) -> Engine:
    """An Engine configured for many small processes sharing one database.

    SQLite: WAL (readers never block the writer), a busy timeout so concurrent writers wait
    instead of failing, foreign keys on. `synchronous=NORMAL` survives any process crash
    (kill -9); use FULL to also survive power loss, at one fsync per commit.
    PostgreSQL: a small pool per process (a fleet is many processes), short connect timeout
    so an outage is noticed quickly, and the process named in pg_stat_activity.
    """
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        busy_timeout_ms = sqlite_busy_timeout_ms()
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        if database in ("", ":memory:"):
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
        else:
            kwargs["poolclass"] = NullPool if os.environ.get("FLEET_SQLITE_NULLPOOL") else None
            if kwargs["poolclass"] is None:
                del kwargs["poolclass"]
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, synchronous, busy_timeout_ms)
        return engine
    # Keepalives and a TCP user timeout: a silent partition or a frozen server surfaces as
    # an error within ~30 s (and the bot pauses) instead of a read that blocks for ever.
    kwargs["connect_args"] = {"connect_timeout": connect_timeout_s,
                              "application_name": application_name,
                              "keepalives": 1, "keepalives_idle": 10,
                              "keepalives_interval": 5, "keepalives_count": 3,
                              "tcp_user_timeout": 30_000}
    kwargs["pool_size"] = pool_size
    kwargs["max_overflow"] = 2
    # No pre-ping: it costs a round trip per transaction on the order path. A connection
    # that died raises on use, is invalidated, and the caller's outage handling retries.
    kwargs["pool_pre_ping"] = False
    return create_engine(parsed, **kwargs)


def sqlite_busy_timeout_ms() -> int:
    """How long a SQLite writer waits for another's lock before the database counts as
    unavailable: SQLITE_BUSY_TIMEOUT_MS, or FLEET_SQLITE_BUSY_TIMEOUT_MS (outage drills)."""
    text = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not text:
        return SQLITE_BUSY_TIMEOUT_MS
    if not text.isdigit():
        raise ValueError(f"{BUSY_TIMEOUT_ENV} must be a whole number of milliseconds, "
                         f"got {text!r}")
    return int(text)


def _configure_sqlite(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"unknown SQLite synchronous mode {synchronous!r}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is replaced by explicit BEGIN below, so
        # every transaction takes the write lock up front (no deadlocking upgrades).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes cannot wait for the lock (SQLite fails
        # it at once to avoid deadlock), so writers take the write lock up front.
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


_WRITE_OPTION = "fleetkit_write"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its start.

    Raises DatabaseUnavailableError when the database cannot be reached (callers pause and
    retry); any other database error propagates unchanged, because retrying a bug is wrong.
    """
    with _unavailable_as_error(engine), engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: one consistent snapshot, never blocks writers."""
    with _unavailable_as_error(engine), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def _unavailable_as_error(engine: Engine) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        raise DatabaseUnavailableError(
            f"database {redact_url(engine.url)} unavailable: {reason}") from exc
