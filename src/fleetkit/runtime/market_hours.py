"""Market-hours services: long-running fleet commands (data collectors, say) that run while
their market is open and not otherwise — started at the open (minus a lead), stopped at the
close (plus a lag), off all day on a holiday (the calendar has no session), always on for a
24/7 market. A service runs through a midday break (Tokyo's lunch): collectors usually want
the session's edges, not a restart in the middle.

The scheduler process owns them. Each tick compares what should run (a pure function of the
calendar and the time, so tests move a clock) with what does: it starts, stops, and restarts
a service that died inside its hours (with backoff, via the same Supervisor `fleet up` uses
for bots). A lease in the database makes one scheduler at a time run each service, so a
second scheduler — on this host or another — is a hot standby, not a duplicate.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetkit.config.models import ServiceSettings
from fleetkit.core.errors import FleetError
from fleetkit.core.instruments import MARKETS
from fleetkit.core.numbers import require_utc
from fleetkit.engine.ports import SessionSource
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.outage import OutageThrottle
from fleetkit.runtime.supervisor import ChildSpec, Supervisor
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.services import ServiceLeases

log = get_logger("services")

LEASE_TTL_S = 45.0  # renewed every tick (at most every heartbeat interval, 10 s by default)
_HORIZON = timedelta(days=16)  # far enough to find the next session after any holiday run


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """When a service should run: [start, end) in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What a service should be doing at a moment, and until when."""

    run: bool
    until: datetime | None  # run: when it stops; not run: when it next starts; None: never

    def describe(self, market: str) -> str:
        if self.run:
            return f"{market} open" + (f"; stops {self.until:%Y-%m-%d %H:%M} UTC"
                                       if self.until else "")
        if self.until is None:
            return f"{market} closed; no session ahead in the calendar"
        return f"{market} closed; starts {self.until:%Y-%m-%d %H:%M} UTC"


def service_windows(service: ServiceSettings, sessions: SessionSource, start: datetime,
                    end: datetime) -> list[Window]:
    """The service's running windows that overlap [start, end), oldest first. Windows that
    touch or overlap (a 24/7 market's days, long leads and lags) are one window, so the
    service is not stopped and started again at midnight."""
    start, end = require_utc(start, what="start"), require_utc(end, what="end")
    lead = timedelta(minutes=service.start_minutes_before_open)
    lag = timedelta(minutes=service.stop_minutes_after_close)
    calendar = MARKETS[service.market].calendar
    found = sessions.sessions(calendar, (start - lag).date() - timedelta(days=1),
                              (end + lead).date() + timedelta(days=1))
    merged: list[Window] = []
    for window in sorted(Window(s.open - lead, s.close + lag) for s in found):
        if merged and window.start <= merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, window.end))
        else:
            merged.append(window)
    return [w for w in merged if w.end > start and w.start < end]


def plan_for(service: ServiceSettings, sessions: SessionSource, now: datetime,
             offset: timedelta = timedelta(0)) -> Plan:
    """The plan at wall time `now`, the hours judged at `now + offset` (the venue's time
    for a service on the sandbox's clock); the plan's times are wall times."""
    venue_now = now + offset
    for window in service_windows(service, sessions, venue_now, venue_now + _HORIZON):
        if window.start <= venue_now < window.end:
            return Plan(True, window.end - offset)
        if window.start > venue_now:
            return Plan(False, window.start - offset)
    return Plan(False, None)


SpecFor = Callable[[ServiceSettings], ChildSpec]
# A service's clock offset (venue time minus wall time); None while it cannot be known (the
# sandbox is not answering yet).
OffsetFor = Callable[[ServiceSettings], "timedelta | None"]


def wall_clock(service: ServiceSettings) -> timedelta | None:
    return timedelta(0)


class MarketHoursServices:
    """Keeps each enabled service running exactly while its market's hours say so."""

    def __init__(self, services: Sequence[ServiceSettings], sessions: SessionSource,
                 leases: ServiceLeases, store: FleetStore, spec_for: SpecFor, *,
                 lease_ttl_s: float = LEASE_TTL_S, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, host: str = "",
                 offset_for: OffsetFor = wall_clock) -> None:
        self.services = [s for s in services if s.enabled]
        self._offset_for = offset_for
        self.plans: dict[str, Plan] = {}
        self._sessions = sessions
        self._leases = leases
        self._store = store
        self._ttl = lease_ttl_s
        self._host = host
        self._renewed: dict[str, datetime] = {}
        self._started: dict[str, datetime] = {}
        self._now: datetime | None = None
        self._beat_outages = {s.name: OutageThrottle(
            log, "service.beat", problem="heartbeat not written",
            recovered="heartbeat written again", service=s.name) for s in self.services}
        self.supervisor = Supervisor([spec_for(s) for s in self.services],
                                     backoff_initial_s=backoff_initial_s,
                                     backoff_max_s=backoff_max_s, on_exit=self._exited)

    def tick(self, now: datetime) -> None:
        """Start what should run, stop what should not, restart what died; beat for each."""
        self._now = now
        for service in self.services:
            offset = self._offset_for(service)
            if offset is None:
                # Its clock cannot be read (the sandbox is not up yet): change nothing until
                # it can, rather than stop a running collector or start one out of hours.
                if service.name not in self.plans:
                    self.plans[service.name] = Plan(False, None)
                continue
            plan = plan_for(service, self._sessions, now, offset)
            self.plans[service.name] = plan
            if plan.run:
                self._keep_running(service, now)
            elif self._active(service.name):
                self._stop(service, f"{service.market} closed", now, release=True)
        self.supervisor.poll()  # notices exits, restarts the due ones (after their backoff)
        for service in self.services:
            self._beat(service, now)

    def next_change(self) -> datetime | None:
        changes = [plan.until for plan in self.plans.values() if plan.until is not None]
        return min(changes) if changes else None

    def running(self) -> list[str]:
        return self.supervisor.alive()

    def stop_all(self, now: datetime) -> None:
        for service in self.services:
            if self._active(service.name):
                self._stop(service, "scheduler stopping", now, release=True)
            self._beat(service, now, stopping=True)

    # --- internals ------------------------------------------------------------------------

    def _active(self, name: str) -> bool:
        child = self.supervisor.children[name]
        return child.process is not None or child.restart_at is not None

    def _keep_running(self, service: ServiceSettings, now: datetime) -> None:
        name = service.name
        try:
            mine = self._leases.acquire(name, self._ttl, now, pid=os.getpid())
        except FleetError as exc:
            # The database is down: keep running while our lease would still be honoured,
            # then stop, because another scheduler may take the service over once it lapses.
            renewed = self._renewed.get(name)
            if self._active(name) and (renewed is None or
                                       (now - renewed).total_seconds() > self._ttl * 0.8):
                log.error("lease cannot be renewed; stopping", action="service.lease_lost",
                          service=name, error=str(exc))
                self._stop(service, "lease could not be renewed (database down)", now,
                           release=False)
            return
        if not mine:
            if self._active(name):  # another scheduler took it over (ours had lapsed)
                self._stop(service, "another scheduler holds its lease", now, release=False)
            return
        self._renewed[name] = now
        if not self._active(name):
            self.supervisor.start([name])
            self._started[name] = now
            child = self.supervisor.children[name]
            pid = child.process.pid if child.process else None
            hours = self.plans[name].describe(service.market)
            self._record("service.started", service, f"started ({hours})", now,
                         data={"pid": pid})

    def _stop(self, service: ServiceSettings, why: str, now: datetime, *, release: bool) -> None:
        code = self.supervisor.stop_one(service.name, service.stop_timeout_s)
        self._started.pop(service.name, None)
        self._record("service.stopped", service, f"stopped: {why}", now,
                     data={"exit_code": code})
        if release:
            with contextlib.suppress(FleetError):  # if the database is down it lapses alone
                self._leases.release(service.name)

    def _exited(self, name: str, code: int, restarts: int) -> None:
        service = next(s for s in self.services if s.name == name)
        now = self._now
        if now is not None:
            self._record("service.exited", service, f"exited with code {code} inside its "
                         "hours; restarting", now, severity="warning",
                         data={"exit_code": code, "restarts": restarts})

    def _record(self, kind: str, service: ServiceSettings, message: str, now: datetime, *,
                severity: str = "info", data: dict[str, object] | None = None) -> None:
        log.info(message, action=kind, service=service.name)
        try:
            self._leases.record(kind, service.name, message, now, severity=severity,
                                data=dict(data or {}))
        except FleetError as exc:
            log.warning("event not recorded", action=kind, service=service.name,
                        error=str(exc))

    def _beat(self, service: ServiceSettings, now: datetime, *, stopping: bool = False) -> None:
        name = service.name
        child = self.supervisor.children[name]
        plan = self.plans.get(name)
        alive = child.process is not None and child.process.poll() is None
        if stopping:
            status, detail = "stopped", "scheduler stopped"
        elif alive:
            status = "running"
            detail = plan.describe(service.market) if plan else "running"
        elif plan is not None and plan.run:
            status = "waiting"
            detail = ("restarting after an exit" if child.restart_at is not None
                      else "another scheduler runs it")
        else:
            status = "idle"
            detail = plan.describe(service.market) if plan else "idle"
        pid = child.process.pid if alive and child.process else None
        try:
            self._store.beat(Heartbeat(f"service:{name}", "service", None, status, detail,
                                       pid, self._host, self._started.get(name, now), now,
                                       child.restarts))
        except FleetError as exc:
            self._beat_outages[name].failed(exc)
            return
        self._beat_outages[name].succeeded()
