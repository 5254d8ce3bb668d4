"""The straddle tracker at ~200 ticks/s: tick-to-persisted latency and the tracker's CPU.

The sandbox service (REST chains and its WebSocket stream, demo time so NSE is in session)
runs in this process; the tracker runs in a child process of its own, as `fleet data
track-straddles` would, following NIFTY, BANKNIFTY and SENSEX (the ATM straddle and the ±1,
±2 strangles: 7 instruments each, 21 in all) into a fresh PostgreSQL schema, dropped after.
The stream ticks every subscription each `21 / rate` seconds.

    latency   from the tracker taking a tick off the stream (SandboxQuoteStream.receive) to
              the commit of the batch holding its snapshot, p50/p99/max
    cpu       the tracker process's CPU time (process_time: its stream thread included) over
              the run, as % of one core

    python bench/straddle_tracker.py --seconds 5                   # a smoke run
    python bench/straddle_tracker.py --seconds 45 --flush-ms 50    # the real run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from option_ingest import postgresql_schema

UNDERLYINGS = ("NIFTY", "BANKNIFTY", "SENSEX")
STRANGLES = (1, 2)
INSTRUMENTS = len(UNDERLYINGS) * (1 + 2 * (1 + len(STRANGLES)))


def run_tracker(db_url: str, sandbox_url: str, seconds: float, flush_ms: int,
                results: Any) -> None:
    """The child process: track for `seconds`, then report what it measured."""
    from fleetkit.brokers.sandbox.client import SandboxClient
    from fleetkit.brokers.sandbox.stream_client import SandboxQuoteStream
    from fleetkit.data.straddle_tracker import StraddleTracker, TrackerOptions
    from fleetkit.store.collector_stats import CollectorStats
    from fleetkit.store.database import open_database
    from fleetkit.store.straddle_snapshots import StraddleSnapshotStore

    database = open_database(db_url, require_schema=False)
    latencies: list[float] = []
    stream = SandboxQuoteStream.discover(sandbox_url)
    stop = threading.Event()
    with SandboxClient(sandbox_url, "straddle-bench") as client:
        tracker = StraddleTracker(
            TrackerOptions("bench", UNDERLYINGS, STRANGLES, flush_interval_s=flush_ms / 1000,
                           max_batch=200),
            client, stream, StraddleSnapshotStore(database.engine),
            CollectorStats(database.engine), now=lambda: datetime.now(UTC),
            trading_day=lambda at: at.date(), venue_offset=client.market_offset("NSE"),
            on_persisted=latencies.extend)
        cpu, wall = time.process_time(), time.monotonic()
        threading.Timer(seconds, stop.set).start()
        tracker.run(stop)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    stream.close()
    counters = CollectorStats(database.engine).counters("bench", datetime.now(UTC).date())
    database.dispose()
    results.put({"latencies": latencies, "cpu_s": cpu, "wall_s": wall, "counters": counters})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--rate", type=float, default=200, help="ticks per second")
    parser.add_argument("--flush-ms", type=int, default=50)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    from fleetkit.brokers.sandbox.book import MemoryBook
    from fleetkit.brokers.sandbox.catalog import load_catalog
    from fleetkit.brokers.sandbox.config import VenueConfig
    from fleetkit.brokers.sandbox.prices import InventedPrices
    from fleetkit.brokers.sandbox.service import SandboxService
    from fleetkit.brokers.sandbox.stream import StreamConfig
    from fleetkit.brokers.sandbox.venue import SandboxVenue
    from fleetkit.calendars.market_calendars import MarketCalendars
    from fleetkit.calendars.overrides import load_overrides
    from fleetkit.runtime.clock import WallClock

    calendars = MarketCalendars(load_overrides(None).for_market_calendars())
    venue = SandboxVenue(InventedPrices(7, load_catalog(), calendars), MemoryBook(), WallClock(),
                         VenueConfig(seed=7, time_mode="demo"), sessions=calendars)
    stream = StreamConfig(tick_interval_s=INSTRUMENTS / args.rate, queue_limit=10_000)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with SandboxService(venue, match_interval_s=3600, stream=stream) as service, \
            postgresql_schema(args.pg) as database:
        child = context.Process(target=run_tracker, args=(
            database.engine.url.render_as_string(hide_password=False), service.url,
            args.seconds, args.flush_ms, results))
        child.start()
        found = results.get(timeout=args.seconds + 120)
        child.join(30)
    latencies_ms = sorted(x * 1000 for x in found["latencies"])
    counters = found["counters"]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cpus, "
                   f"Python {sys.version.split()[0]}",
        "seconds": round(found["wall_s"], 1), "flush_interval_ms": args.flush_ms,
        "instruments": INSTRUMENTS,
        "ticks_per_s": round(counters.get("ticks", 0) / found["wall_s"], 1),
        "snapshots": counters.get("snapshots", 0),
        "write_count": counters.get("write_count", 0),
        "write_ms_mean": round(counters.get("write_ms_sum", 0)
                               / max(counters.get("write_count", 1), 1), 2),
        "write_ms_max": counters.get("write_ms_max", 0),
        "latency_ms_p50": round(statistics.median(latencies_ms), 1),
        "latency_ms_p99": round(latencies_ms[int(0.99 * (len(latencies_ms) - 1))], 1),
        "latency_ms_max": round(latencies_ms[-1], 1),
        "cpu_pct_of_one_core": round(100 * found["cpu_s"] / found["wall_s"], 1),
        "rejected": {k: v for k, v in counters.items() if k.startswith("rejected.")},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
