"""Fleet density: the 35-bot demo on this machine — time to every bot's first cycle, then
CPU and memory of the whole process tree (supervisor, broker, bots) at steady state.

    python bench/fleet_density.py                      # 120 s of steady state
    python bench/fleet_density.py --steady 300 --json bench/results/fleet_density.json
    python bench/fleet_density.py --past-start --settle 150 --steady 60 --per-process \
        --json bench/results/fleet_density_rl.json       # with the learning bots (issue 16)

Runs `fleet up` exactly as a user does (the built-in demo config, its own data directory
and port). CPU is total CPU seconds of the tree over wall seconds (1.0 = one full core).
Memory: RSS double-counts pages shared between processes (Python, libraries); PSS splits
them fairly and is the honest total; USS is what each process alone would free.

`--past-start` waits for every bot's heartbeat to be past "starting" and "training" (its
models trained and loaded, its warm-up done) instead of its first completed cycle: a
learning bot on 15m or 1h bars cycles once a bar. `--per-process` adds each process's
PSS, USS and RSS at the end, named by its command (`bot rl-btc`, `broker`, `fleet up` ...).
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

from fleetkit.config.loader import demo_config_text, parse_config
from fleetkit.store.database import open_database
from fleetkit.store.fleet import FleetStore
from report import publish


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def first_cycles(db_url: str) -> tuple[int, int]:
    """(bots registered, bots that finished a cycle)."""
    try:
        database = open_database(db_url)
    except Exception:  # not created yet
        return 0, 0
    try:
        store = FleetStore(database.engine)
        bots = store.bots()
        beats = {b.component: b for b in store.heartbeats()}
    finally:
        database.dispose()
    done = sum(1 for bot in bots if (beat := beats.get(f"bot:{bot.name}")) and beat.cycles >= 1)
    return len(bots), done


def past_start(db_url: str) -> tuple[int, int, int]:
    """(bots registered, bots whose heartbeat is past starting and training, bots that
    finished a cycle)."""
    try:
        database = open_database(db_url)
    except Exception:  # not created yet
        return 0, 0, 0
    try:
        store = FleetStore(database.engine)
        bots = store.bots()
        beats = {b.component: b for b in store.heartbeats()}
    finally:
        database.dispose()
    ready = cycled = 0
    for bot in bots:
        beat = beats.get(f"bot:{bot.name}")
        if beat is None:
            continue
        ready += beat.status not in ("starting", "training")
        cycled += beat.cycles >= 1
    return len(bots), ready, cycled


def label(process: psutil.Process, root: psutil.Process) -> str:
    """`fleet up`, `bot NAME`, or the command after `-m fleetkit` (`broker serve` ...)."""
    if process.pid == root.pid:
        return "fleet up"
    argv = process.cmdline()
    if "fleetkit" in argv:
        argv = argv[argv.index("fleetkit") + 1:]
    if argv[:2] == ["bot", "run"] and len(argv) > 2:
        return f"bot {argv[2]}"
    return " ".join(argv[:3]) or process.name()


def per_process(root: psutil.Process) -> list[dict[str, Any]]:
    rows = []
    mib = 2 ** 20
    for process in tree(root):
        try:
            info = process.memory_full_info()
            rows.append({"process": label(process, root), "pid": process.pid,
                         "pss_mib": round(getattr(info, "pss", info.uss) / mib, 1),
                         "uss_mib": round(info.uss / mib, 1),
                         "rss_mib": round(info.rss / mib, 1)})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(rows, key=lambda row: -row["pss_mib"])


def process_summary(root: psutil.Process, config: Path, home: Path, db_url: str
                    ) -> dict[str, Any]:
    """Per-process memory, the bots' total, the learning bots' rows and the plain bots'
    median (the learning bots are the config's bots with an `ml:` section)."""
    summary: dict[str, Any] = {}
    summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
    summary["bots_cycled_at_end"] = past_start(db_url)[2]
    rows = summary["per_process"] = per_process(root)
    bots = [row for row in rows if row["process"].startswith("bot ")]
    summary["per_process_total_pss_mib"] = round(sum(r["pss_mib"] for r in rows))
    summary["bot_processes"] = len(bots)
    summary["bots_pss_mib"] = round(sum(r["pss_mib"] for r in bots))
    learning = {f"bot {bot.name}" for bot in parse_config(
        config.read_text(encoding="utf-8"), str(config), home=home / "var").bots
        if bot.ml is not None}
    plain = sorted(r["pss_mib"] for r in bots if r["process"] not in learning)
    summary["learning_bots"] = [r for r in rows if r["process"] in learning]
    summary["plain_bots"] = len(plain)
    summary["plain_bot_pss_median_mib"] = statistics.median(plain) if plain else None
    summary["plain_bot_pss_range_mib"] = [plain[0], plain[-1]] if plain else None
    return summary


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample(root: psutil.Process) -> dict[str, float]:
    cpu = rss = uss = pss = 0.0
    count = 0
    for process in tree(root):
        try:
            times = process.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            info = process.memory_full_info()
            rss += info.rss
            uss += info.uss
            pss += getattr(info, "pss", info.uss)
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    mib = 2 ** 20
    return {"cpu_s": cpu, "rss_mib": rss / mib, "uss_mib": uss / mib, "pss_mib": pss / mib,
            "processes": count}


def wait_until_up(db_url: str, process: subprocess.Popen[bytes], started: float,
                  past: bool, timeout: float) -> dict[str, Any]:
    """Every bot's first cycle (or, `past`, every bot past starting and training)."""
    while True:
        if past:
            registered, ready, cycled = past_start(db_url)
            if registered and ready == registered:
                return {"bots": registered, "bots_cycled_then": cycled,
                        "seconds_to_every_bot_past_start": round(time.monotonic() - started,
                                                                 1)}
        else:
            registered, cycled = first_cycles(db_url)
            if registered and cycled == registered:
                return {"bots": registered, "seconds_to_every_first_cycle": round(
                    time.monotonic() - started, 1)}
        if time.monotonic() - started > timeout or process.poll() is not None:
            raise SystemExit(f"fleet did not come up ({cycled}/{registered} cycled)")
        time.sleep(0.25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=float, default=120.0, help="seconds to sample")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds after every first cycle before sampling")
    parser.add_argument("--past-start", action="store_true",
                        help="wait for every bot past starting/training, not its first cycle")
    parser.add_argument("--per-process", action="store_true",
                        help="each process's PSS, USS and RSS at the end")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds the fleet may take to come up")
    parser.add_argument("--stop-signal", choices=("term", "int"), default="term",
                        help="how `fleet up` is stopped at the end (SIGTERM or SIGINT)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fleet-density-"))
    config = home / "fleet.yaml"
    config.write_text(demo_config_text().replace("port: 8765", f"port: {free_port()}"),
                      encoding="utf-8")
    db_url = f"sqlite:///{home / 'var' / 'fleet.db'}"
    env = {**os.environ, "FLEET_HOME": str(home / "var"), "FLEET_LOG_FORMAT": "json"}
    env.pop("FLEET_DB_URL", None)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "fleetkit", "up", "--config", str(config),
                                "--no-live"], env=env, cwd=home, stdout=subprocess.DEVNULL,
                               stderr=(home / "fleet-up.stderr").open("wb"))
    root = psutil.Process(process.pid)
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": f"{os.cpu_count()} cores, "
                                         f"{psutil.virtual_memory().total / 2**30:.0f} GiB, "
                                         f"{platform.python_implementation()} "
                                         f"{platform.python_version()}"}
    try:
        result.update(wait_until_up(db_url, process, started, args.past_start,
                                    args.timeout))
        time.sleep(args.settle)
        first = sample(root)
        first_at = time.monotonic()
        peaks = dict(first)
        while time.monotonic() - first_at < args.steady:
            time.sleep(5)
            now = sample(root)
            for key in ("rss_mib", "uss_mib", "pss_mib"):
                peaks[key] = max(peaks[key], now[key])
        last = sample(root)
        wall = time.monotonic() - first_at
        result.update({
            "steady_seconds": round(wall),
            "cpu_cores_used": round((last["cpu_s"] - first["cpu_s"]) / wall, 4),
            "processes": last["processes"],
            "rss_mib": round(last["rss_mib"]), "pss_mib": round(last["pss_mib"]),
            "uss_mib": round(last["uss_mib"]), "peak_pss_mib": round(peaks["pss_mib"]),
            "pss_per_bot_mib": round(last["pss_mib"] / max(1, result["bots"]), 1),
        })
        if args.per_process:
            result.update(process_summary(root, config, home, db_url))
    finally:
        stop = time.monotonic()
        children = tree(root)[1:]
        process.send_signal(signal.SIGINT if args.stop_signal == "int" else signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            for child in children:  # only what this run started, by pid, if left behind
                if child.is_running():
                    child.kill()
        result["seconds_to_stop"] = round(time.monotonic() - stop, 1)
    publish(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
