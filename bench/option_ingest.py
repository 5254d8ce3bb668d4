"""Option quote ingest on PostgreSQL: a trading day bulk-loaded, a minute at a time, row by
row, and as raw COPY; bytes per row in PostgreSQL and Parquet; archive-and-drop of a day.

A synthetic day at the seed's volume (default 934 instruments x 375 minutes = 350,250 rows;
the seed polls ~730 instruments, this leaves margin), in one run, on one fresh schema that
is dropped afterwards:

    bulk         the whole day through the store's path (one COPY into the partitioned table
                 in a savepoint; the staging hop only when a row is there already), one
                 transaction
    per_minute   OptionQuoteStore.write_minute for each minute of another day: snapshot
                 handed over -> committed, p50/p99 (what the collector pays each minute)
    executemany  row-by-row INSERT ... ON CONFLICT DO NOTHING (psycopg executemany) of a third
                 day, for the ratio
    raw_copy     plain COPY of the same rows into a table without keys or indexes: the limit
                 of this machine
    storage      bytes per row of the bulk day's partition (with its indexes) and of its
                 Parquet archive
    archive      OptionArchiver.archive_day of the bulk day: detach, export, write, verify,
                 drop

    python bench/option_ingest.py --instruments 20 --minutes 10       # a smoke run
    python bench/option_ingest.py --json bench/results/option_ingest.json   # the real run
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fleetkit.core.option_quotes import OptionQuote
from fleetkit.data.option_archiver import OptionArchiver
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.database import Database, open_database, upgrade_database
from fleetkit.store.option_partitions import (
    COLUMNS,
    OptionPartitions,
    ensure_partition,
    partition_name,
)
from fleetkit.store.option_quotes import OptionQuoteStore, _copy_rows

BULK_DAY, MINUTE_DAY, ROW_DAY = date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)
OPEN_UTC = (3, 45)  # 09:15 IST


@contextmanager
def postgresql_schema(base_url: str) -> Iterator[Database]:
    """A fresh schema in the database at `base_url`, migrated; dropped afterwards."""
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(make_url(base_url).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = open_database(f"{base_url}?options={quote(f'-csearch_path={schema}')}",
                             require_schema=False)
    try:
        upgrade_database(database)
        yield database
    finally:
        database.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def snapshot(day: date, minute_index: int, instruments: int) -> list[OptionQuote]:
    """One minute's chain: three underlyings, strikes around a spot that drifts."""
    spot = Decimal(24000) + Decimal(minute_index % 97) * Decimal("1.35")
    quotes = []
    for i in range(instruments):
        underlying = ("NIFTY", "BANKNIFTY", "SENSEX")[i % 3]
        strike = Decimal(22000 + (i // 6) * 50)
        kind = "CE" if i % 2 else "PE"
        price = Decimal(50 + (i * 7 + minute_index) % 400) + Decimal("0.05")
        quotes.append(OptionQuote(
            f"NFO:{underlying}{day:%y%m%d}{strike}{kind}{i}", underlying,
            day + timedelta(days=1 + i % 4), strike, kind, price - Decimal("0.10"),
            price + Decimal("0.10"), price, 1000 + minute_index * 3 + i,
            50_000 + i * 11, spot, 0.12 + (i % 50) / 1000, "bench"))
    return quotes


def minute_at(day: date, index: int) -> datetime:
    return datetime(day.year, day.month, day.day, *OPEN_UTC, tzinfo=UTC) + timedelta(
        minutes=index)


def day_rows(day: date, minutes: int, instruments: int) -> list[tuple[Any, ...]]:
    return [(day, q.instrument, minute_at(day, m), q.underlying, q.expiry, q.strike,
             q.option_type, q.bid, q.ask, q.last, q.volume, q.open_interest,
             q.underlying_price, q.iv, q.source)
            for m in range(minutes) for q in snapshot(day, m, instruments)]


def bulk(database: Database, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    started = time.perf_counter()
    with write_transaction(database.engine) as conn:
        ensure_partition(conn, BULK_DAY)
        inserted = _copy_rows(conn, rows)
    seconds = time.perf_counter() - started
    return {"rows": inserted, "seconds": round(seconds, 3),
            "rows_per_s": round(inserted / seconds)}


def per_minute(database: Database, minutes: int, instruments: int) -> dict[str, Any]:
    store = OptionQuoteStore(database.engine)
    snapshots = [snapshot(MINUTE_DAY, m, instruments) for m in range(minutes)]
    latencies = []
    for m, quotes in enumerate(snapshots):
        started = time.perf_counter()
        store.write_minute("bench", minute_at(MINUTE_DAY, m), MINUTE_DAY, quotes,
                           recorded_at=datetime.now(UTC))
        latencies.append((time.perf_counter() - started) * 1000)
    retried = time.perf_counter()
    again = store.write_minute("bench", minute_at(MINUTE_DAY, 0), MINUTE_DAY, snapshots[0],
                               recorded_at=datetime.now(UTC))
    ordered = sorted(latencies)
    return {"minutes": minutes, "rows_per_minute": instruments,
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_ms": round(ordered[-1], 2),
            "retried_minute_ms": round((time.perf_counter() - retried) * 1000, 2),
            "retried_minute_rows": again}


def executemany(database: Database, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    with write_transaction(database.engine) as conn:
        ensure_partition(conn, ROW_DAY)
    started = time.perf_counter()
    with write_transaction(database.engine) as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(
            f"INSERT INTO option_quotes ({', '.join(COLUMNS)}) VALUES "  # noqa: S608
            f"({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT DO NOTHING",
            [(ROW_DAY, *row[1:]) for row in rows])
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(seconds, 3),
            "rows_per_s": round(len(rows) / seconds)}


def raw_copy(database: Database, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    with write_transaction(database.engine) as conn:
        conn.execute(text("CREATE TABLE raw_quotes (LIKE option_quotes)"))  # no keys, no index
    started = time.perf_counter()
    with write_transaction(database.engine) as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY raw_quotes ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(seconds, 3),
            "rows_per_s": round(len(rows) / seconds)}


def storage_and_archive(database: Database, rows: int, root: Path) -> dict[str, Any]:
    with database.engine.connect() as conn:
        pg_bytes = conn.execute(text("SELECT pg_total_relation_size(to_regclass(:name))"),
                                {"name": partition_name(BULK_DAY)}).scalar_one()
    archiver = OptionArchiver(OptionPartitions(database.engine), root, lambda a, b: [])
    started = time.perf_counter()
    done = archiver.archive_day(BULK_DAY)
    seconds = time.perf_counter() - started
    parquet = done.archive.bytes if done.archive else 0
    return {"postgresql_bytes_per_row": round(pg_bytes / rows, 1),
            "parquet_bytes_per_row": round(parquet / rows, 1),
            "archive_and_drop_s": round(seconds, 3), "archived_rows": done.rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=934)
    parser.add_argument("--minutes", type=int, default=375)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "instruments": args.instruments,
        "minutes": args.minutes, "rows": args.instruments * args.minutes}
    rows = day_rows(BULK_DAY, args.minutes, args.instruments)
    with postgresql_schema(args.pg) as database, tempfile.TemporaryDirectory() as tmp:
        for name, run in (("bulk", lambda: bulk(database, rows)),
                          ("per_minute", lambda: per_minute(database, args.minutes,
                                                            args.instruments)),
                          ("executemany", lambda: executemany(database, rows)),
                          ("raw_copy", lambda: raw_copy(database, rows)),
                          ("storage_and_archive", lambda: storage_and_archive(
                              database, len(rows), Path(tmp)))):
            results[name] = run()
            print(f"{name:20s} {results[name]}", flush=True)
    results["executemany_vs_bulk"] = round(
        results["executemany"]["seconds"] / results["bulk"]["seconds"], 1)
    results["bulk_vs_raw_copy"] = round(
        results["bulk"]["seconds"] / results["raw_copy"]["seconds"], 2)
    print(f"executemany / bulk: {results['executemany_vs_bulk']}x; bulk / raw COPY: "
          f"{results['bulk_vs_raw_copy']}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
