"""Prometheus metrics from the fleet database, on both backends: what a scrape shows after
real writes through the store (a bot, its heartbeat, denials, a halt, a process restart),
`fleet metrics show` through the CLI, and `fleet metrics serve` answering over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetkit.cli.app import main
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.orders import OrderIntent, OrderType, Side
from fleetkit.engine.ports import Event
from fleetkit.risk.rails import Decision, DenialReason
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.ledger import SqlLedger
from fleetkit.testing.loopback import free_port
from tests.support import eventually

NOW = datetime.now(UTC)


def populate(database: Any) -> None:
    store = FleetStore(database.engine)
    bot_id = store.register_bot(name="alpha", market="NYSE", currency="USD", strategy="sma_cross",
                                mode="sandbox", settings={}, now=NOW)
    store.beat(Heartbeat("bot:alpha", "bot", bot_id, "trading", "ok", 123, "host", NOW, NOW, 42,
                         cycle_lag_ms=250))
    ledger = SqlLedger(database.engine, database.fleet_tag())
    intent = OrderIntent("NYSE:AAPL", Side.BUY, Decimal(10), OrderType.MARKET, Decimal(100))
    for _ in range(3):
        ledger.record_denial(bot_id, intent, Decision(False, DenialReason.MAX_ORDER_VALUE,
                                                      "too big"), NOW)
    ledger.set_control(bot_id, TradingState.HALTED, "by hand", HaltSource.OPERATOR, "ops", NOW)
    for _ in range(2):
        ledger.record_event(None, Event("process.exited", "bot:alpha exited", "error", "137",
                                        {"process": "bot:alpha", "code": -9}), NOW)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_scrape_reports_state_heartbeats_denials_halts_and_restarts(
        fleet_db: Any, capsys: pytest.CaptureFixture[str]) -> None:
    populate(fleet_db)
    url = fleet_db.engine.url.render_as_string(hide_password=False)
    assert main(["metrics", "show", "--db", url]) == 0
    found = samples(capsys.readouterr().out)

    state = (("bot", "alpha"), ("market", "NYSE"), ("mode", "sandbox"),
             ("strategy", "sma_cross"))
    assert found[("fleet_bot_state", tuple(sorted((*state, ("state", "HALTED")))))] == 1
    assert found[("fleet_bot_state", tuple(sorted((*state, ("state", "ACTIVE")))))] == 0
    assert found[("fleet_bot_cycles", (("bot", "alpha"),))] == 42
    assert found[("fleet_bot_cycle_lag_seconds", (("bot", "alpha"),))] == 0.25
    assert 0 <= found[("fleet_bot_heartbeat_age_seconds", (("bot", "alpha"),))] < 600
    assert found[("fleet_risk_denials_total",
                  (("bot", "alpha"), ("rule", "max_order_value")))] == 3
    assert found[("fleet_halts_total", (("bot", "alpha"), ("source", "operator")))] == 1
    assert found[("fleet_process_restarts_total", (("process", "bot:alpha"),))] == 2
    assert found[("fleet_state", (("state", "active"),))] == 1


@pytest.mark.slow
def test_serve_answers_prometheus_on_loopback_and_stops_on_sigterm(fleet_db: Any) -> None:
    populate(fleet_db)
    url = fleet_db.engine.url.render_as_string(hide_password=False)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fleetkit", "metrics", "serve", "--db", url,
                               "--port", str(port)], env=os.environ.copy(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def scraped() -> bool:
            reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            return reply.status_code == 200 and "fleet_bot_state" in reply.text

        eventually(scraped, 30, "a scrape of /metrics")
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=20)
    assert server.returncode == 0
