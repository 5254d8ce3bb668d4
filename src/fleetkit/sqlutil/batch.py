"""Independent writes sent as one statement: on PostgreSQL one round trip, not one each.

PostgreSQL runs data-modifying statements inside WITH, so `a; b; c` becomes
`WITH w0 AS (a), w1 AS (b) c`: one statement, one round trip, the same rows written, the
same triggers, row-level security and constraints. SQLite has no data-modifying CTEs, and
no network either: there the statements simply run one after another.

What may go together (the caller's promise, as PostgreSQL runs them on one snapshot):
statements that read nothing another of them writes, and never two that touch the same
row. Each must be built once (module constants) with bind names of its own, so that the
combined statement is built and compiled once too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import UpdateBase

# id()s of the parts -> (the parts, kept alive so no id is reused; the combined statement)
_COMBINED: dict[tuple[int, ...], tuple[tuple[UpdateBase, ...], UpdateBase]] = {}


def run_together(conn: Connection, statements: Sequence[UpdateBase],
                 params: Mapping[str, Any]) -> None:
    """Run `statements` with `params` (every part's binds, in one mapping) on `conn`."""
    if len(statements) == 1 or conn.dialect.name != "postgresql":
        for statement in statements:
            conn.execute(statement, params)
        return
    conn.execute(_combined(tuple(statements)), params)


def _combined(parts: tuple[UpdateBase, ...]) -> UpdateBase:
    key = tuple(map(id, parts))
    known = _COMBINED.get(key)
    if known is None:
        *leading, last = parts
        ctes = [part.cte(f"write_{n}") for n, part in enumerate(leading)]
        known = _COMBINED[key] = (parts, last.add_cte(*ctes))
    return known[1]


class WriteBatch:
    """Writes collected while a transaction goes on, run together at `flush` — before
    anything reads what they write, and at the end. Writes that would clash with one held
    (the same statement again: its binds would collide, it might touch the same row) flush
    the held ones first."""

    __slots__ = ("_params", "_statements")

    def __init__(self) -> None:
        self._statements: list[UpdateBase] = []
        self._params: dict[str, Any] = {}

    def add(self, conn: Connection, statements: Sequence[UpdateBase],
            params: Mapping[str, Any]) -> None:
        held = self._statements
        if any(s is h for s in statements for h in held) or not self._params.keys(
                ).isdisjoint(params):
            self.flush(conn)
        self._statements.extend(statements)
        self._params.update(params)

    def flush(self, conn: Connection) -> None:
        if self._statements:
            statements, params = self._statements, self._params
            self._statements, self._params = [], {}
            run_together(conn, statements, params)
