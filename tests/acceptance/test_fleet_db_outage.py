"""`fleet up` outlives its database: PostgreSQL cut away mid-run (through a loopback proxy),
the supervisor and its bots wait, then carry on by themselves when it returns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from fleetkit.testing.loopback import free_port
from fleetkit.testing.tcpproxy import TcpProxy
from tests.acceptance.cli_support import assert_json_user_error
from tests.support import eventually

pytestmark = pytest.mark.slow


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else \
        f"127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_fleet_up_waits_out_a_database_outage_and_resumes(pg_schema: str, tmp_path: Path) -> None:
    target = urlsplit(pg_schema)
    config = tmp_path / "fleet.yaml"
    config.write_text(f"""
sandbox: {{port: {free_port()}, seed: 5}}
runtime: {{heartbeat_interval_s: 1, stale_after_s: 10}}
bots:
  - {{name: a, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
  - {{name: b, market: CRYPTO, symbols: ["ETH/USDT"], strategy: sma_cross,
      params: {{fast: 2, slow: 5}}, bar_interval: 5s}}
""", encoding="utf-8")
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        env = {**os.environ, "FLEET_HOME": str(tmp_path / "var"),
               "FLEET_DB_URL": through(proxy, pg_schema)}
        env.pop("FLEET_CONFIG", None)

        def status() -> dict[str, dict[str, object]]:
            out = subprocess.run([sys.executable, "-m", "fleetkit", "status", "--json",
                                  "--config", str(config), "--db", pg_schema], env=env,
                                 capture_output=True, text=True, timeout=60, check=False)
            return {b["name"]: b for b in json.loads(out.stdout)["bots"]}

        fleet = subprocess.Popen([sys.executable, "-m", "fleetkit", "up", "--live",
                                  "--config", str(config)], env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            eventually(lambda: all(int(str(b["cycles"])) >= 1 for b in status().values())
                       and len(status()) == 2, 60, "both bots trading")
            before = int(str(status()["b"]["cycles"]))
            proxy.cut()
            time.sleep(8)  # the live view, the supervisor and the bots all lose the database
            assert fleet.poll() is None, "fleet up died with its database"
            # A script polling `fleet status --json` gets JSON that says why, not a blank.
            down = subprocess.run([sys.executable, "-m", "fleetkit", "status", "--json",
                                   "--config", str(config)], env=env, capture_output=True,
                                  text=True, timeout=60, check=False)
            assert_json_user_error(down, "database_unavailable", "cannot reach the database")
            proxy.restore()
            eventually(lambda: int(str(status()["b"]["cycles"])) > before + 1, 60,
                       "bot b to trade again")
            # Each bot probes on its own backoff (up to 30 s): one may still be between
            # probes, its heartbeat stale, when the other trades again.
            eventually(lambda: all(b["state"] == "ACTIVE" for b in status().values()), 60,
                       "every bot active again")
        finally:
            fleet.send_signal(signal.SIGTERM)
            _, errors = fleet.communicate(timeout=60)
        assert fleet.returncode == 0, errors[-2000:]
        # Each bot said so on its stderr (captured in its log) and recorded the recovery.
        bot_log = (tmp_path / "var" / "logs" / "b.log").read_text(encoding="utf-8")
        assert "database unreachable, trading paused" in bot_log
        assert '"action": "db.recovered"' in bot_log
        # The supervisor (a view every 2 s) and the broker (a heartbeat every second) said
        # the outage when it began and when it ended, not at every tick in between.
        logs = tmp_path / "var" / "logs"
        assert said(logs / "fleet.log", "db.unavailable") == ["started", "over"]
        assert said(logs / "broker.log", "broker.beat") == ["started", "over"]


def said(log: Path, action: str) -> list[str]:
    """The outage phases (started, ongoing, over) a process logged under `action`."""
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()
             if line.startswith("{")]
    return [str(line["outage"]) for line in lines
            if line.get("action") == action and "outage" in line]
