"""The heartbeat of a long-running process that is not a bot (scheduler, notifier): what
`fleet status`, the supervisor's hang check and the services monitor read."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from fleetkit.core.errors import FleetError
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.outage import OutageThrottle
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.jobs import RunOwner

log = get_logger("heartbeat")


class ComponentHeartbeat:
    def __init__(self, store: FleetStore, component: str, kind: str, owner: RunOwner,
                 started: datetime, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._component = component
        self._kind = kind
        self._owner = owner
        self._started = started
        self._outage = OutageThrottle(log, f"{component}.beat", problem="heartbeat not written",
                                      recovered="heartbeat written again", monotonic=monotonic)

    def beat(self, status: str, detail: str, cycles: int, now: datetime) -> None:
        """Write it; a database that is down costs a log line when the outage starts (and
        every few minutes while it lasts), never the process."""
        try:
            self._store.beat(Heartbeat(self._component, self._kind, None, status, detail,
                                       self._owner.pid, self._owner.host, self._started, now,
                                       cycles))
        except FleetError as exc:
            self._outage.failed(exc)
            return
        self._outage.succeeded()
