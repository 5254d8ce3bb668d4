"""Helpers shared by tests (import as `from tests.support import ...`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url_from_env() -> str:
    url = os.environ.get("FLEET_TEST_PG_URL", DEFAULT_PG_URL)
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def pg_problem(url: str) -> str | None:
    """Why PostgreSQL at `url` can't be used, or None if it can."""
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not usable here"
        return f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)}: {exc}"
    return None


def pg_schema_url(base_url: str, schema: str) -> str:
    """A URL whose connections use `schema` as their search path (one namespace per test)."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def empty_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("pg_schema"))


def migrated_database(url: str) -> Any:
    """A fleetkit.store.database.Database at `url`, migrated to head."""
    from fleetkit.store.database import open_database, upgrade_database

    database = open_database(url, require_schema=False)
    upgrade_database(database)
    return database


def eventually(check: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    """Poll `check()` until it returns True; errors while polling mean "not yet" (a database
    not created yet, a process still starting) and the last one is reported on timeout."""
    import time

    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # polling: anything can be "not there yet"
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}"
                         + (f" (last error: {last!r})" if last else ""))


# --- crash windows at the broker seam -----------------------------------------------------


class Killed(BaseException):
    """The process died right here (kill -9): nothing after this line runs, no cleanup."""


class BrokerSeam:
    """A broker wrapper that passes everything through; subclasses override one call."""

    def __init__(self, broker: Any) -> None:
        self._broker = broker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


class DiesAfterSending(BrokerSeam):
    """The order reaches the broker, then the process dies before recording the answer."""

    def submit(self, request: Any) -> Any:
        self._broker.submit(request)
        raise Killed
