"""`fleet monitor run` on this very host and a real database (SQLite and PostgreSQL): JSON
findings and exit status 0 when all is well, 1 when something alerts, 2 for a monitor that
does not exist; with --alert the services check leaves its state and alerts behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from fleetkit.cli.app import main
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.outbox import NotifyState
from fleetkit.store.schema import events, outbox


def write_config(tmp_path: Path, **monitors: Any) -> Path:
    config = tmp_path / "fleet.yaml"
    config.write_text(f"""
bots:
  - {{name: alpha, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
  - {{name: beta, market: CRYPTO, symbols: ["ETH/USDT"], strategy: buy_and_hold}}
monitors: {json.dumps({"disk_paths": [str(tmp_path)], **monitors})}
""", encoding="utf-8")
    return config


@pytest.fixture(autouse=True)
def fleet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    monkeypatch.delenv("FLEET_CONFIG", raising=False)
    # The CPU this host is busy with is the one reading no threshold can be set out of reach
    # of (100% is a real reading: the suite itself fills every core under xdist), so the
    # command reads a quiet CPU; the monitors' own tests cover real readings.
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 12.5)


# Thresholds this host cannot reach, so "healthy" does not depend on the machine running it.
UNREACHABLE = {"cpu_warning_pct": 100, "memory_warning_pct": 99.99, "memory_critical_pct": 100,
               "disk_warning_pct": 99.99, "disk_critical_pct": 100}


def test_the_server_check_prints_json_findings_and_exits_0_when_healthy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, **UNREACHABLE)
    assert main(["monitor", "run", "--only", "server", "--json", "--config", str(config)]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert [(f["monitor"], f["key"], f["severity"]) for f in findings] == [
        ("server", "cpu", "info"), ("server", "memory", "info"),
        ("server", f"disk:{tmp_path}", "info")]
    disk = findings[2]["data"]
    usage = psutil.disk_usage(str(tmp_path))
    assert disk["path"] == str(tmp_path)
    assert abs(disk["used_pct"] - 100 * usage.used / (usage.used + usage.free)) < 1.0
    assert 0 <= findings[0]["data"]["cpu_pct"] <= 100
    assert 0 < findings[1]["data"]["memory_pct"] < 100
    assert findings[1]["message"] == f"memory {findings[1]['data']['memory_pct']:.1f}% used"


def test_a_disk_over_its_threshold_makes_the_check_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, **{**UNREACHABLE, "disk_warning_pct": 0.0001,
                                       "disk_critical_pct": 0.0002})
    assert main(["monitor", "run", "--only", "server", "--config", str(config)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok", "ok", "CRIT"]
    assert lines[2].startswith(f"CRIT server   disk {tmp_path} ")
    assert lines[2].endswith("— critical at 0.0002%")


def test_an_unknown_monitor_is_a_one_line_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["monitor", "run", "--only", "nonsense", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: unknown monitor 'nonsense': use server, services, "
                              "security\n")


def test_the_services_check_with_alert_records_its_state_and_alerts_once(
        fleet_db: Database, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = FleetStore(fleet_db.engine)
    now = datetime.now(UTC)
    for name, last_beat in (("alpha", now - timedelta(seconds=5)),
                            ("beta", now - timedelta(minutes=20))):
        bot_id = store.register_bot(name=name, market="CRYPTO", currency="USDT",
                                    strategy="buy_and_hold", mode="sandbox", settings={},
                                    now=now - timedelta(days=1))
        store.beat(Heartbeat(f"bot:{name}", "bot", bot_id, "trading", "", 4321, "host-a",
                             now - timedelta(hours=1), last_beat, 10))
    config = str(write_config(tmp_path))
    run = ["monitor", "run", "--only", "services", "--json", "--config", config,
           "--db", database_url]
    state = NotifyState(fleet_db.engine)

    assert main(run) == 1  # without --alert: printed, nothing recorded
    findings = json.loads(capsys.readouterr().out)
    assert [(f["key"], f["severity"]) for f in findings] == [
        ("heartbeat:bot:alpha", "info"), ("heartbeat:bot:beta", "error")]
    assert state.prefixed("monitor:") == {}

    assert main([*run, "--alert"]) == 1
    capsys.readouterr()
    beta = state.get("monitor:heartbeat:bot:beta")
    assert (beta["monitor"], beta["severity"], beta["alerting"]) == ("services", "error", True)
    assert beta["message"].startswith("bot:beta has not heartbeaten for 20 min")
    assert state.get("monitor:heartbeat:bot:alpha")["severity"] == "info"

    assert main([*run, "--alert"]) == 1  # the same stale bot: remembered, not alerted again
    with fleet_db.engine.connect() as conn:
        raised = conn.execute(select(events.c.kind, events.c.severity, events.c.code)).all()
        queued = conn.execute(select(outbox.c.kind, outbox.c.concern, outbox.c.severity)).all()
    assert [tuple(r) for r in raised] == [("monitor.services", "error", "heartbeat:bot:beta")]
    assert [tuple(r) for r in queued] == [("monitor.services", "infrastructure", "error")]
