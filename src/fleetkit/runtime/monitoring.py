"""Running the monitors (monitor.server, .services, .security) and turning their findings
into alerts: once when a problem starts or changes severity, once when it ends.

Each finding's last state is kept in notify_state under `monitor:KEY`, written in the same
transaction as the event (and so the outbox row) that tells of a change: a lasting problem
is one alert, not one every 15 minutes, across restarts too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import Connection, Engine

from fleetkit.config.loader import LoadedConfig
from fleetkit.core.alerts import Concern, Finding, Severity
from fleetkit.core.errors import FleetError
from fleetkit.monitor import security, server, services
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.notifier import daily_due
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.outbox import NotifyState, Outbox
from fleetkit.store.rows import insert_event

log = get_logger("monitor")

MONITORS = ("server", "services", "security")
STATE_PREFIX = "monitor:"


class Monitoring:
    def __init__(self, loaded: LoadedConfig, database: Database | None, *,
                 psutil_module: server.PsutilLike | None = None,
                 runner: security.Runner | None = None) -> None:
        """`database` may be None to check server and security only (no alerting)."""
        self._config = loaded.config
        self._database = database
        self._psutil: server.PsutilLike = psutil_module if psutil_module is not None else psutil
        self._runner = runner
        self.security_since: datetime | None = None

    @property
    def _engine(self) -> Engine:
        if self._database is None:
            raise FleetError("the services monitor and alerting need the fleet database")
        return self._database.engine

    # --- checking -------------------------------------------------------------------------

    def check(self, names: Sequence[str], now: datetime) -> list[Finding]:
        checks = {"server": self.check_server, "services": self.check_services,
                  "security": self.check_security}
        return [finding for name in names for finding in checks[name](now)]

    def check_server(self, now: datetime) -> list[Finding]:
        m = self._config.monitors
        thresholds = server.ServerThresholds(m.disk_warning_pct, m.disk_critical_pct,
                                             m.memory_warning_pct, m.memory_critical_pct,
                                             m.cpu_warning_pct)
        reading = server.read_server(m.disk_paths, psutil_module=self._psutil)
        return server.check_server(reading, thresholds)

    def check_services(self, now: datetime) -> list[Finding]:
        beats = [services.Beat(b.component, b.kind, b.status, b.beat_at, b.detail)
                 for b in FleetStore(self._engine).heartbeats()]
        expected = [f"bot:{bot.name}" for bot in self._config.bots]
        return services.check_heartbeats(beats, now,
                                         self._config.monitors.stale_after_minutes * 60,
                                         expected)

    def check_security(self, now: datetime) -> list[Finding]:
        window = timedelta(minutes=self._config.monitors.security_every_minutes or 15)
        since = self.security_since or now - window
        self.security_since = now
        failed = security.read_failed_logins(since, self._runner)
        jails = security.read_jails(self._runner)
        thresholds = security.SecurityThresholds(self._config.monitors.failed_logins_warning,
                                                 max(1.0, (now - since).total_seconds()))
        return security.check_security(failed, jails, thresholds)

    def security_summary(self, now: datetime) -> str:
        since = now - timedelta(days=1)
        return security.security_summary(security.read_failed_logins(since, self._runner),
                                         security.read_jails(self._runner), since, now)

    # --- alerting on changes --------------------------------------------------------------

    def record(self, findings: Sequence[Finding], now: datetime) -> int:
        """Alert on what changed since the last check; how many alerts were raised."""
        previous = NotifyState(self._engine).prefixed(STATE_PREFIX)
        raised = 0
        with write_transaction(self._engine) as conn:
            for finding in findings:
                key = STATE_PREFIX + finding.key
                before: dict[str, Any] = previous.get(key) or {}
                was_alerting = bool(before.get("alerting"))
                if finding.alerting and before.get("severity") != finding.severity.label:
                    insert_event(conn, bot_id=None, kind=f"monitor.{finding.monitor}",
                                 severity=finding.severity.label, code=finding.key,
                                 message=finding.message, now=now, actor="monitor",
                                 data=dict(finding.data))
                    raised += 1
                elif was_alerting and not finding.alerting:
                    insert_event(conn, bot_id=None, kind="monitor.resolved", severity="info",
                                 code=finding.key, message=f"resolved: {finding.message}",
                                 now=now, actor="monitor", data=dict(finding.data))
                    raised += 1
                since = before.get("since") if before.get("severity") == \
                    finding.severity.label else now.isoformat()
                NotifyState.put_on(conn, key, {
                    "monitor": finding.monitor, "severity": finding.severity.label,
                    "alerting": finding.alerting, "message": finding.message,
                    "since": since, "checked_at": now.isoformat()}, now)
            raised += self._resolve_vanished(conn, previous, findings, now)
        return raised

    @staticmethod
    def _resolve_vanished(conn: Connection, previous: Mapping[str, Any],
                          findings: Sequence[Finding], now: datetime) -> int:
        """A problem whose key a monitor no longer reports (a disk path taken out of the
        config, a bot removed) ends too: otherwise it would stay alerting for ever."""
        checked = {f.monitor for f in findings}
        current = {STATE_PREFIX + f.key for f in findings}
        resolved = 0
        for key, before in previous.items():
            if key in current or not isinstance(before, dict) or not before.get("alerting") \
                    or before.get("monitor") not in checked:
                continue
            insert_event(conn, bot_id=None, kind="monitor.resolved", severity="info",
                         code=key.removeprefix(STATE_PREFIX), now=now, actor="monitor",
                         message=f"resolved (no longer checked): {before.get('message', '')}")
            NotifyState.put_on(conn, key, {**before, "alerting": False, "severity": "info",
                                           "checked_at": now.isoformat()}, now)
            resolved += 1
        return resolved


class MonitorTask:
    """The monitors on their intervals inside the notifier, plus the daily security summary."""

    name = "monitors"

    def __init__(self, loaded: LoadedConfig, database: Database,
                 monitoring: Monitoring | None = None) -> None:
        self._config = loaded.config
        self._monitoring = monitoring or Monitoring(loaded, database)
        self._outbox = Outbox(database.engine)
        self._last: dict[str, datetime] = {}
        self._summary_day: str | None = None

    def run_if_due(self, now: datetime) -> None:
        m = self._config.monitors
        every = {"server": m.server_every_minutes, "services": m.services_every_minutes,
                 "security": m.security_every_minutes}
        for name in MONITORS:
            minutes = every[name]
            last = self._last.get(name)
            if not minutes or (last is not None and now - last < timedelta(minutes=minutes)):
                continue
            self._last[name] = now
            findings = self._monitoring.check([name], now)
            raised = self._monitoring.record(findings, now)
            if raised:
                log.info("monitor alerts", action="monitor.alerts", monitor=name, raised=raised)
        self._summary_if_due(now)

    def _summary_if_due(self, now: datetime) -> None:
        at = self._config.monitors.security_summary_time()
        if at is None or not self._config.monitors.security_every_minutes:
            return
        day = daily_due(now, at, self._config.notify.reports.timezone, self._summary_day)
        if day is None:
            return
        self._outbox.enqueue(kind="report.security", concern=Concern.BRIEF.value,
                             severity=Severity.INFO, now=now,
                             text=self._monitoring.security_summary(now),
                             dedup_key=f"report.security:{day}")
        self._summary_day = day  # only once written: a database blip is retried within the day
