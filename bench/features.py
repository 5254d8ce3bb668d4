"""Features over a million base bars: the batch computation (issue 16's goal: under 2 s for
all indicators on all timeframes) and the live per-bar update (p50/p99).

A random walk with volume on a 24/7 market's UTC days (or NSE-like weekday sessions with
--market nse), the default feature set (every indicator, every calendar feature) on the
base timeframe and two higher ones:

    python bench/features.py                                   # 1,000,000 1m bars; 15m, 1h
    python bench/features.py --bars 200000 --live-bars 2000    # a smoke run
    python bench/features.py --json bench/results/features.json

Batch: `compute_features` over all the bars, best of --repeat runs (the first warms the
allocator). Live: a `LiveFeatures` fed the set's warm-up, then timed over --live-bars
further bars, one `update` each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from fleetkit.core.bars import TIMEFRAMES
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.features import default_feature_set
from fleetkit.features.batch import compute_features
from fleetkit.features.columns import BarColumns
from fleetkit.features.live import LiveFeatures

START = datetime(2020, 1, 1, tzinfo=UTC)


def sessions_for(market: str, bars: int, minutes: int) -> list[Session]:
    per_day = (1440 if market == "24/7" else 375) // minutes
    found: list[Session] = []
    day = START
    while len(found) * per_day < bars + per_day:
        if market == "24/7":
            found.append(Session(day, day + timedelta(days=1)))
        elif day.weekday() < 5:
            found.append(Session(day + timedelta(hours=3, minutes=45),
                                 day + timedelta(hours=10)))
        day += timedelta(days=1)
    return found


def random_walk(sessions: list[Session], timeframe: str, count: int, seed: int) -> BarColumns:
    step = (TIMEFRAMES[timeframe] or 0) * 60
    starts = np.concatenate([np.arange(int(s.open.timestamp()), int(s.close.timestamp()), step)
                             for s in sessions])[:count].astype(np.int64)
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, count)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.0005, count)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.0005, count)))
    return BarColumns(timeframe, starts, open_, high, low, close,
                      rng.lognormal(5.0, 0.6, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--market", choices=["24/7", "nse"], default="24/7")
    parser.add_argument("--timeframes", nargs="+", default=["1m", "15m", "1h"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live-bars", type=int, default=20_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    feature_set = default_feature_set(args.timeframes)
    minutes = TIMEFRAMES[feature_set.base] or 1440
    sessions = sessions_for(args.market, args.bars, minutes)
    bars = random_walk(sessions, feature_set.base, args.bars, seed=16)
    print(f"python bench/features.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}")
    print(f"{len(bars):,} {feature_set.base} bars ({args.market}), timeframes "
          f"{', '.join(args.timeframes)}, {len(feature_set.columns)} columns")

    batch_s = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        matrix = compute_features(feature_set, bars, sessions)
        batch_s.append(time.perf_counter() - began)
    print(f"batch: best {min(batch_s):.3f} s, runs {', '.join(f'{s:.3f}' for s in batch_s)} "
          f"(goal < 2 s); ready from row {matrix.ready_from:,}")

    session_minutes = 1440 if args.market == "24/7" else 375
    warmup = feature_set.warmup_bars(session_minutes)
    first = len(bars) - args.live_bars
    live = LiveFeatures(feature_set, sessions)
    history = BarColumns(bars.timeframe, *(column[first - warmup:first] for column in (
        bars.open_s, bars.open, bars.high, bars.low, bars.close, bars.volume)))
    live.feed(history)
    times_us = []
    worst = 0.0
    for i in range(first, len(bars)):
        bar = Bar(datetime.fromtimestamp(int(bars.open_s[i]), UTC), float(bars.open[i]),
                  float(bars.high[i]), float(bars.low[i]), float(bars.close[i]),
                  float(bars.volume[i]))
        began = time.perf_counter()
        row = live.update(bar)
        times_us.append((time.perf_counter() - began) * 1e6)
        worst = max(worst, float(np.max(np.abs(row - matrix.values[i]))))
    cuts = statistics.quantiles(times_us, n=100)
    print(f"live: {args.live_bars:,} updates after {warmup:,} bars of warm-up: p50 "
          f"{cuts[49]:.0f} µs, p99 {cuts[98]:.0f} µs, max {max(times_us):.0f} µs; largest "
          f"difference from the batch row {worst:.1e}")

    if args.json:
        args.json.write_text(json.dumps({
            "command": "python bench/features.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                if k != "json" and v is not None and not isinstance(v, list))
            + " --timeframes " + " ".join(args.timeframes),
            "date": f"{datetime.now(UTC):%Y-%m-%d}",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"{platform.python_implementation()} {platform.python_version()}",
            "bars": len(bars), "columns": len(feature_set.columns),
            "batch_s": batch_s, "batch_best_s": min(batch_s), "warmup_bars": warmup,
            "live_p50_us": cuts[49], "live_p99_us": cuts[98], "live_max_us": max(times_us),
            "live_max_abs_difference": worst}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
