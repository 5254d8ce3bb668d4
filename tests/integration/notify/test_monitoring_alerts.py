"""Monitors turned into alerts against a real database (SQLite and PostgreSQL): a problem is
one alert when it starts, one more when its severity changes, one `monitor.resolved` when it
ends, and nothing while it lasts, across restarts too. The host is a fake psutil module
and a fake command runner; the database, events and outbox are real."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.core.alerts import Severity
from fleetkit.core.errors import DatabaseUnavailableError
from fleetkit.runtime.monitoring import Monitoring, MonitorTask
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.outbox import NotifyState
from fleetkit.store.schema import events, outbox
from tests.support import migrated_database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GIB = 1024**3
DISK = "/srv/fleet"
MONITORS: dict[str, Any] = {
    "disk_paths": [DISK], "server_every_minutes": 15, "services_every_minutes": 1,
    "security_every_minutes": 15, "stale_after_minutes": 15, "failed_logins_warning": 20,
    "security_summary_at": None}


def loaded_config(home: Path, **monitors: Any) -> LoadedConfig:
    text = f"""
bots:
  - {{name: alpha, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
  - {{name: beta, market: CRYPTO, symbols: ["ETH/USDT"], strategy: buy_and_hold}}
monitors: {json.dumps({**MONITORS, **monitors})}
"""
    return LoadedConfig(parse_config(text, "fleet.yaml"), "fleet.yaml", home)


@dataclass
class FakeHost:
    """The part of psutil the server monitor reads; a 100 GiB disk at `disk_pct`."""

    disk_pct: float = 50.0
    memory_pct: float = 40.0
    cpu_pct: float = 12.5
    readings: int = 0  # one cpu_percent call per server check

    def cpu_percent(self, interval: float | None = None) -> float:
        self.readings += 1
        return self.cpu_pct

    def virtual_memory(self) -> SimpleNamespace:
        return SimpleNamespace(percent=self.memory_pct)

    def disk_usage(self, path: str) -> SimpleNamespace:
        if path != DISK:
            raise FileNotFoundError(2, "No such file or directory")
        used, free = int(self.disk_pct * GIB), int((100 - self.disk_pct) * GIB)
        return SimpleNamespace(total=used + free + 5 * GIB, used=used, free=free)

    def getloadavg(self) -> tuple[float, float, float]:
        return (0.42, 0.3, 0.2)


@dataclass
class FakeCommands:
    """journalctl and fail2ban-client as the security monitor runs them: `outputs` maps a
    program to its stdout, None (or absent) meaning "not installed"."""

    outputs: dict[str, str | None] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], timeout_s: float) -> str | None:
        self.calls.append(list(argv))
        return self.outputs.get(argv[0])


def journal_line(at: datetime, pid: int, address: str, user: str = "root") -> str:
    return json.dumps({
        "__REALTIME_TIMESTAMP": str(int(at.timestamp() * 1_000_000)),
        "SYSLOG_IDENTIFIER": "sshd", "_PID": str(pid),
        "MESSAGE": f"Failed password for {user} from {address} port 52{pid % 1000:03d} ssh2"})


class Setup:
    def __init__(self, database: Database, home: Path) -> None:
        self.database, self.home = database, home
        self.host = FakeHost()
        self.commands = FakeCommands()
        self.loaded = loaded_config(home)

    def monitoring(self) -> Monitoring:
        """The monitors as a (re)started notifier builds them."""
        return Monitoring(self.loaded, self.database, psutil_module=self.host,
                          runner=self.commands)

    def events(self) -> list[tuple[str, str, str, str]]:
        with self.database.engine.connect() as conn:
            rows = conn.execute(select(events.c.kind, events.c.severity, events.c.code,
                                       events.c.message).order_by(events.c.id)).all()
        return [(r.kind, r.severity, r.code, r.message) for r in rows]

    def outbox(self) -> list[tuple[str, str, str, str]]:
        with self.database.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.kind, outbox.c.concern, outbox.c.severity,
                                       outbox.c.text).order_by(outbox.c.id)).all()
        return [(r.kind, r.concern, r.severity, r.text) for r in rows]

    def state(self, key: str) -> Any:
        return NotifyState(self.database.engine).get(f"monitor:{key}")

    def beat(self, name: str, at: datetime, status: str = "trading") -> None:
        store = FleetStore(self.database.engine)
        bot_id = store.register_bot(name=name, market="CRYPTO", currency="USDT",
                                    strategy="buy_and_hold", mode="sandbox", settings={},
                                    now=T0 - timedelta(days=1))
        store.beat(Heartbeat(f"bot:{name}", "bot", bot_id, status, "", 4321, "host-a",
                             T0 - timedelta(hours=2), at, 100))


@pytest.fixture
def setup(fleet_db: Database, tmp_path: Path) -> Setup:
    return Setup(fleet_db, tmp_path)


def check_and_record(monitoring: Monitoring, name: str, now: datetime) -> int:
    return monitoring.record(monitoring.check([name], now), now)


# --- server ---------------------------------------------------------------------------------


def test_a_full_disk_alerts_once_per_severity_and_once_when_it_ends(setup: Setup) -> None:
    monitoring = setup.monitoring()
    setup.host.disk_pct = 91.0
    assert check_and_record(monitoring, "server", T0) == 1
    critical = f"disk {DISK} 91.0% full (used/(used+free)), 9.0 GiB free — critical at 90%"
    assert setup.events() == [("monitor.server", "critical", f"disk:{DISK}", critical)]
    assert setup.outbox() == [("monitor.server", "infrastructure", "critical", critical)]

    # Still 91% a quarter later, and after a restart: the same problem, no new alert.
    assert check_and_record(monitoring, "server", T0 + timedelta(minutes=15)) == 0
    assert check_and_record(setup.monitoring(), "server", T0 + timedelta(minutes=30)) == 0
    assert len(setup.events()) == 1 and len(setup.outbox()) == 1
    assert setup.state(f"disk:{DISK}")["since"] == T0.isoformat()

    setup.host.disk_pct = 87.0  # better, still bad: a new alert at the new severity
    assert check_and_record(monitoring, "server", T0 + timedelta(minutes=45)) == 1
    warning = f"disk {DISK} 87.0% full (used/(used+free)), 13.0 GiB free — warning at 85%"
    assert setup.events()[1:] == [("monitor.server", "warning", f"disk:{DISK}", warning)]

    setup.host.disk_pct = 50.0
    assert check_and_record(monitoring, "server", T0 + timedelta(minutes=60)) == 1
    assert check_and_record(monitoring, "server", T0 + timedelta(minutes=75)) == 0
    resolved = f"resolved: disk {DISK} 50.0% full, 50.0 GiB free"
    assert setup.events()[2:] == [("monitor.resolved", "info", f"disk:{DISK}", resolved)]
    assert [(kind, concern, severity) for kind, concern, severity, _ in setup.outbox()] == [
        ("monitor.server", "infrastructure", "critical"),
        ("monitor.server", "infrastructure", "warning"),
        ("monitor.resolved", "infrastructure", "info")]
    state = setup.state(f"disk:{DISK}")
    assert (state["severity"], state["alerting"], state["message"]) == (
        "info", False, f"disk {DISK} 50.0% full, 50.0 GiB free")


def test_a_problem_whose_path_is_no_longer_watched_is_resolved(setup: Setup) -> None:
    setup.host.disk_pct = 91.0
    assert check_and_record(setup.monitoring(), "server", T0) == 1
    setup.loaded = loaded_config(setup.home, disk_paths=[])  # the path left the config
    assert check_and_record(setup.monitoring(), "server", T0 + timedelta(minutes=15)) == 1
    kind, severity, code, message = setup.events()[-1]
    assert (kind, severity, code) == ("monitor.resolved", "info", f"disk:{DISK}")
    assert message.startswith("resolved (no longer checked): disk")
    assert setup.state(f"disk:{DISK}")["alerting"] is False
    assert check_and_record(setup.monitoring(), "server", T0 + timedelta(minutes=30)) == 0


def test_cpu_and_memory_within_limits_raise_nothing(setup: Setup) -> None:
    findings = setup.monitoring().check(["server"], T0)
    assert [(f.key, f.severity, f.message) for f in findings] == [
        ("cpu", Severity.INFO, "cpu 12.5% busy, load 0.42"),
        ("memory", Severity.INFO, "memory 40.0% used"),
        (f"disk:{DISK}", Severity.INFO, f"disk {DISK} 50.0% full, 50.0 GiB free")]
    assert setup.monitoring().record(findings, T0) == 0
    assert setup.events() == [] and setup.outbox() == []


# --- services -------------------------------------------------------------------------------


def test_a_bot_silent_for_twenty_minutes_is_an_error_alert(setup: Setup) -> None:
    setup.beat("alpha", T0 - timedelta(minutes=20))
    monitoring = setup.monitoring()
    findings = monitoring.check(["services"], T0)
    assert [(f.key, f.severity, f.message) for f in findings] == [
        ("heartbeat:bot:alpha", Severity.ERROR, "bot:alpha has not heartbeaten for 20 min "
         "(last status trading) — stale after 15 min"),
        ("heartbeat:bot:beta", Severity.WARNING, "bot:beta never started (no heartbeat)")]
    assert monitoring.record(findings, T0) == 2
    assert [(kind, severity, code) for kind, severity, code, _ in setup.events()] == [
        ("monitor.services", "error", "heartbeat:bot:alpha"),
        ("monitor.services", "warning", "heartbeat:bot:beta")]
    assert "stale" in setup.outbox()[0][3]

    setup.beat("alpha", T0 + timedelta(seconds=50))  # it came back
    assert check_and_record(monitoring, "services", T0 + timedelta(minutes=1)) == 1
    assert setup.events()[-1][:3] == ("monitor.resolved", "info", "heartbeat:bot:alpha")


# --- security -------------------------------------------------------------------------------


def test_25_failed_ssh_logins_in_a_check_are_a_warning(setup: Setup) -> None:
    lines = [journal_line(T0 - timedelta(minutes=10, seconds=-i), 1000 + i,
                          "203.0.113.5" if i < 15 else "198.51.100.7") for i in range(25)]
    setup.commands.outputs["journalctl"] = "\n".join(lines) + "\n"
    monitoring = setup.monitoring()
    findings = monitoring.check(["security"], T0)
    assert [(f.key, f.severity, f.message) for f in findings] == [
        ("ssh:failed_logins", Severity.WARNING, "25 failed SSH logins from 2 addresses (top: "
         "203.0.113.5 ×15, 198.51.100.7 ×10) in 15 min — warning at 20"),
        ("fail2ban", Severity.INFO,
         "security: fail2ban-client not found on this host, fail2ban not checked")]
    journal = setup.commands.calls[0]
    assert journal[journal.index("--since") + 1] == \
        f"@{int((T0 - timedelta(minutes=15)).timestamp())}"
    assert monitoring.record(findings, T0) == 1
    ((kind, severity, code, message),) = setup.events()
    assert (kind, severity, code) == ("monitor.security", "warning", "ssh:failed_logins")
    assert message.startswith("25 failed SSH logins")
    # The next check reads on from where this one stopped.
    monitoring.check(["security"], T0 + timedelta(minutes=15))
    journal = setup.commands.calls[-2]
    assert journal[journal.index("--since") + 1] == f"@{int(T0.timestamp())}"


def test_missing_security_tools_are_reported_not_alerted(setup: Setup) -> None:
    monitoring = setup.monitoring()  # neither journalctl nor fail2ban-client installed
    findings = monitoring.check(["security"], T0)
    assert [(f.severity, f.message) for f in findings] == [
        (Severity.INFO, "security: journalctl not found on this host, SSH logins not checked"),
        (Severity.INFO,
         "security: fail2ban-client not found on this host, fail2ban not checked")]
    assert monitoring.record(findings, T0) == 0
    assert setup.events() == [] and setup.outbox() == []
    assert setup.state("ssh:failed_logins")["alerting"] is False


# --- on a schedule --------------------------------------------------------------------------


def test_the_monitor_task_runs_each_monitor_on_its_own_interval(setup: Setup) -> None:
    setup.beat("alpha", T0)
    setup.beat("beta", T0)
    task = MonitorTask(setup.loaded, setup.database, setup.monitoring())

    def journal_reads() -> int:
        return sum(call[0] == "journalctl" for call in setup.commands.calls)

    task.run_if_due(T0)
    assert (setup.host.readings, journal_reads()) == (1, 1)
    assert setup.state("heartbeat:bot:alpha")["checked_at"] == T0.isoformat()

    task.run_if_due(T0 + timedelta(minutes=1))  # services every minute; the others every 15
    assert (setup.host.readings, journal_reads()) == (1, 1)
    assert setup.state("heartbeat:bot:alpha")["checked_at"] == \
        (T0 + timedelta(minutes=1)).isoformat()
    assert setup.state("cpu")["checked_at"] == T0.isoformat()

    task.run_if_due(T0 + timedelta(minutes=14, seconds=59))
    assert setup.host.readings == 1
    task.run_if_due(T0 + timedelta(minutes=15))
    assert (setup.host.readings, journal_reads()) == (2, 2)
    assert setup.events() == []  # silent exactly 15 min: "stale after 15 min" is not yet

    task.run_if_due(T0 + timedelta(minutes=16))
    assert (setup.host.readings, journal_reads()) == (2, 2)
    # The bots stopped beating at T0: stale now, alerted by the services check alone.
    assert [(kind, code) for kind, _, code, _ in setup.events()] == [
        ("monitor.services", "heartbeat:bot:alpha"), ("monitor.services", "heartbeat:bot:beta")]


def test_the_security_summary_is_sent_once_a_day_after_its_time(setup: Setup) -> None:
    setup.loaded = loaded_config(setup.home, security_summary_at="08:30")
    task = MonitorTask(setup.loaded, setup.database, setup.monitoring())
    task.run_if_due(T0 - timedelta(hours=1))  # 08:00 UTC: not yet
    task.run_if_due(T0)
    task.run_if_due(T0 + timedelta(hours=2))
    summaries = [row for row in setup.outbox() if row[0] == "report.security"]
    assert summaries == [("report.security", "brief", "info",
                          "Security, last 24 h:\n"
                          "  SSH: not checked (journalctl not found on this host)\n"
                          "  fail2ban: not checked (fail2ban-client not found on this host)")]


def test_a_security_summary_the_database_refused_is_written_on_the_next_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_SQLITE_BUSY_TIMEOUT_MS", "50")  # a locked file fails fast
    path = tmp_path / "fleet.db"
    database = migrated_database(f"sqlite:///{path}")
    try:
        setup = Setup(database, tmp_path)
        setup.loaded = loaded_config(tmp_path, security_summary_at="09:00",
                                     server_every_minutes=0, services_every_minutes=0)
        task = MonitorTask(setup.loaded, database, setup.monitoring())
        task.run_if_due(T0 - timedelta(minutes=5))  # the security check, before the summary
        other_writer = sqlite3.connect(path, isolation_level=None)
        other_writer.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            with pytest.raises(DatabaseUnavailableError, match="database is locked"):
                task.run_if_due(T0)
        finally:
            other_writer.execute("ROLLBACK")
            other_writer.close()
        task.run_if_due(T0 + timedelta(seconds=1))
        assert [row[0] for row in setup.outbox()] == ["report.security"]
    finally:
        database.dispose()
