"""`fleet notify run`: the notifier process — outbox delivery, reports, monitors, commands.

One notifier drains the outbox at a time, fleet-wide: it holds the `notifier` lease in
service_leases and renews it every 10 s; a second one (another host, a restarted unit
before the old lease ran out) waits in standby and takes over when the lease expires.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from fleetkit.config.loader import LoadedConfig
from fleetkit.core.errors import DatabaseUnavailableError, FleetError
from fleetkit.runtime.heartbeat import ComponentHeartbeat
from fleetkit.runtime.notifier import COMPONENT, Notifier, open_routes
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.jobs import RunOwner
from fleetkit.store.outbox import Outbox
from fleetkit.store.services import ServiceLeases

LEASE = "notifier"
LEASE_TTL_S = 30.0
RENEW_EVERY_S = 10.0  # a third of the lease: two renewals may fail before it runs out
STANDBY_POLL_S = 5.0


def notifier_for(loaded: LoadedConfig, database: Database) -> Notifier:
    """The notifier the config describes, with its reports and monitors as tasks."""
    from fleetkit.runtime.notify_tasks import default_tasks

    outbox = Outbox(database.engine)
    return Notifier(outbox, loaded.config.notify,
                    open_routes(loaded.config.notify, loaded.config_dir),
                    loaded.config.fleet.name, tasks=default_tasks(loaded, database, outbox),
                    attachment_dir=loaded.home)


def run_notifier(loaded: LoadedConfig, database: Database, stop: threading.Event,
                 extra_threads: Sequence[Callable[[threading.Event], None]] = ()) -> None:
    """Run until `stop`: deliver while holding the lease, stand by otherwise."""
    notifier = notifier_for(loaded, database)
    owner = RunOwner.this_process()
    leases = ServiceLeases(database.engine, str(owner), actor="notifier")
    heartbeat = ComponentHeartbeat(FleetStore(database.engine), COMPONENT, "service", owner,
                                   datetime.now(UTC))
    threads = [threading.Thread(target=work, args=(stop,), name=f"notifier-{i}", daemon=True)
               for i, work in enumerate(extra_threads)]
    for thread in threads:
        thread.start()
    # The lease and the heartbeat are written every RENEW_EVERY_S, not on every pass (one a
    # second): two writes a second would only contend with the bots for the database.
    renewed_at: float | None = None
    holding = False
    try:
        notifier.start()
        while not stop.is_set():
            if renewed_at is None or time.monotonic() - renewed_at >= RENEW_EVERY_S:
                holding, renewed_at = _hold_lease(leases), time.monotonic()
                status, detail = ("running", f"{notifier.passes} passes") if holding else \
                    ("standby", "another notifier holds the lease")
                heartbeat.beat(status, detail, notifier.passes, datetime.now(UTC))
            if not holding:
                stop.wait(STANDBY_POLL_S)
                continue
            stats = notifier.pass_safely()
            busy = stats.sent or stats.routed
            stop.wait(0.05 if busy else loaded.config.notify.poll_interval_s)
    finally:
        heartbeat.beat("stopped", "stopped cleanly", notifier.passes, datetime.now(UTC))
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
