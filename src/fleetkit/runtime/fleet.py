"""`fleet up`: the embedded fleet in the foreground — database, broker service, one process
per bot under a supervisor — until --for runs out or SIGINT/SIGTERM arrives."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from fleetkit.config.loader import BUILTIN_DEMO, DEMO_CONFIG, LoadedConfig
from fleetkit.core.errors import ConfigError, DatabaseUnavailableError, FleetError
from fleetkit.core.instruments import Instrument
from fleetkit.engine.ports import Event
from fleetkit.runtime.calendar_watch import calendar_overrides, watch_calendar_coverage
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.ml_bootstrap import bots_needing_ml_extra, not_started_line
from fleetkit.runtime.outage import OutageThrottle
from fleetkit.runtime.supervisor import ChildSpec, Supervisor
from fleetkit.runtime.wiring import (
    bot_currency,
    database_url,
    describe_bot,
    market_data_url,
    sandbox_catalog,
    sandbox_contract_rules,
    validate_instruments,
)
from fleetkit.store.database import Database, open_database, placements, upgrade_placements
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.status import FleetView, fleet_view

log = get_logger("fleet")
BROKER = "broker"
SCHEDULER = "scheduler"  # started only when the config has enabled jobs or services
NOTIFIER = "notifier"  # started only when the config has notification routes


@dataclass(frozen=True, slots=True)
class FleetOptions:
    run_for_s: float | None = None
    db_override: str | None = None
    on_view: Callable[[FleetView], None] | None = None  # live display hook
    view_every_s: float = 2.0


def child_environment(loaded: LoadedConfig, db_url: str) -> dict[str, str]:
    """Everything a child needs to resolve exactly the config and database we did."""
    source = BUILTIN_DEMO if loaded.source == DEMO_CONFIG else loaded.source
    return {"FLEET_CONFIG": source, "FLEET_DB_URL": db_url, "FLEET_HOME": str(loaded.home),
            "FLEET_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}


def prepare_database(loaded: LoadedConfig, db_url: str) -> Database:
    """Migrate (the embedded fleet owns its schema: every branch, in every database) and
    register every configured bot."""
    layout = placements(db_url, market_data_url(loaded, db_url))
    for done in upgrade_placements(layout, home=loaded.home, application_name="fleet-up"):
        for branch in (u for u in done.branches if u.changed):
            log.info("database migrated", action="db.upgrade", database=done.where,
                     branch=branch.after.branch, before=branch.before.current,
                     after=branch.after.current)
    database = open_database(db_url, application_name="fleet-up", home=loaded.home)
    store = FleetStore(database.engine)
    now = datetime.now(UTC)
    catalog = sandbox_catalog(loaded.config)
    store.register_instruments([instrument_row(catalog[k].instrument) for k in catalog])
    for bot in loaded.config.bots:
        store.register_bot(name=bot.name, market=bot.market,
                           currency=bot_currency(bot), strategy=bot.strategy,
                           mode=bot.mode, settings=describe_bot(loaded.config, bot), now=now)
    return database


def instrument_row(inst: Instrument) -> dict[str, object]:
    return {"key": inst.key, "symbol": inst.symbol, "market": inst.market,
            "asset_class": inst.asset_class.value, "currency": inst.currency,
            "tick_size": inst.tick_size, "lot_size": inst.lot_size,
            "min_quantity": inst.min_quantity, "calendar": inst.calendar}


def child_specs(loaded: LoadedConfig, db_url: str) -> list[ChildSpec]:
    env = child_environment(loaded, db_url)
    logs = loaded.home / "logs"
    python = [sys.executable, "-m", "fleetkit"]
    specs = [ChildSpec(BROKER, [*python, "broker", "serve"], logs / "broker.log", env, "broker")]
    # A learning bot without the ml extra could only refuse to start, again and again.
    left_out, _ = bots_needing_ml_extra(loaded.config)
    specs += [ChildSpec(bot.name, [*python, "bot", "run", bot.name], logs / f"{bot.name}.log",
                        env) for bot in loaded.config.bots if bot.name not in left_out]
    if loaded.config.scheduled_work:
        specs.append(ChildSpec(SCHEDULER, [*python, "scheduler", "run"],
                               logs / "scheduler.log", env, "service"))
    if loaded.config.notify.routes:
        specs.append(ChildSpec(NOTIFIER, [*python, "notify", "run"], logs / "notifier.log",
                               env, "service"))
    return specs


def wait_for_broker(base_url: str, process_alive: Callable[[], bool], timeout_s: float = 30.0,
                    log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process_alive():
            tail = _tail(log_file) if log_file else ""
            raise FleetError(f"the sandbox broker exited during start-up{tail}")
        try:
            if httpx.get(f"{base_url}/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise FleetError(f"the sandbox broker did not answer at {base_url} within {timeout_s:.0f}s")


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigError(f"port {port} on {host} is in use (another `fleet up` or broker "
                              "running?): stop it, or set sandbox.port in the config") from None


def preflight(loaded: LoadedConfig) -> None:
    """What can be wrong in the config — bots, instruments, calendar overrides — found
    before anything is written."""
    config = loaded.config
    if not config.bots:
        raise ConfigError(f"{loaded.source}: no bots configured — add some under `bots:`")
    # A bad sandbox.derivatives_file stops the fleet before anything starts, and so does a
    # bad calendar override file.
    validate_instruments(config, sandbox_contract_rules(loaded))
    calendar_overrides(loaded)


def run_fleet(loaded: LoadedConfig, options: FleetOptions, stop: threading.Event) -> int:
    """Run until stopped; returns the process exit code. The caller has run `preflight`,
    holds the fleet home (`home_lock.hold_fleet_home`) and found the broker's port free."""
    config = loaded.config
    db_url = database_url(loaded, options.db_override)
    database = prepare_database(loaded, db_url)
    watch_calendar_coverage(loaded, database.engine, datetime.now(UTC))
    supervisor = _supervisor(loaded, db_url, database)
    started = time.monotonic()
    try:
        supervisor.start([BROKER])
        broker = supervisor.children[BROKER]
        wait_for_broker(config.sandbox.base_url,
                        lambda: broker.process is not None and broker.process.poll() is None,
                        log_file=broker.spec.log_file)
        supervisor.start([n for n in supervisor.children if n != BROKER])
        left_out, missing = bots_needing_ml_extra(config)
        if left_out:  # `fleet up` has said it on the console (see its command)
            log.warning(not_started_line(left_out, missing), action="fleet.bots_left_out",
                        bots=",".join(left_out), missing=missing)
        log.info("fleet up", action="fleet.up", bots=len(config.bots),
                 database=database.where, broker=config.sandbox.base_url)
        _record(database, Event("fleet.started", f"fleet started with {len(config.bots)} bots "
                                f"from {loaded.source}", data={"bots": len(config.bots)}))
        _watch(supervisor, database, loaded, options, stop, started)
    finally:
        supervisor.stop(config.runtime.stop_timeout_s)
        _record(database, Event("fleet.stopped", "fleet stopped"))
        database.dispose()
    return 0


class LiveView:
    """The live display's refresh. The supervisor outlives a database outage (its children
    pause, it waits), and says so when it starts, every few minutes while it lasts and when
    it ends — not at every refresh."""

    def __init__(self, show: Callable[[FleetView], None], read: Callable[[], FleetView], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._show = show
        self._read = read
        self._outage = OutageThrottle(log, "db.unavailable",
                                      problem="fleet view unavailable: database down",
                                      recovered="fleet view back: database answering again",
                                      monotonic=monotonic)

    def refresh(self) -> None:
        try:
            view = self._read()
        except DatabaseUnavailableError as exc:
            self._outage.failed(exc)
            return
        self._outage.succeeded()
        self._show(view)


def _watch(supervisor: Supervisor, database: Database, loaded: LoadedConfig,
           options: FleetOptions, stop: threading.Event, started: float) -> None:
    next_view = 0.0
    stale_after = loaded.config.runtime.stale_after_s
    live = None if options.on_view is None else LiveView(
        options.on_view, lambda: fleet_view(database.engine, datetime.now(UTC), stale_after))
    while not stop.is_set():
        now = time.monotonic()
        if options.run_for_s is not None and now - started >= options.run_for_s:
            return
        supervisor.poll()
        if live is not None and now >= next_view:
            live.refresh()
            next_view = now + options.view_every_s
        stop.wait(0.5)


def _supervisor(loaded: LoadedConfig, db_url: str, database: Database) -> Supervisor:
    runtime = loaded.config.runtime
    store = FleetStore(database.engine)

    cache: dict[str, datetime] = {}
    read_at = [0.0]
    # Heartbeats go stale while the database is down, through no fault of the bots: no hang
    # verdicts until a full hang timeout has passed with the database answering again.
    trust_from = [0.0]

    def heartbeat_age(name: str) -> float | None:
        now = time.monotonic()
        if now - read_at[0] > 1.0:  # one query per poll, not one per child
            try:
                beats = store.heartbeats()
            except DatabaseUnavailableError:
                trust_from[0] = now + runtime.hang_timeout_s
                return None
            cache.clear()
            cache.update({b.component: b.beat_at for b in beats})
            read_at[0] = now
        if now < trust_from[0]:
            return None
        component = {BROKER: "broker", SCHEDULER: "scheduler",
                     NOTIFIER: "notifier"}.get(name, f"bot:{name}")
        beat_at = cache.get(component)
        return None if beat_at is None else (datetime.now(UTC) - beat_at).total_seconds()

    def on_exit(name: str, code: int, restarts: int) -> None:
        message = f"{name} exited with code {code}; restarting (restart #{restarts + 1})"
        _record(database, Event("process.exited", message, "error", str(code),
                                {"process": name, "code": code, "restarts": restarts}))

    return Supervisor(child_specs(loaded, db_url),
                      backoff_initial_s=runtime.restart_backoff_initial_s,
                      backoff_max_s=runtime.restart_backoff_max_s,
                      hang_timeout_s=runtime.hang_timeout_s,
                      heartbeat_age=heartbeat_age, on_exit=on_exit)


def _record(database: Database, event: Event) -> None:
    try:
        SqlLedger(database.engine, "-").record_event(None, event, datetime.now(UTC))
    except FleetError as exc:
        log.warning("could not record event", action="event.lost", kind=event.kind,
                    error=str(exc))
