"""The training pipeline's overhead apart from training (issue 17): a real `fleet train run`
of a TFT bot on a year of 15-minute bars, with the local trainer and with the SSH trainer
against a real OpenSSH server on a loopback port (tests/integration/sshd.py's setup: a
throwaway host key and client key, `ssh -F`), and each step's seconds read back from the
run's record (training_steps):

    export    the year's bars into bars.npz + the trainer's config + export.json (sha256s)
    ship      upload to the trainer and check the sha256s there
    train     `fleet ml train` on the trainer              -- excluded: training
    hash      sha256 of every model file on the trainer
    fetch     download and verify every sha256 on arrival
    evaluate  the gate's out-of-sample evaluation          -- excluded: model evaluation
    archive   stored in the artifact store, registered
    activate  verified, made active, copied where the bot reads it
    publish   skipped (no git remote)

The bot is a 24/7 coin (CRYPTO:BTC/USDT) on 15-minute bars, `ml.history_bars` 35,040 (a
year), policy tft; training is kept tiny (64 steps) since its time is not counted. Bars come
from the sandbox's invented history (computed in-process, no database rows): see
docs/benchmarks.md for what that leaves out. With --pg, the export's own source is timed
against raw `COPY (SELECT …) TO STDOUT` of a year of one-minute bars on PostgreSQL.

    python bench/pipeline_overhead.py                              # local and ssh
    python bench/pipeline_overhead.py --trainers local --json bench/results/pipeline_overhead.json

Goal (issue 17, 2 cores): export + ship + hash + fetch + archive + activate under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.integration.sshd: the tests' loopback sshd setup

from report import publish  # noqa: E402

GOAL_S = 10.0
OVERHEAD_STEPS = ("export", "ship", "hash", "fetch", "archive", "activate")
EXCLUDED_STEPS = ("train", "evaluate", "publish")
BARS_PER_YEAR_24_7 = 365 * 24 * 4  # 35,040 15-minute bars

CONFIG = """
bots:
  - name: rl-btc
    market: CRYPTO
    symbols: [BTC/USDT]
    strategy: rl_policy
    params: {{features: {features}}}
    bar_interval: 15m
    ml:
      policy: tft
      features: {features}
      history_bars: {bars}
      holdout_fraction: 0.02
      steps: 64
      n_envs: 1
      window: 8
      episode_bars: 64
training:
  trainers:
{trainer}
  retries: {{attempts: 1, initial_s: 0, maximum_s: 0}}
  defaults:
    timeout_s: 1800
    gate: {{min_sharpe_vs_active: null, must_beat: [], reject_collapsed: false}}
"""
FEATURES = json.dumps({"timeframes": {"15m": ["returns", "rsi"]}, "calendar": []})


def trainer_yaml(kind: str, folder: Path, ssh_config: Path | None) -> str:
    if kind == "local":
        return (f"    here: {{kind: local, device: cpu, workdir: '{folder / 'trainer'}'}}")
    return (f"    gpu-box: {{kind: ssh, host: gpu-box, ssh_config: '{ssh_config}', "
            f"workdir: '{folder / 'trainer'}', python: '{sys.executable}', device: cpu, "
            "connect_timeout_s: 10}")


def start_sshd(folder: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """tests/integration/sshd.py's server and client setup, without pytest's fixture."""
    from tests.integration import sshd as loopback

    if not (loopback.SSHD.is_file() and os.access(loopback.SSHD, os.X_OK)):
        raise SystemExit(f"no {loopback.SSHD}: apt-get install openssh-server "
                         "(or run with --trainers local)")
    if os.geteuid() == 0 and not loopback.PRIVSEP_DIR.is_dir():
        loopback.PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    for name in ("host_key", "client_key", "wrong_key"):
        loopback._keygen(folder / name)
    shutil.copyfile(folder / "client_key.pub", folder / "authorized_keys")
    port = loopback.free_port()
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    config = loopback._server_config(folder, port)
    log = (folder / "sshd.log").open("wb")
    process = subprocess.Popen([str(loopback.SSHD), "-D", "-e", "-f", str(config)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    loopback._wait_listening(port, process, folder / "sshd.log")
    return process, loopback._client_config(folder, port, user)


def fleet(*args: str, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fleetkit", *args], capture_output=True,
                          text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"fleet {' '.join(args)} exited {done.returncode}: "
                         f"{done.stderr.strip()[-2000:]}")
    return seconds, done.stdout


def one_run(kind: str, bars: int, folder: Path, ssh_config: Path | None) -> dict[str, Any]:
    folder.mkdir(parents=True)
    config = folder / "fleet.yaml"
    config.write_text(CONFIG.format(features=FEATURES, bars=bars,
                                    trainer=trainer_yaml(kind, folder, ssh_config)),
                      encoding="utf-8")
    db = f"sqlite:///{folder / 'fleet.db'}"
    env = {**os.environ, "FLEET_HOME": str(folder / "var")}
    env.pop("FLEET_DB_URL", None)
    common = ["--config", str(config), "--db", db]
    fleet("db", "upgrade", *common, env=env)
    wall, out = fleet("train", "run", "rl-btc", "--json", *common, env=env)
    run = json.loads(out)["runs"][0]
    if run["state"] != "succeeded":
        raise SystemExit(f"{kind}: the run ended {run['state']}: {run['error']}")
    steps = {s["step"]: s for s in run["steps"]}
    seconds = {name: s["seconds"] for name, s in steps.items()}
    overhead = sum(seconds[name] for name in OVERHEAD_STEPS)
    export = steps["export"]["detail"]
    model = folder / "var" / "models" / "rl-btc" / "15m"
    return {
        "trainer": kind, "bars_15m": export["bars"], "bar_source": export["source"],
        "export_bytes": export["bytes"],
        "export_rows_per_s": round(export["bars"] / seconds["export"]),
        "model_files": steps["fetch"]["detail"]["files"],
        "model_bytes": steps["fetch"]["detail"]["bytes"],
        "step_seconds": seconds, "overhead_s": round(overhead, 3),
        "excluded_s": {name: seconds.get(name) for name in EXCLUDED_STEPS},
        "fleet_train_run_wall_s": round(wall, 2), "goal_s": GOAL_S,
        "met": overhead < GOAL_S,
        "policy": json.loads((model / "manifest.json").read_text(encoding="utf-8"))["policy"]}


def copy_vs_export(pg_url: str, minutes: int) -> dict[str, Any]:
    """A year of one-minute bars in a scratch schema of PostgreSQL: the bar store's read
    (what the export reads when the store holds the bars) against raw COPY of the same rows."""
    import psycopg
    from sqlalchemy import create_engine

    from fleetkit.core.bars import ONE_MINUTE
    from fleetkit.store.bars import BarStore
    from fleetkit.store.migrate import upgrade

    schema = f"bench_pipeline_{os.getpid()}"
    admin = psycopg.connect(pg_url, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{pg_url}?options=-csearch_path%3D{schema}"
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        upgrade(engine)
        start_s = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
        now = datetime.now(UTC)
        with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(
                "COPY bars (instrument, timeframe, open_time, open, high, low, close, volume, "
                "source, recorded_at) FROM STDIN") as copy:
            for i in range(minutes):
                copy.write_row(("CRYPTO:BTC/USDT", ONE_MINUTE,
                                datetime.fromtimestamp(start_s + 60 * i, UTC),
                                100, 101, 99, 100.5, 10, "bench", now))
        end = datetime.fromtimestamp(start_s + 60 * minutes, UTC)
        began = time.perf_counter()
        read = BarStore(engine).read("CRYPTO:BTC/USDT", ONE_MINUTE,
                                     datetime.fromtimestamp(start_s, UTC), end)
        store_s = time.perf_counter() - began
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            began = time.perf_counter()
            size = 0
            with cur.copy("COPY (SELECT open_time, open, high, low, close, volume FROM bars "
                          "WHERE instrument = 'CRYPTO:BTC/USDT' AND timeframe = %s "
                          "ORDER BY open_time) TO STDOUT", (ONE_MINUTE,)) as copy:
                for block in copy:
                    size += len(block)
            copy_s = time.perf_counter() - began
        engine.dispose()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    return {"rows": len(read), "bar_store_read_s": round(store_s, 3),
            "bar_store_rows_per_s": round(len(read) / store_s),
            "copy_s": round(copy_s, 3), "copy_rows_per_s": round(minutes / copy_s),
            "copy_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=BARS_PER_YEAR_24_7)
    parser.add_argument("--trainers", nargs="+", default=["local", "ssh"],
                        choices=["local", "ssh"])
    parser.add_argument("--pg", help="also time the bar store's read against raw COPY on "
                        "this PostgreSQL (a scratch schema, dropped after)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pipeline-overhead-"))
    sshd = None
    runs = []
    try:
        ssh_config = None
        if "ssh" in args.trainers:
            (root / "sshd").mkdir()
            sshd, ssh_config = start_sshd(root / "sshd")
        for kind in args.trainers:
            runs.append(one_run(kind, args.bars, root / kind, ssh_config))
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
    result: dict[str, Any] = {
        "benchmark": "pipeline_overhead", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_1m": os.getloadavg()[0]},
        "overhead_steps": list(OVERHEAD_STEPS), "runs": runs}
    if args.pg:
        result["copy_vs_bar_store"] = copy_vs_export(args.pg, args.bars * 15)
    publish(result, args.json)


if __name__ == "__main__":
    main()
