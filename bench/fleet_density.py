"""Fleet density: the 35-bot demo on this machine — time to every bot's first cycle, then
CPU and memory of the whole process tree (supervisor, broker, bots) at steady state.

    python bench/fleet_density.py                      # 120 s of steady state
    python bench/fleet_density.py --steady 300 --json bench/results/fleet_density.json

Runs `fleet up` exactly as a user does (the built-in demo config, its own data directory
and port). CPU is total CPU seconds of the tree over wall seconds (1.0 = one full core).
Memory: RSS double-counts pages shared between processes (Python, libraries); PSS splits
them fairly and is the honest total; USS is what each process alone would free.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from fleetkit.config.loader import demo_config_text
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=float, default=120.0, help="seconds to sample")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds after every first cycle before sampling")
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
                               stderr=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                              "machine": f"{os.cpu_count()} cores, "
                                         f"{psutil.virtual_memory().total / 2**30:.0f} GiB, "
                                         f"{platform.python_implementation()} "
                                         f"{platform.python_version()}"}
    try:
        while True:
            registered, cycled = first_cycles(db_url)
            if registered and cycled == registered:
                result["bots"] = registered
                result["seconds_to_every_first_cycle"] = round(time.monotonic() - started, 1)
                break
            if time.monotonic() - started > 300 or process.poll() is not None:
                raise SystemExit(f"fleet did not come up ({cycled}/{registered} cycled)")
            time.sleep(0.25)
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
    finally:
        stop = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        result["seconds_to_stop"] = round(time.monotonic() - stop, 1)
    publish(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
