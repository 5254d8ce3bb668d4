"""INSERT ... ON CONFLICT DO UPDATE / DO NOTHING for both SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table


def upsert(conn: Connection, table: Table, values: Mapping[str, Any],
           key: Sequence[str]) -> None:
    """Insert `values`, or update the row with the same `key` columns to them."""
    statement = dialect_insert(conn, table).values(**values)
    changes = {name: statement.excluded[name] for name in values if name not in key}
    if changes:
        statement = statement.on_conflict_do_update(index_elements=list(key), set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    conn.execute(statement)


def insert_if_absent(conn: Connection, table: Table, values: Mapping[str, Any],
                     key: Sequence[str]) -> bool:
    """Insert `values` unless a row with the same `key` columns (a unique constraint)
    exists; True if this call inserted it. Atomic on both backends, so of two writers
    racing for one key exactly one gets True — and, unlike catching IntegrityError, the
    loser's PostgreSQL transaction stays usable."""
    # RETURNING rather than rowcount: psycopg reports no rowcount for this INSERT.
    statement = dialect_insert(conn, table).values(**values).on_conflict_do_nothing(
        index_elements=list(key)).returning(*(table.c[name] for name in key))
    return conn.execute(statement).first() is not None


def insert_many_if_absent(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                          key: Sequence[str]) -> int:
    """Insert each of `rows` unless a row with its `key` exists; how many this call inserted.

    One multi-row INSERT ... ON CONFLICT DO NOTHING: one round trip on PostgreSQL, and
    idempotent on both backends (a rerun, or a writer racing this one, inserts nothing
    twice). The caller keeps `rows` small enough for the backend's bind limit (SQLite:
    32,766 parameters)."""
    if not rows:
        return 0
    statement = dialect_insert(conn, table).values(list(rows)).on_conflict_do_nothing(
        index_elements=list(key)).returning(table.c[key[0]])
    return len(conn.execute(statement).all())


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The backend's INSERT for `table` (the one with ON CONFLICT clauses)."""
    # Imported here so a process on SQLite never loads the PostgreSQL dialect, and vice versa.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql as module
    else:
        from sqlalchemy.dialects import sqlite as module  # type: ignore[no-redef]
    return module.insert(table)
