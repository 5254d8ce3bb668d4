"""The user's path to a testnet, with real processes: edit the config, export two variables,
`fleet db upgrade`, `fleet bot run` — against a fake Binance on loopback standing in for the
testnet (the config's api_base_url is the only difference). Then SIGTERM stops it cleanly,
`fleet status --json` says it is live, and the key and secret appear in no output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from fleetkit.testing.fake_exchange import FakeExchange, FakeExchangeServer, FakeMarket
from tests.support import eventually

pytestmark = pytest.mark.slow

KEY = "cli-key-a8b7c6d5e4"
SECRET = "cli-secret-MUST-NOT-PRINT-3c2b1a"


@pytest.fixture
def exchange() -> Iterator[tuple[FakeExchange, str]]:
    market = FakeMarket("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"),
                        step_size=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                        min_notional=Decimal("5"))
    fake = FakeExchange([market], FakeExchange.fixed_prices({"BTCUSDT": Decimal("60000")}),
                        api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(20_000)})
    with FakeExchangeServer(fake) as server:
        yield fake, server.url


def test_a_user_points_one_bot_at_a_testnet_with_config_and_two_variables(
        exchange: tuple[FakeExchange, str], database_url: str, tmp_path: Path) -> None:
    fake, url = exchange
    config = tmp_path / "fleet.yaml"
    config.write_text(f"""
exchanges:
  binance-testnet:
    ccxt_id: binance
    testnet: true
    api_base_url: {url}   # the local stand-in for the testnet
    rate_limit: false
    credentials: {{api_key_env: BINANCE_TESTNET_KEY, secret_env: BINANCE_TESTNET_SECRET}}
defaults: {{position_size_usd: 1000}}
bots:
  - {{name: testnet-btc, mode: live, exchange: binance-testnet, market: CRYPTO,
     symbols: ["BTC/USDT"], strategy: buy_and_hold}}
""", encoding="utf-8")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "var"), "FLEET_DB_URL": database_url,
           "BINANCE_TESTNET_KEY": KEY, "BINANCE_TESTNET_SECRET": SECRET,
           "FLEET_LOG_LEVEL": "DEBUG"}

    def fleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetkit", *args, "--config", str(config)],
                              env=env, cwd=tmp_path, text=True, capture_output=True,
                              timeout=120, check=False)

    assert fleet("db", "upgrade").returncode == 0
    bot = subprocess.Popen([sys.executable, "-m", "fleetkit", "bot", "run", "testnet-btc",
                            "--config", str(config)], env=env, cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        eventually(lambda: len(fake.orders()) == 1, 60, "the bot's first order at the exchange")
    finally:
        bot.send_signal(signal.SIGTERM)
        out, err = bot.communicate(timeout=60)
    assert bot.returncode == 0, err[-2000:]
    (order,) = fake.orders()
    assert order.client_order_id.startswith("fk") and fake.duplicate_submissions == 0

    status = fleet("status", "--json")
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)["bots"]
    assert row["mode"] == "live" and row["name"] == "testnet-btc"
    reconciled = fleet("reconcile", "testnet-btc", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr

    printed = out + err + status.stdout + status.stderr + reconciled.stdout + reconciled.stderr
    assert "order" in err  # DEBUG logging was on and said plenty...
    assert KEY not in printed and SECRET not in printed  # ...but never the credentials
