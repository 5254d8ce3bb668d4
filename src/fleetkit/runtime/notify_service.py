"""`fleet notify run`: the notifier process — outbox delivery, reports, monitors, commands.

One notifier drains the outbox at a time, fleet-wide: it holds the `notifier` lease in
service_leases and renews it every pass; a second one (another host, a restarted unit
before the old lease ran out) waits in standby and takes over when the lease expires.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from fleetkit.config.loader import LoadedConfig
from fleetkit.core.errors import DatabaseUnavailableError, FleetError
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.notifier import COMPONENT, Notifier, PeriodicTask, RouteLink, open_routes
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.jobs import RunOwner
from fleetkit.store.outbox import Outbox
from fleetkit.store.services import ServiceLeases

log = get_logger("notifier")

LEASE = "notifier"
LEASE_TTL_S = 30.0
STANDBY_POLL_S = 5.0


def notifier_for(loaded: LoadedConfig, database: Database,
                 links: dict[str, RouteLink] | None = None,
                 tasks: Sequence[PeriodicTask] | None = None) -> Notifier:
    """The notifier the config describes, with its reports and monitors as tasks."""
    from fleetkit.runtime.notify_tasks import default_tasks

    settings = loaded.config.notify
    if links is None:
        base = loaded.source_path.parent if loaded.source_path is not None else None
        links = open_routes(settings, base)
    outbox = Outbox(database.engine)
    chosen = default_tasks(loaded, database, outbox) if tasks is None else tasks
    return Notifier(outbox, settings, links, loaded.config.fleet.name, tasks=chosen)


def run_notifier(loaded: LoadedConfig, database: Database, stop: threading.Event,
                 notifier: Notifier | None = None,
                 extra_threads: Sequence[Callable[[threading.Event], None]] = ()) -> None:
    """Run until `stop`: deliver while holding the lease, stand by otherwise."""
    notifier = notifier or notifier_for(loaded, database)
    owner = RunOwner.this_process()
    leases = ServiceLeases(database.engine, str(owner), actor="notifier")
    store = FleetStore(database.engine)
    started = datetime.now(UTC)
    threads = [threading.Thread(target=work, args=(stop,), name=f"notifier-{i}", daemon=True)
               for i, work in enumerate(extra_threads)]
    for thread in threads:
        thread.start()

    def beat(status: str, detail: str, cycles: int) -> None:
        try:
            store.beat(Heartbeat(COMPONENT, "service", None, status, detail, owner.pid,
                                 owner.host, started, datetime.now(UTC), cycles))
        except FleetError as exc:
            log.warning("heartbeat not written", action="notifier.beat", error=str(exc))

    try:
        notifier.start()
        while not stop.is_set():
            if not _hold_lease(leases):
                beat("standby", "another notifier holds the lease", notifier.passes)
                stop.wait(STANDBY_POLL_S)
                continue
            stats = notifier.pass_safely()
            beat("running", f"{stats.sent} sent, {stats.retried} retried, {stats.dead} dead "
                 "this pass", notifier.passes)
            busy = stats.sent or stats.routed
            stop.wait(0.05 if busy else loaded.config.notify.poll_interval_s)
    finally:
        beat("stopped", "stopped cleanly", notifier.passes)
        with contextlib.suppress(FleetError):  # unreleased, it runs out by itself
            leases.release(LEASE)
        notifier.close()
        for thread in threads:
            thread.join(timeout=5.0)


def _hold_lease(leases: ServiceLeases) -> bool:
    try:
        return leases.acquire(LEASE, LEASE_TTL_S, datetime.now(UTC))
    except DatabaseUnavailableError:
        return True  # the pass will notice the outage and tell the routes directly
