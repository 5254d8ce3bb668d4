"""The heartbeat of a long-running process that is not a bot (scheduler, notifier): what
`fleet status`, the supervisor's hang check and the services monitor read."""

from __future__ import annotations

from datetime import datetime

from fleetkit.core.errors import FleetError
from fleetkit.runtime.logs import get_logger
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.jobs import RunOwner

log = get_logger("heartbeat")


class ComponentHeartbeat:
    def __init__(self, store: FleetStore, component: str, kind: str, owner: RunOwner,
                 started: datetime) -> None:
        self._store = store
        self._component = component
        self._kind = kind
        self._owner = owner
        self._started = started

    def beat(self, status: str, detail: str, cycles: int, now: datetime) -> None:
        """Write it; a database that is down costs a log line, never the process."""
        try:
            self._store.beat(Heartbeat(self._component, self._kind, None, status, detail,
                                       self._owner.pid, self._owner.host, self._started, now,
                                       cycles))
        except FleetError as exc:
            log.warning("heartbeat not written", action=f"{self._component}.beat",
                        error=str(exc))
