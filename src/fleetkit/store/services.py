"""Service leases: one scheduler at a time runs each market-hours service, fleet-wide.

A scheduler takes a service's lease before starting it and renews it on every tick while
it runs; a second scheduler (same host or another) sees the lease held and leaves the
service alone. If the holder dies, its lease runs out and the next scheduler to look takes
the service over. Taking and renewing are one conditional UPDATE (or the first INSERT), so
of two schedulers racing for a free lease exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, or_, select, update

from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import insert_if_absent
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import service_leases


@dataclass(frozen=True, slots=True)
class ServiceLease:
    service: str
    owner: str
    expires_at: datetime
    pid: int | None

    def live(self, now: datetime) -> bool:
        return self.expires_at > now

    def as_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "pid": self.pid, "expires_at": self.expires_at.isoformat()}


class ServiceLeases:
    def __init__(self, engine: Engine, owner: str, actor: str = "scheduler") -> None:
        self._engine = engine
        self._owner = owner
        self._actor = actor

    def acquire(self, service: str, ttl_s: float, now: datetime, pid: int | None = None) -> bool:
        """Take or renew the lease on `service`; False while another owner's is live."""
        values = {"owner": self._owner, "expires_at": now + timedelta(seconds=ttl_s),
                  "pid": pid, "updated_at": now}
        with write_transaction(self._engine) as conn:
            taken = conn.execute(update(service_leases).where(and_(
                service_leases.c.service == service,
                or_(service_leases.c.owner == self._owner, service_leases.c.expires_at <= now),
            )).values(**values)).rowcount == 1
            if taken:
                return True
            return insert_if_absent(conn, service_leases, {"service": service, **values},
                                    ["service"])

    def release(self, service: str) -> None:
        """Give the lease up (the service was stopped on purpose): another scheduler may
        start it at once rather than after the lease runs out."""
        with write_transaction(self._engine) as conn:
            conn.execute(delete(service_leases).where(and_(
                service_leases.c.service == service, service_leases.c.owner == self._owner)))

    def record(self, kind: str, service: str, message: str, now: datetime, *,
               severity: str = "info", data: dict[str, Any] | None = None) -> None:
        """An event in the fleet's audit trail (service.started, service.stopped ...)."""
        with write_transaction(self._engine) as conn:
            insert_event(conn, bot_id=None, kind=kind, severity=severity,
                         message=f"service {service}: {message}", now=now, actor=self._actor,
                         data={"service": service, **(data or {})})

    def holders(self) -> dict[str, ServiceLease]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(service_leases)).all()
        return {row.service: ServiceLease(row.service, row.owner, row.expires_at, row.pid)
                for row in rows}
