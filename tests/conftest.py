"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from FLEET_TEST_PG_URL (default: the local server's `test` database).
Each test gets its own empty schema there, so tests never see each other's rows and can
run in parallel. Without a reachable server the PostgreSQL half is skipped — unless
FLEET_TEST_REQUIRE_PG=1 (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support import (
    empty_database_url,
    migrated_database,
    pg_base_url_from_env,
    pg_problem,
    pg_schema_url,
)

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(autouse=True)
def _process_logging_restored() -> Iterator[None]:
    """A command run in-process (`main([...])`) configures the process's logging as a real
    `fleet` process would: the root level and fleetkit's console handler. Left behind, it
    would print the next test's INFO lines into the stderr that test compares."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()  # a log file's handle, closed as the process's exit would
    root.setLevel(level)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say up front which databases this run covers, so a green run can't hide a skip."""
    url = pg_base_url_from_env()
    problem = pg_problem(url)
    required = os.environ.get("FLEET_TEST_REQUIRE_PG") == "1"
    if problem is None:
        where = url.rsplit("@", 1)[-1]
        return [f"fleetkit: database tests run on SQLite and PostgreSQL ({where})"]
    return [f"fleetkit: PostgreSQL unavailable ({problem.splitlines()[0]}); "
            + ("that is an error here (FLEET_TEST_REQUIRE_PG=1)" if required
               else "PostgreSQL tests will be skipped")]


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = pg_base_url_from_env()
    problem = pg_problem(url)
    if problem is not None:
        if os.environ.get("FLEET_TEST_REQUIRE_PG") == "1":
            pytest.fail(f"FLEET_TEST_REQUIRE_PG=1 but {problem}")
        pytest.skip(f"no PostgreSQL ({problem}); set FLEET_TEST_PG_URL to run these")
    return url


@pytest.fixture
def pg_schema(pg_base_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(pg_base_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a fresh SQLite file or PostgreSQL schema."""
    return empty_database_url(backend, request, tmp_path)


@pytest.fixture
def fleet_db(database_url: str) -> Iterator[Any]:
    """A migrated fleet database on each backend."""
    database = migrated_database(database_url)
    yield database
    database.dispose()
