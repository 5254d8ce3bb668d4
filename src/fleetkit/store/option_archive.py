"""Parquet archives of option quotes: one file per trading day, its sha256 in a sidecar.

    ARCHIVE_DIR/2026/option_quotes_2026-01-05.parquet
    ARCHIVE_DIR/2026/option_quotes_2026-01-05.parquet.sha256   ("<hex>  <file name>\\n",
                                                                as `sha256sum -c` reads it)

Each file is written whole or not at all (store.files.write_atomically), the Parquet file
before its sidecar, so a file whose sidecar is missing or disagrees was cut short and is
never trusted. Exact decimals stay exact: decimal128 with SCALE places (a value with more
is refused, never rounded). pyarrow is imported here only, when an archive is touched.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fleetkit.core.errors import FleetError
from fleetkit.store.files import fsync_directory, write_atomically

if TYPE_CHECKING:
    import pyarrow as pa

PRECISION = 24  # digits: 16 before the point, SCALE after
SCALE = 8  # places: paise and crypto satoshis alike
_DECIMALS = ("strike", "bid", "ask", "last", "underlying_price")
_SUFFIX = ".parquet"


class Readable(Protocol):
    """What Arrow's CSV reader pulls from (pyarrow.PythonFile): up to `size` bytes, b"" at
    the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class ArchiveError(FleetError):
    """An archive could not be written or does not hold what it should; the database still
    holds the day (nothing is dropped before a file is verified)."""


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    day: date
    path: Path
    sha256: str
    rows: int
    bytes: int

    def as_json(self) -> dict[str, object]:
        return {"day": self.day.isoformat(), "path": str(self.path), "sha256": self.sha256,
                "rows": self.rows, "bytes": self.bytes}


def archive_path(root: Path, day: date) -> Path:
    return root / f"{day:%Y}" / f"option_quotes_{day.isoformat()}{_SUFFIX}"


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def schema() -> pa.Schema:
    import pyarrow as pa

    money = pa.decimal128(PRECISION, SCALE)
    return pa.schema([
        ("trading_day", pa.date32()), ("instrument", pa.string()),
        ("minute", pa.timestamp("us", tz="UTC")), ("underlying", pa.string()),
        ("expiry", pa.date32()), ("strike", money), ("option_type", pa.string()),
        ("bid", money), ("ask", money), ("last", money), ("volume", pa.int64()),
        ("open_interest", pa.int64()), ("underlying_price", money), ("iv", pa.float64()),
        ("source", pa.string())])


def to_table(columns: Mapping[str, Sequence[Any]]) -> pa.Table:
    """The rows (as store.option_partitions reads a day on SQLite) as an
    Arrow table in the archive's schema; ArchiveError if a value does not fit exactly."""
    import pyarrow as pa

    try:
        return pa.Table.from_pydict({name: list(columns[name]) for name in schema().names},
                                    schema=schema())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ArchiveError(f"option quotes do not fit the archive's columns (decimals keep "
                           f"{SCALE} places): {exc}") from exc


def from_csv(source: bytes | Readable) -> pa.Table:
    """Rows as PostgreSQL's `COPY ... TO STDOUT (FORMAT csv)` writes them (COLUMNS order,
    `minute` as microseconds since the epoch, in any order) as an Arrow table in the
    archive's schema and order, parsed by Arrow: a day of ~350,000 rows, where one Decimal
    and one datetime per value made in Python would take seconds. `source` may be a stream
    that Arrow pulls blocks from while they are still arriving (store.option_partitions
    streams the COPY). ArchiveError if a value does not fit exactly."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    target = schema()
    if not source:
        return target.empty_table()  # a day made ahead that never traded
    types = {f.name: (pa.int64() if f.name == "minute" else f.type) for f in target}
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(source) if isinstance(source, bytes)
            else pa.PythonFile(source, mode="r"),
            read_options=pa_csv.ReadOptions(column_names=target.names),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, strings_can_be_null=False,
                quoted_strings_can_be_null=False))
        minute = table.column("minute").cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(target.get_field_index("minute"), target.field("minute"),
                                 minute).cast(target)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ArchiveError(f"option quotes do not fit the archive's columns (decimals keep "
                           f"{SCALE} places): {exc}") from exc
    return in_archive_order(table)


def in_archive_order(table: pa.Table) -> pa.Table:
    """The rows by minute, then instrument in byte order (as Python compares str, whatever
    the database's collation). Sorted here rather than by the database: Arrow sorts a day
    in tens of milliseconds where an ORDER BY on the export cost PostgreSQL ~250 ms (text
    comparisons, and a sort larger than work_mem spilled to disk)."""
    import pyarrow.compute as pc

    order = pc.sort_indices(table, sort_keys=[("minute", "ascending"),
                                              ("instrument", "ascending")])
    return table.take(order)


def merge(older: pa.Table, newer: pa.Table) -> pa.Table:
    """`older` plus the rows of `newer` it lacks (by instrument and minute), in archive
    order: the database's rows of a day archived before (late writes) join its file."""
    import pyarrow as pa

    held = set(zip(older.column("instrument").to_pylist(), older.column("minute").to_pylist(),
                   strict=True))
    fresh = [(i, m) not in held for i, m in zip(newer.column("instrument").to_pylist(),
                                                 newer.column("minute").to_pylist(),
                                                 strict=True)]
    return in_archive_order(pa.concat_tables([older,
                                              newer.filter(pa.array(fresh, pa.bool_()))]))


def write_day(root: Path, day: date, table: pa.Table) -> ArchiveFile:
    """Write the day's file, then its sidecar, each atomically; durable when this returns."""
    import pyarrow.parquet as pq

    path = archive_path(root, day)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        # zstd: the smallest of pyarrow's codecs at a speed that keeps archiving a day
        # under a second; statistics let a reader skip by minute and instrument.
        pq.write_table(table, buffer, compression="zstd")
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        write_atomically(path, lambda handle: handle.write(data))
        write_atomically(sidecar_path(path),
                         lambda handle: handle.write(f"{digest}  {path.name}\n".encode()))
        fsync_directory(path.parent)
    except OSError as exc:
        raise ArchiveError(f"cannot write the archive of {day} to {path.parent}: "
                           f"{exc.strerror or exc} — fix the directory or choose another "
                           "with --archive-dir") from exc
    return ArchiveFile(day, path, digest, table.num_rows, len(data))


def read_verified(root: Path, day: date) -> tuple[ArchiveFile, pa.Table] | None:
    """The day's archive and its rows when its file matches its sidecar; None when there is
    none, or only a file cut short (no sidecar, or a digest that disagrees)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = archive_path(root, day)
    try:
        recorded = sidecar_path(path).read_text(encoding="utf-8").split()
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    digest = hashlib.sha256(data).hexdigest()
    if not recorded or recorded[0] != digest:
        return None
    # Decoded from the very bytes just hashed (no second read that could differ), in
    # place: a BufferReader is Arrow's own, where a BytesIO went through Python; one
    # file needs none of read_table's dataset machinery.
    table = pq.ParquetFile(pa.BufferReader(data)).read()
    return ArchiveFile(day, path, digest, table.num_rows, len(data)), table


def verify(root: Path, day: date, expected: pa.Table) -> ArchiveFile:
    """Read the day's archive back from disk: its digest must match its sidecar, and its
    rows must equal `expected`, value for value. ArchiveError otherwise."""
    found = read_verified(root, day)
    if found is None:
        raise ArchiveError(f"the archive of {day} at {archive_path(root, day)} does not match "
                           "its sha256 sidecar right after writing: check the disk, then run "
                           "`fleet data archive` again")
    archive, table = found
    if not table.equals(expected):
        raise ArchiveError(f"the archive of {day} at {archive.path} reads back "
                           f"{table.num_rows} rows that differ from the {expected.num_rows} "
                           "written: check the disk, then run `fleet data archive` again")
    return archive


def archived_days(root: Path) -> list[ArchiveFile]:
    """Every day archived under `root`, oldest first: the digest its sidecar records ("" for
    a file without one, cut short) and the rows its footer counts. Files are not re-hashed
    here (months of them would be read whole); archiving verifies each as it writes it."""
    import pyarrow.parquet as pq

    found = []
    for path in sorted(root.glob(f"*/option_quotes_*{_SUFFIX}")):
        day = _day_of(path)
        if day is None:
            continue
        try:
            recorded = sidecar_path(path).read_text(encoding="utf-8").split()
        except FileNotFoundError:
            recorded = []
        rows = pq.ParquetFile(path).metadata.num_rows
        found.append(ArchiveFile(day, path, recorded[0] if recorded else "", rows,
                                 path.stat().st_size))
    return found


def _day_of(path: Path) -> date | None:
    try:
        return date.fromisoformat(path.name.removeprefix("option_quotes_")
                                  .removesuffix(_SUFFIX))
    except ValueError:
        return None
