"""The days of `option_quotes` held in the database: one partition per trading day on
PostgreSQL (made, listed, detached, dropped here), one set of rows per day on SQLite.

A day's partition is `option_quotes_pYYYYMMDD`, in the parent's schema, for [day, day+1).
A detached one keeps its name: the archiver (data/option_archiver.py) detaches a day first,
so no late write lands in rows about to be dropped, then exports, verifies, and drops it.
What is here is the database half of that; the order of the steps is the archiver's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, func, select, text

from fleetkit.core.errors import FleetError
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.store import option_archive
from fleetkit.store.schema import option_quotes

if TYPE_CHECKING:
    import pyarrow as pa
    from psycopg import Copy

# Table names in the SQL below are built from this constant and dates, never from input.
PARENT = "option_quotes"
_NAME = re.compile(r"^option_quotes_p(\d{8})$")
# Serialises partition DDL between writers and the maintenance job (any constant, the same
# in every fleetkit process; store.migrate's lock is another).
_PG_PARTITION_LOCK = 0x6F717074
COLUMNS: tuple[str, ...] = tuple(c.name for c in option_quotes.columns)


class DayState(StrEnum):
    ATTACHED = "attached"  # PostgreSQL: a partition taking writes
    DETACHED = "detached"  # PostgreSQL: detached for archiving, not dropped yet
    STORED = "stored"  # SQLite: rows in the plain table


@dataclass(frozen=True, slots=True)
class StoredDay:
    day: date
    state: DayState
    rows: int
    bytes: int | None  # the partition's size with its indexes; None on SQLite

    def as_json(self) -> dict[str, object]:
        return {"day": self.day.isoformat(), "state": self.state.value, "rows": self.rows,
                "bytes": self.bytes}


class PartitionError(FleetError):
    """A day's partition is not in the shape the step expects (e.g. detached mid-archive
    while a writer wants it): the message says what to run."""


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def day_of_partition(name: str) -> date | None:
    match = _NAME.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None  # noqa: DTZ007


def ensure_partition(conn: Connection, day: date) -> bool:
    """Make `day`'s partition unless it is there (PostgreSQL; a no-op on SQLite), in the
    caller's transaction; True when this call made it."""
    if conn.dialect.name != "postgresql":
        return False
    schema = _parent_schema(conn)
    name = partition_name(day)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_PARTITION_LOCK})
    found = conn.execute(text(
        "SELECT c.relispartition FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = :schema AND c.relname = :name"),
        {"schema": schema, "name": name}).first()
    if found is not None:
        if not found[0]:
            raise PartitionError(
                f"option quotes of {day} are being archived (table {name} is detached): "
                f"run `fleet data archive` to finish, then write that day again")
        return False
    conn.execute(text(
        f'CREATE TABLE "{schema}"."{name}" PARTITION OF "{schema}"."{PARENT}" '
        f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"))
    return True


class OptionPartitions:
    """The days of option quotes in one market-data database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.partitioned = engine.dialect.name == "postgresql"

    def create(self, days: list[date]) -> list[date]:
        """Make the partitions of `days` that are missing (PostgreSQL); the days made."""
        if not self.partitioned:
            return []
        with write_transaction(self._engine) as conn:
            return [day for day in days if ensure_partition(conn, day)]

    def days(self) -> list[StoredDay]:
        """Every day in the database, oldest first, with its exact row count."""
        with read_transaction(self._engine) as conn:
            if not self.partitioned:
                query = (select(option_quotes.c.trading_day, func.count())
                         .group_by(option_quotes.c.trading_day)
                         .order_by(option_quotes.c.trading_day))
                return [StoredDay(day, DayState.STORED, rows, None)
                        for day, rows in conn.execute(query)]
            found = []
            for name, attached, size in conn.execute(text(
                    "SELECT c.relname, c.relispartition, pg_total_relation_size(c.oid)"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = :schema AND c.relkind = 'r'"
                    r" AND c.relname LIKE 'option\_quotes\_p%' ORDER BY c.relname"),
                    {"schema": _parent_schema(conn)}):
                day = day_of_partition(name)
                if day is None:
                    continue
                rows = conn.execute(text(
                    f'SELECT count(*) FROM "{name}"')).scalar_one()  # noqa: S608 (a day's name)
                found.append(StoredDay(day, DayState.ATTACHED if attached else DayState.DETACHED,
                                       int(rows), int(size)))
            return found

    def stored_days(self) -> list[date]:
        """Every day in the database, oldest first, without counting rows (days() counts
        each partition in full: ~350,000 rows a day)."""
        with read_transaction(self._engine) as conn:
            if not self.partitioned:
                query = (select(option_quotes.c.trading_day).distinct()
                         .order_by(option_quotes.c.trading_day))
                return list(conn.execute(query).scalars())
            names = conn.execute(text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :schema AND c.relkind = 'r'"
                r" AND c.relname LIKE 'option\_quotes\_p%' ORDER BY c.relname"),
                {"schema": _parent_schema(conn)}).scalars()
            return [day for day in map(day_of_partition, names) if day is not None]

    def state(self, day: date) -> DayState | None:
        """Where `day` is: None when the database holds nothing of it."""
        with read_transaction(self._engine) as conn:
            if not self.partitioned:
                held = conn.execute(select(option_quotes.c.trading_day)
                                    .where(option_quotes.c.trading_day == day).limit(1)).first()
                return DayState.STORED if held is not None else None
            found = conn.execute(text(
                "SELECT c.relispartition FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = :name"),
                {"schema": _parent_schema(conn), "name": partition_name(day)}).first()
        if found is None:
            return None
        return DayState.ATTACHED if found[0] else DayState.DETACHED

    def detach(self, day: date) -> None:
        """Stop `day` taking writes (PostgreSQL): a late write now fails loudly instead of
        adding rows the archive would not hold. A no-op on SQLite and when detached."""
        if not self.partitioned or self.state(day) is not DayState.ATTACHED:
            return
        with write_transaction(self._engine) as conn:
            schema = _parent_schema(conn)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_PARTITION_LOCK})
            conn.execute(text(f'ALTER TABLE "{schema}"."{PARENT}" DETACH PARTITION '
                              f'"{schema}"."{partition_name(day)}"'))

    def _read_day(self, day: date) -> dict[str, list[Any]]:
        """The day's rows as columns (COLUMNS order), by minute then instrument (SQLite:
        PostgreSQL exports a day by COPY, export_day)."""
        with read_transaction(self._engine) as conn:
            query = (select(*option_quotes.c).where(option_quotes.c.trading_day == day)
                     .order_by(option_quotes.c.minute, option_quotes.c.instrument))
            rows: list[Any] = list(conn.execute(query))
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
        return {name: list(values) for name, values in zip(COLUMNS, columns, strict=True)}

    def export_day(self, day: date) -> pa.Table:
        """The day's rows as an Arrow table in the archive's schema, by minute then
        instrument; on PostgreSQL from its detached table (detach first), streamed by COPY
        as CSV into Arrow's parser (store.option_archive.from_csv) as it arrives."""
        if not self.partitioned:
            return option_archive.to_table(self._read_day(day))
        with read_transaction(self._engine) as conn:
            # COPY's text follows these settings: fixed for this transaction, so that a
            # server set otherwise can neither round `iv` (extra_float_digits = 0 writes a
            # double to 15 digits, and the file would then match the export but not the
            # database) nor write dates Arrow cannot read (a DateStyle other than ISO).
            conn.execute(text("SELECT set_config('extra_float_digits', '3', true),"
                              " set_config('DateStyle', 'ISO', true)"))
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            selected = ", ".join("(extract(epoch FROM minute) * 1000000)::bigint"
                                 if name == "minute" else name for name in COLUMNS)
            # No ORDER BY: Arrow puts the rows in archive order for a fraction of what
            # PostgreSQL's sort costs (option_archive.in_archive_order). Names from COLUMNS,
            # the schema's own name and a date: nothing from input.
            with cursor.copy(f'COPY (SELECT {selected} FROM "{_parent_schema(conn)}".'  # noqa: S608
                             f'"{partition_name(day)}") TO STDOUT (FORMAT csv)') as copy:
                stream = _CopyStream(copy)
                # A failed parse leaves the COPY unread: psycopg cancels it on the way out
                # and the transaction rolls back, as for any error.
                return option_archive.from_csv(b"" if stream.at_end() else stream)

    def drop(self, day: date, expected_rows: int) -> None:
        """Remove the day from the database, only if it still holds `expected_rows` (what
        the verified archive holds): a row that arrived since stops it (rerun the archive)."""
        with write_transaction(self._engine) as conn:
            if not self.partitioned:
                gone = conn.execute(delete(option_quotes)
                                    .where(option_quotes.c.trading_day == day)).rowcount
                if gone != expected_rows:
                    raise PartitionError(
                        f"option quotes of {day}: {gone} rows in the database, the archive "
                        f"holds {expected_rows}; nothing deleted — run `fleet data archive` "
                        "again to archive the new rows too")
                return
            schema = _parent_schema(conn)
            name = partition_name(day)
            rows = conn.execute(text(
                f'SELECT count(*) FROM "{schema}"."{name}"')).scalar_one()  # noqa: S608
            if rows != expected_rows:
                raise PartitionError(
                    f"option quotes of {day}: table {name} holds {rows} rows, the archive "
                    f"{expected_rows}; nothing dropped — run `fleet data archive` again")
            conn.execute(text(f'DROP TABLE "{schema}"."{name}"'))


class _CopyStream:
    """A `COPY ... TO STDOUT` as the file Arrow's CSV reader pulls from. Arrow reads blocks
    on a thread of its own and parses each as it comes, so the parse of the first rows
    overlaps PostgreSQL formatting the last ones instead of waiting for all of them (~150 ms
    of a day's ~350,000 rows). psycopg hands over one message per row; they are gathered
    here into the blocks Arrow asks for."""

    closed = False  # what pyarrow.PythonFile asks of a file

    def __init__(self, copy: Copy) -> None:
        self._rows = iter(copy)
        self._pending = bytearray()

    def at_end(self) -> bool:
        """No more rows (Arrow refuses an empty CSV; the caller makes an empty table)."""
        self._fill(1)
        return not self._pending

    def read(self, size: int = -1, /) -> bytes:
        self._fill(size)
        taken = len(self._pending) if size < 0 else min(size, len(self._pending))
        block = bytes(self._pending[:taken])
        del self._pending[:taken]
        return block

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def _fill(self, size: int) -> None:
        if 0 <= size <= len(self._pending):
            return
        for row in self._rows:
            self._pending += row
            if 0 <= size <= len(self._pending):
                return


def _parent_schema(conn: Connection) -> str:
    """The schema option_quotes lives in (the first on the search path that has it):
    partitions go beside it."""
    schema = conn.execute(text(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = to_regclass(:parent)"), {"parent": PARENT}).scalar_one_or_none()
    if schema is None:
        raise PartitionError("no option_quotes table in this database: run `fleet db upgrade`")
    return str(schema)
