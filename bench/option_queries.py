"""Option quote queries on PostgreSQL with 30 trading days present (~10M rows): one minute's
whole chain and one underlying's whole-day ATM straddle, through OptionQuoteStore; bytes
per row in PostgreSQL and in Parquet; archive-and-drop of a day.

Thirty NSE trading days of realistic chains go into one fresh schema (dropped afterwards),
a day at a time by COPY (setup, not measured), then ANALYZE:

    NIFTY      weekly and monthly expiry, strike step 50       } each expiry: calls and puts
    BANKNIFTY  monthly expiry, strike step 100                  } at --strikes-each-side
    SENSEX     weekly expiry, strike step 100                   } strikes around the ATM

re-centred every minute on a random-walk spot and priced by Black-Scholes with a smile
(numpy, vectorised: a day of rows is made in well under a second). The shipped sandbox
lists 45 strikes each side (728 instruments, 273,000 rows a day); the default 58 (936
instruments, 351,000 rows a day) is the issue's ~350,000 rows a day.

    chain      OptionQuoteStore.chain(underlying, minute) of a random underlying and
               minute of the 30 days: p50/p99/max
    straddle   OptionQuoteStore.straddle(underlying, day, step) of a random underlying
               and day: p50/p99/max
    storage    bytes per row of the partitions with their indexes (and each part), and
               of a day's Parquet archive
    archive    OptionArchiver.archive_day of the oldest days: detach, export, write,
               verify, drop

    python bench/option_queries.py --days 2 --chains 50 --straddles 20    # a smoke run
    python bench/option_queries.py --json bench/results/option_queries.json   # the real run
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import text

from fleetkit.calendars.days import calendar_days
from fleetkit.data.option_archiver import OptionArchiver
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.database import Database
from fleetkit.store.option_chain_minutes import rebuild_day
from fleetkit.store.option_partitions import (
    COLUMNS,
    OptionPartitions,
    ensure_partition,
    partition_name,
)
from fleetkit.store.option_quotes import OptionQuoteStore
from option_ingest import postgresql_schema

FIRST_DAY = date(2026, 1, 5)
OPEN_UTC = datetime(2026, 1, 1, 3, 45, tzinfo=UTC)  # 09:15 IST, the time of day that counts
CLOSE_UTC_HOUR = 10  # 15:30 IST: when an expiry's contracts stop
MINUTES = 375  # 09:15 to 15:29
TUESDAY, THURSDAY = 1, 3
MINUTE_VOL = 0.15 / (252 * MINUTES) ** 0.5  # the spot's move per minute at 15% a year


@dataclass(frozen=True, slots=True)
class Underlying:
    name: str
    exchange: str
    step: int
    spot: float  # where its walk starts
    atm_vol: float
    weekly: int | None  # expiry weekday of its weekly contracts, None: none listed
    monthly: int | None  # weekday of its monthly expiry (the month's last), None: none


UNDERLYINGS = (Underlying("NIFTY", "NFO", 50, 24_000.0, 0.15, TUESDAY, TUESDAY),
               Underlying("BANKNIFTY", "NFO", 100, 52_000.0, 0.17, None, TUESDAY),
               Underlying("SENSEX", "BFO", 100, 80_000.0, 0.15, THURSDAY, None))


# --- making the days ------------------------------------------------------------------------


class ChainModel:
    """Days of chains, one after another; the spots walk on from one day to the next."""

    def __init__(self, trading_days: list[date], strikes_each_side: int, seed: int) -> None:
        self._trading = set(trading_days)
        self._last = max(trading_days)
        self._each_side = strikes_each_side
        self._rng = np.random.default_rng(seed)
        self._spots = {u.name: u.spot for u in UNDERLYINGS}

    def expiries(self, u: Underlying, day: date) -> list[date]:
        """The nearest weekly and the nearest monthly that differs from it, each moved to
        the trading day before when it falls on a holiday."""
        found = []
        if u.weekly is not None:
            found.append(self._shift(_next_weekday(day, u.weekly)))
        if u.monthly is not None:
            month = date(day.year, day.month, 1)
            while True:
                expiry = self._shift(_last_weekday(month, u.monthly))
                if expiry >= day and expiry not in found:
                    break
                month = (month + timedelta(days=32)).replace(day=1)
            found.append(expiry)
        return sorted(found)

    def day(self, day: date) -> bytes:
        """The day's rows as CSV in COLUMNS order, by minute, then underlying, expiry,
        strike, call before put: the order a collector writes them in."""
        parts = [self._underlying_day(u, day) for u in UNDERLYINGS]
        # Minute-major across the underlyings, as each minute's snapshot holds all three.
        columns = {name: np.concatenate([p[name] for p in parts], axis=1).ravel()
                   for name in parts[0] if name != "labels"}
        labels = [p["labels"] for p in parts]
        width = [p["strike"].shape[1] for p in parts]
        label_index = np.concatenate([np.broadcast_to(np.arange(w) + sum(width[:i]),
                                                      (MINUTES, w))
                                      for i, w in enumerate(width)], axis=1).ravel()
        return _csv(day, columns, label_index, [lab for group in labels for lab in group])

    def _underlying_day(self, u: Underlying, day: date) -> dict[str, Any]:
        expiries = self.expiries(u, day)
        n_strikes = 2 * self._each_side + 1
        # The spot: a random walk from yesterday's close, in whole ticks of 0.05.
        moves = self._rng.normal(0.0, MINUTE_VOL, MINUTES)
        spot = self._spots[u.name] * np.exp(np.cumsum(moves))
        self._spots[u.name] = float(spot[-1])
        spot_ticks = np.round(spot * 20).astype(np.int64)
        spot = spot_ticks / 20
        atm = np.round(spot / u.step).astype(np.int64) * u.step
        offsets = np.arange(-self._each_side, self._each_side + 1)
        # (minute, expiry, strike, kind) flattened to (minute, row) below.
        shape = (MINUTES, len(expiries), n_strikes, 2)
        strike = np.broadcast_to((atm[:, None] + offsets[None, :] * u.step)[:, None, :, None],
                                 shape)
        minute_of_day = np.arange(MINUTES)
        minute_utc = (datetime.combine(day, OPEN_UTC.timetz()).timestamp()
                      + minute_of_day * 60.0)
        close = np.array([datetime(e.year, e.month, e.day, CLOSE_UTC_HOUR, tzinfo=UTC)
                          .timestamp() for e in expiries])
        years = np.maximum(close[None, :] - minute_utc[:, None], 60.0) / (365 * 86_400)
        years = np.broadcast_to(years[:, :, None, None], shape)
        s = np.broadcast_to(spot[:, None, None, None], shape)
        moneyness = np.log(strike / s)
        iv = u.atm_vol * (1 + 1.5 * np.abs(moneyness) / np.sqrt(np.maximum(years, 1 / 365)))
        price = _black_scholes(s, strike.astype(np.float64), years, iv,
                               is_call=np.broadcast_to(np.array([True, False]), shape))
        ticks = np.maximum(np.round(price * 20).astype(np.int64), 1)
        # Spreads widen away from the money and in an expiry's last day.
        half = 1 + np.abs(np.broadcast_to(offsets[None, None, :, None], shape)) // 15 \
            + (years < 1 / 365)
        distance = np.abs(np.broadcast_to(offsets[None, None, :, None], shape))
        rows = (MINUTES, len(expiries) * n_strikes * 2)
        labels = [(f"{u.exchange}:{u.name}{e:%y%m%d}", e, kind)
                  for e in expiries for _ in range(n_strikes) for kind in ("CE", "PE")]
        return {
            "labels": labels,
            "minute": np.broadcast_to(minute_of_day[:, None], rows),
            "strike": strike.reshape(rows),
            "bid_cents": (np.maximum(ticks - half, 1) * 5).reshape(rows),
            "ask_cents": ((ticks + half) * 5).reshape(rows),
            "last_cents": (ticks * 5).reshape(rows),
            "volume": (np.broadcast_to(minute_of_day[:, None, None, None], shape) * 75
                       * (100 // (1 + distance)) + 1_000).reshape(rows),
            "open_interest": (75 * np.round(150_000 * np.exp(-(distance / 20.0) ** 2))
                              ).astype(np.int64).reshape(rows),
            "spot_cents": np.broadcast_to((spot_ticks * 5)[:, None], rows),
            "iv": np.round(iv, 4).reshape(rows),
        }

    def _shift(self, day: date) -> date:
        while day <= self._last and day not in self._trading:
            day -= timedelta(days=1)
        return day


def _black_scholes(s: Any, k: Any, t: Any, vol: Any, *, is_call: Any) -> Any:
    root = vol * np.sqrt(t)
    d1 = (np.log(s / k) + 0.5 * vol * vol * t) / root
    d2 = d1 - root
    call = s * _norm_cdf(d1) - k * _norm_cdf(d2)
    put = k * _norm_cdf(-d2) - s * _norm_cdf(-d1)
    return np.maximum(np.where(is_call, call, put), 0.0)


def _norm_cdf(x: Any) -> Any:
    """Abramowitz & Stegun 7.1.26 (error < 1.5e-7): numpy has no erf."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
        -1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _csv(day: date, c: dict[str, Any], label_index: Any, labels: list[Any]) -> bytes:
    """The rows as PostgreSQL's COPY (FORMAT csv) reads them, formatted by Arrow."""
    rows = len(label_index)
    take = pa.array(label_index)
    prefix = pc.take(pa.array([lab[0] for lab in labels]), take)
    kind = pc.take(pa.array([lab[2] for lab in labels]), take)
    strike = pa.array(c["strike"]).cast(pa.string())
    epoch = int(datetime.combine(day, OPEN_UTC.timetz()).timestamp() * 1_000_000)
    table = pa.table({
        "trading_day": pa.array(np.full(rows, (day - date(1970, 1, 1)).days, np.int32),
                                pa.date32()),
        "instrument": pc.binary_join_element_wise(prefix, strike, kind, ""),
        "minute": pa.array(epoch + c["minute"].astype(np.int64) * 60_000_000,
                           pa.timestamp("us", tz="UTC")),
        "underlying": pc.take(pa.array([lab[0].split(":")[1][:-6] for lab in labels]), take),
        "expiry": pc.take(pa.array([lab[1] for lab in labels], pa.date32()), take),
        "strike": strike, "option_type": kind,
        "bid": _money(c["bid_cents"]), "ask": _money(c["ask_cents"]),
        "last": _money(c["last_cents"]), "volume": pa.array(c["volume"].astype(np.int64)),
        "open_interest": pa.array(c["open_interest"]),
        "underlying_price": _money(c["spot_cents"]), "iv": pa.array(c["iv"]),
        "source": pa.array(["bench"] * rows)})
    buffer = io.BytesIO()
    pa_csv.write_csv(table.select(list(COLUMNS)), buffer,
                     pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return buffer.getvalue()


def _money(cents: Any) -> pa.Array:
    """Whole cents as exact decimal text: 12345 -> "123.45"."""
    whole = pa.array(cents // 100).cast(pa.string())
    part = pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), width=2, padding="0")
    return pc.binary_join_element_wise(whole, part, ".")


def _next_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _last_weekday(month: date, weekday: int) -> date:
    last = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def trading_days(count: int) -> list[date]:
    days = [d.day for d in calendar_days("XNSE", FIRST_DAY, FIRST_DAY + timedelta(days=120))
            if not d.is_holiday]
    return days[:count]


def load(database: Database, model: ChainModel, days: list[date]) -> dict[str, Any]:
    """Each day COPYed into its partition in its own transaction, then ANALYZE."""
    made = copied = summarised = 0.0
    rows = 0
    for day in days:
        started = time.perf_counter()
        data = model.day(day)
        made += time.perf_counter() - started
        started = time.perf_counter()
        with write_transaction(database.engine) as conn:
            ensure_partition(conn, day)
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY option_quotes ({', '.join(COLUMNS)}) "
                             "FROM STDIN (FORMAT csv)") as copy:
                for at in range(0, len(data), 1 << 20):
                    copy.write(data[at:at + (1 << 20)])
            rows += cursor.rowcount
        copied += time.perf_counter() - started
        # Loaded around the store: summarise its chain snapshots as write_minute would have.
        started = time.perf_counter()
        with write_transaction(database.engine) as conn:
            rebuild_day(conn, day)
        summarised += time.perf_counter() - started
        print(f"  loaded {day}: {rows:,} rows so far", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE option_quotes"))
        conn.execute(text("ANALYZE option_chain_minutes"))
    return {"days": len(days), "rows": rows, "rows_per_day": rows // len(days),
            "generate_s": round(made, 1), "copy_s": round(copied, 1),
            "summarise_s": round(summarised, 1),
            "analyze_s": round(time.perf_counter() - started, 1)}


# --- measuring ------------------------------------------------------------------------------


def timed(runs: int, call: Callable[[int], int]) -> dict[str, Any]:
    """`call(i)` `runs` times: milliseconds p50/p99/max, and the rows it returned."""
    call(0)  # a first call pays for imports and the connection pool
    latencies, rows = [], []
    for i in range(runs):
        started = time.perf_counter()
        rows.append(call(i))
        latencies.append((time.perf_counter() - started) * 1000)
    ordered = sorted(latencies)
    return {"runs": runs, "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(runs - 1, int(runs * 0.99))], 2),
            "max_ms": round(ordered[-1], 2), "rows_min": min(rows), "rows_max": max(rows)}


def chain_reads(store: OptionQuoteStore, days: list[date], runs: int,
                rng: np.random.Generator) -> dict[str, Any]:
    picks = [(UNDERLYINGS[int(rng.integers(3))].name, days[int(rng.integers(len(days)))],
              int(rng.integers(MINUTES))) for _ in range(runs + 1)]

    def one(i: int) -> int:
        name, day, minute = picks[i]
        at = datetime.combine(day, OPEN_UTC.timetz()) + timedelta(minutes=minute)
        return len(store.chain(name, at))

    return timed(runs, one)


def straddle_reads(store: OptionQuoteStore, days: list[date], runs: int,
                   rng: np.random.Generator) -> dict[str, Any]:
    picks = [(UNDERLYINGS[int(rng.integers(3))], days[int(rng.integers(len(days)))])
             for _ in range(runs + 1)]

    def one(i: int) -> int:
        u, day = picks[i]
        series = store.straddle(u.name, day, Decimal(u.step))
        assert all(p.premium is not None for p in series), "an ATM leg is missing"
        return len(series)

    return timed(runs, one)


def storage(database: Database, rows: int) -> dict[str, Any]:
    with database.engine.connect() as conn:
        table, total = conn.execute(text(
            "SELECT sum(pg_table_size(c.oid)), sum(pg_total_relation_size(c.oid))"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass('option_quotes')")).one()
        indexes = dict(conn.execute(text(
            "SELECT regexp_replace(p.relname, '^option_quotes_p[0-9]+_', ''),"
            " sum(pg_relation_size(x.indexrelid))"
            " FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid"
            " JOIN pg_class p ON p.oid = x.indexrelid"
            " WHERE i.inhparent = to_regclass('option_quotes') GROUP BY 1")).all())
    return {"postgresql_bytes": int(total),
            "postgresql_bytes_per_row": round(int(total) / rows, 1),
            "table_bytes_per_row": round(int(table) / rows, 1),
            "index_bytes_per_row": {name: round(int(size) / rows, 1)
                                    for name, size in sorted(indexes.items())}}


def archive(database: Database, days: list[date], root: Path) -> dict[str, Any]:
    archiver = OptionArchiver(OptionPartitions(database.engine), root, lambda a, b: [])
    seconds, per_row = [], []
    for day in days:
        started = time.perf_counter()
        done = archiver.archive_day(day)
        seconds.append(round(time.perf_counter() - started, 3))
        assert done.archive is not None
        per_row.append(round(done.archive.bytes / done.rows, 2))
    with database.engine.connect() as conn:
        # to_regclass: looked up on this schema's search path only.
        gone = conn.execute(text("SELECT count(*) FROM unnest(CAST(:names AS text[])) AS n"
                                 " WHERE to_regclass(n) IS NOT NULL"),
                            {"names": [partition_name(d) for d in days]}).scalar_one()
    assert gone == 0, "an archived day's partition is still there"
    return {"days": [d.isoformat() for d in days], "archive_and_drop_s": seconds,
            "parquet_bytes_per_row": per_row}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="trading days loaded")
    parser.add_argument("--strikes-each-side", type=int, default=58)
    parser.add_argument("--chains", type=int, default=500, help="chain reads measured")
    parser.add_argument("--straddles", type=int, default=200, help="straddle reads measured")
    parser.add_argument("--archive-days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    begun = time.perf_counter()
    days = trading_days(args.days)
    model = ChainModel(trading_days(args.days + 30), args.strikes_each_side, args.seed)
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0], "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(), "strikes_each_side": args.strikes_each_side}
    with postgresql_schema(args.pg) as database, tempfile.TemporaryDirectory() as tmp:
        results["load"] = load(database, model, days)
        print(f"{'load':10s} {results['load']}", flush=True)
        store = OptionQuoteStore(database.engine)
        for name, run in (("chain", lambda: chain_reads(store, days, args.chains, rng)),
                          ("straddle", lambda: straddle_reads(store, days, args.straddles,
                                                              rng)),
                          ("storage", lambda: storage(database, results["load"]["rows"])),
                          ("archive", lambda: archive(database, days[:args.archive_days],
                                                      Path(tmp)))):
            results[name] = run()
            print(f"{name:10s} {results[name]}", flush=True)
    results["total_s"] = round(time.perf_counter() - begun, 1)
    print(f"total {results['total_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
