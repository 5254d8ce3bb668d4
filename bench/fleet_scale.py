"""Fleet scale: how many bots one host holds at 60 s cycles on PostgreSQL, with every cycle
starting within 1 s of its schedule (p99 cycle lag), and the memory each bot costs.

    python bench/fleet_scale.py --bots 200 --minutes 10 \\
        --admin-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --json bench/results/fleet_scale_200.json

Runs `fleet up` as a user does, on a fresh PostgreSQL database it creates (and drops
afterwards): N crypto bots (the market never closes, so every bot cycles every minute) on
1-minute bars, a mix of sma_cross, rsi_reversion and buy_and_hold over the sandbox's crypto
instruments, all against the one sandbox broker. It polls the heartbeats every 2 s and
records each bot's cycle lag (how late a cycle started after its bar close + settle,
written by the bot itself) every time that bot's cycle count moves, so every cycle is
counted once. Memory is PSS (shared pages split fairly) of the bot processes, sampled once
at steady state, plus the PostgreSQL server's processes.

PostgreSQL needs a connection per bot and some to spare: the script refuses to start when
max_connections < bots + 30 and says how to raise it.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from report import publish

DB_NAME = "fleet_bench_scale"
STRATEGIES = [("sma_cross", "{fast: 3, slow: 8}"), ("rsi_reversion", "{period: 7}"),
              ("buy_and_hold", "{}")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def crypto_symbols() -> list[str]:
    from fleetkit.brokers.sandbox.catalog import load_catalog

    return sorted(k.split(":", 1)[1] for k in load_catalog() if k.startswith("CRYPTO:"))


def config_text(bots: int, port: int) -> str:
    symbols = crypto_symbols()
    lines = [f"sandbox: {{port: {port}, seed: 7}}",
             "runtime: {heartbeat_interval_s: 10, stale_after_s: 60}",
             "bots:"]
    for i in range(bots):
        strategy, params = STRATEGIES[i % len(STRATEGIES)]
        symbol = symbols[i % len(symbols)]
        lines.append(f'  - {{name: scale-{i:03d}, market: CRYPTO, symbols: ["{symbol}"], '
                     f"strategy: {strategy}, params: {params}, bar_interval: 1m}}")
    return "\n".join(lines) + "\n"


def pg_url(admin_url: str, database: str) -> str:
    url = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    return url.set(database=database).render_as_string(hide_password=False)


def recreate_database(admin_url: str, bots: int) -> str:
    engine = create_engine(pg_url(admin_url, make_url(admin_url).database or "postgres"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        limit = int(conn.execute(text("SHOW max_connections")).scalar_one())
        if limit < bots + 30:
            raise SystemExit(
                f"PostgreSQL max_connections is {limit}; {bots} bots need at least {bots + 30}"
                f": ALTER SYSTEM SET max_connections = {bots + 100}; then restart PostgreSQL")
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {DB_NAME}"))
    engine.dispose()
    return pg_url(admin_url, DB_NAME)


def drop_database(admin_url: str) -> None:
    engine = create_engine(pg_url(admin_url, make_url(admin_url).database or "postgres"),
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
    engine.dispose()


class Beats:
    """Every cycle's lag, read from the bots' own heartbeats as their cycle counts move."""

    def __init__(self, db_url: str) -> None:
        self.engine = create_engine(db_url, pool_size=1)
        self.cycles: dict[str, int] = {}
        self.lags_ms: list[int] = []
        self.first_cycle_at: dict[str, float] = {}

    def poll(self, started: float) -> None:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT component, cycles, cycle_lag_ms FROM heartbeats "
                    "WHERE component LIKE 'bot:%'")).all()
        except Exception:  # not migrated yet: nothing to read
            return
        for component, cycles, lag in rows:
            seen = self.cycles.get(component, 0)
            if cycles >= 1 and component not in self.first_cycle_at:
                self.first_cycle_at[component] = time.monotonic() - started
            if cycles > seen and seen >= 1 and lag is not None:
                self.lags_ms.append(int(lag))
            self.cycles[component] = max(seen, cycles)


def memory(root: psutil.Process) -> dict[str, float]:
    bots = pss = 0.0
    count = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            info = process.memory_full_info()
            cmd = " ".join(process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss += info.pss
        if " bot run " in f"{cmd} ":
            bots += info.pss
            count += 1
    postgres = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("postgres", "postmaster"):
            try:
                postgres += process.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    mib = 2 ** 20
    return {"tree_pss_mib": pss / mib, "bot_pss_mib": bots / mib, "bot_processes": count,
            "postgres_pss_mib": postgres / mib}


def percentile(values: list[int], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return float(ordered[index])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="steady state measured, after every bot's first cycle")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL URL allowed to CREATE DATABASE")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    db_url = recreate_database(args.admin_url, args.bots)
    home = Path(tempfile.mkdtemp(prefix="fleet-scale-"))
    config = home / "fleet.yaml"
    config.write_text(config_text(args.bots, free_port()), encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(home / "var"), "FLEET_LOG_FORMAT": "json",
           "FLEET_DB_URL": db_url}
    load = os.getloadavg()
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "fleetkit", "up", "--config", str(config),
                                "--no-live"], env=env, cwd=home, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    beats = Beats(db_url)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in load], "bots": args.bots,
        "database": "PostgreSQL (fresh database)", "cycle_s": 60}
    try:
        while len(beats.first_cycle_at) < args.bots:
            if time.monotonic() - started > 600 or process.poll() is not None:
                raise SystemExit(f"fleet did not come up ({len(beats.first_cycle_at)}/"
                                 f"{args.bots} cycled)")
            beats.poll(started)
            time.sleep(1)
        result["seconds_to_every_first_cycle"] = round(time.monotonic() - started, 1)
        beats.lags_ms.clear()  # the steady state only
        at_start = dict(beats.cycles)
        steady_started = time.monotonic()
        sampled: dict[str, float] | None = None
        cpu_start = psutil.cpu_times()
        while time.monotonic() - steady_started < args.minutes * 60:
            beats.poll(started)
            if sampled is None and time.monotonic() - steady_started > args.minutes * 30:
                sampled = memory(root)
            time.sleep(2)
        cpu_end = psutil.cpu_times()
        wall = time.monotonic() - steady_started
        lags = beats.lags_ms
        per_bot = {name: beats.cycles[name] - at_start.get(name, 0) for name in beats.cycles}
        cycles = sum(per_bot.values())
        # A bot on schedule completes at least one cycle per whole minute measured.
        short = sum(1 for done in per_bot.values() if done < int(wall // 60))
        busy = sum((getattr(cpu_end, f) - getattr(cpu_start, f))
                   for f in ("user", "system", "nice", "irq", "softirq"))
        result.update({
            "steady_seconds": round(wall),
            "cycles": cycles,
            "bots_short_of_a_cycle_a_minute": short,
            "lag_samples": len(lags),
            "lag_ms_p50": percentile(lags, 50) if lags else None,
            "lag_ms_p99": percentile(lags, 99) if lags else None,
            "lag_ms_max": max(lags) if lags else None,
            "lag_ms_mean": round(statistics.fmean(lags), 1) if lags else None,
            "cycles_over_1s": sum(1 for lag in lags if lag > 1000),
            "host_cpu_busy_cores": round(busy / wall, 2),
        })
        if sampled is not None:
            result.update({
                "bot_processes": sampled["bot_processes"],
                "pss_per_bot_mib": round(sampled["bot_pss_mib"] / max(1, sampled["bot_processes"]),
                                         1),
                "fleet_tree_pss_mib": round(sampled["tree_pss_mib"]),
                "postgres_pss_mib": round(sampled["postgres_pss_mib"]),
                "host_memory_used_gib": round(psutil.virtual_memory().used / 2**30, 1),
            })
    finally:
        stop = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
        result["seconds_to_stop"] = round(time.monotonic() - stop, 1)
        beats.engine.dispose()
        drop_database(args.admin_url)
    publish(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
