"""The operator's path through a reconciliation halt, with real processes: a trade behind the
bot's back -> `fleet reconcile` shows it -> the bot halts itself at boot -> `fleet resume`
refuses -> `fleet reconcile --adopt-broker` -> `fleet resume` works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.core.orders import OrderType, Side
from fleetkit.engine.ports import OrderRequest
from fleetkit.testing.loopback import free_port
from tests.support import eventually

pytestmark = pytest.mark.slow


class Operator:
    def __init__(self, home: Path, config: Path, env: dict[str, str], port: int) -> None:
        self.home, self.config, self.env, self.port = home, config, env, port

    def fleet(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetkit", *args, "--config",
                               str(self.config)], env=self.env, cwd=self.home, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "fleetkit", *args,
                                 "--config", str(self.config)], env=self.env, cwd=self.home,
                                text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def operator(database_url: str, tmp_path: Path) -> Iterator[Operator]:
    port = free_port()
    config = tmp_path / "fleet.yaml"
    config.write_text(f"""
sandbox: {{port: {port}, seed: 3, partial_fill_probability: 0}}
runtime: {{heartbeat_interval_s: 2, stale_after_s: 20, unknown_order_grace_s: 2,
           broker_timeout_s: 1}}
bots:
  - {{name: cx-hold, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
""", encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var"), "FLEET_DB_URL": database_url}
    env.pop("FLEET_CONFIG", None)
    yield Operator(tmp_path, config, env, port)


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_an_operator_sees_adopts_and_resumes_after_a_trade_behind_the_bots_back(
        operator: Operator) -> None:
    assert operator.fleet("up", "--for", "12", "--no-live").returncode == 0
    broker = operator.start("broker", "serve")
    try:
        url = f"http://127.0.0.1:{operator.port}"
        eventually(lambda: httpx.get(f"{url}/v1/health", timeout=1).status_code == 200, 30,
                   "the sandbox broker")
        with SandboxClient(url, "cx-hold") as client:
            client.submit(OrderRequest("desk-1", "CRYPTO:BTC/USDT", Side.BUY, OrderType.MARKET,
                                       Decimal("0.001")))

        seen = operator.fleet("reconcile", "cx-hold", "--json")
        assert seen.returncode == 1, seen.stderr
        assert json.loads(seen.stdout)[0]["clean"] is False

        bot = operator.start("bot", "run", "cx-hold")
        try:
            eventually(lambda: json.loads(operator.fleet("status", "--json").stdout)["bots"][0]
                       ["state"] == "HALTED", 60, "the bot to halt itself on the mismatch")
        finally:
            stop(bot)

        refused = operator.fleet("resume", "cx-hold")
        assert refused.returncode == 2
        assert "still differs from its broker" in refused.stderr

        adopted = operator.fleet("reconcile", "cx-hold", "--adopt-broker", "--reason",
                                 "desk bought 0.001 BTC for the bot")
        assert adopted.returncode == 0, adopted.stdout + adopted.stderr

        resumed = operator.fleet("resume", "cx-hold")
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed" in resumed.stdout
        trail = json.loads(operator.fleet("events", "cx-hold", "--kind", "reconcile",
                                          "--json").stdout)
        assert {e["kind"] for e in trail} >= {"reconcile.mismatch", "reconcile.adjusted"}
    finally:
        stop(broker)
