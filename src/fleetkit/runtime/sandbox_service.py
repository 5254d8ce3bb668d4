"""Wiring the sandbox venue: prices + calendars + book -> venue -> HTTP service."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.faults import FaultConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.sqlbook import SqlBook
from fleetkit.brokers.sandbox.stream import StreamConfig
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import FleetConfig
from fleetkit.core.errors import ConfigError, FleetError
from fleetkit.engine.ports import Clock
from fleetkit.runtime.calendar_watch import market_calendars
from fleetkit.runtime.clock import WallClock
from fleetkit.runtime.home_lock import prepare_home
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.outage import OutageThrottle
from fleetkit.runtime.wiring import (
    database_url,
    sandbox_catalog,
    sandbox_contract_rules,
    sandbox_database_url,
)
from fleetkit.store.database import Database, open_database
from fleetkit.store.fleet import FleetStore, Heartbeat

log = get_logger("sandbox")


def venue_config(config: FleetConfig) -> VenueConfig:
    s = config.sandbox
    try:
        return VenueConfig(seed=s.seed, fee_bps=s.fee_bps, slippage_bps=s.slippage_bps,
                           latency_ms=s.latency_ms,
                           partial_fill_probability=s.partial_fill_probability,
                           time_mode=s.time_mode)
    except ValueError as exc:
        raise ConfigError(f"sandbox: {exc}") from None


def fault_config(config: FleetConfig) -> FaultConfig:
    """`sandbox.faults` as the service's FaultConfig (all off unless the config says so)."""
    try:
        return FaultConfig.from_mapping(config.sandbox.faults.model_dump())
    except ValueError as exc:
        raise ConfigError(f"sandbox.faults: {exc}") from None


def build_venue(loaded: LoadedConfig, clock: Clock | None = None,
                book_url: str | None = None) -> SandboxVenue:
    config = loaded.config
    calendars = market_calendars(loaded)  # holidays from the override files too
    prices = InventedPrices(config.sandbox.seed, sandbox_catalog(config), calendars)
    rules = sandbox_contract_rules(loaded)  # before the book: a bad file touches nothing
    book = SqlBook(book_url or sandbox_database_url(loaded))
    return SandboxVenue(prices, book, clock or WallClock(), venue_config(config),
                        sessions=calendars, contract_rules=rules)


def serve_sandbox(loaded: LoadedConfig, stop: threading.Event, *, host: str | None = None,
                  port: int | None = None, fleet_db: str | None = None) -> None:
    settings = loaded.config.sandbox
    host = host or settings.host
    _warn_if_exposed(host)
    faults = fault_config(loaded.config)
    if settings.database_url is None:
        prepare_home(loaded.home)  # the book lives there: a file or read-only home is one line
    venue = build_venue(loaded)
    # The fleet database for heartbeats: --db, FLEET_DB_URL, or the config's own database
    # (with its password file) — not a default SQLite file nobody else reads.
    url = fleet_db or os.environ.get("FLEET_DB_URL") or (
        database_url(loaded) if loaded.config.database.url else None)
    heartbeat = BrokerHeartbeat.open(url)
    # The fleet's broker streams quotes (GET /v1/stream says where) for trackers to follow.
    service = SandboxService(venue, host, port if port is not None else settings.port,
                             faults=faults, stream=StreamConfig(
                                 port=settings.stream.port,
                                 tick_interval_s=settings.stream.tick_interval_s))
    try:
        service.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port or settings.port}: {exc.strerror} — "
                          "is another broker running? set sandbox.port or --port") from None
    log.info("sandbox broker serving", action="broker.serve", url=service.url,
             time_mode=settings.time_mode, seed=settings.seed)
    if faults.active:
        log.warning("sandbox fault injection is on", action="broker.faults",
                    **{k: v for k, v in faults.to_dict().items() if v and k != "garbage_kinds"})
    try:
        while not stop.is_set():
            heartbeat.beat("serving", service.url)
            stop.wait(loaded.config.runtime.heartbeat_interval_s)
    finally:
        service.stop()
        heartbeat.beat("stopped", "stopped cleanly")
        heartbeat.close()
        log.info("sandbox broker stopped", action="broker.stop")


def _warn_if_exposed(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if not loopback:
        log.warning("the sandbox has no authentication and listens beyond loopback; "
                    "keep it on a private network", action="broker.exposed", host=host)


class BrokerHeartbeat:
    """The broker's heartbeat in the fleet database, when there is one to write to. It beats
    every second or so; a database outage is said when it starts, every few minutes while it
    lasts and when it ends, not at every beat."""

    def __init__(self, database: Database | None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._database = database
        self._started = datetime.now(UTC)
        self._outage = OutageThrottle(log, "broker.beat", problem="heartbeat not written",
                                      recovered="heartbeat written again", monotonic=monotonic)

    @classmethod
    def open(cls, url: str | None) -> BrokerHeartbeat:
        if not url:
            return cls(None)
        try:
            return cls(open_database(url, application_name="fleet-broker"))
        except FleetError as exc:
            log.warning("no heartbeats: fleet database unavailable", action="broker.beat",
                        error=str(exc))
            return cls(None)

    def beat(self, status: str, detail: str) -> None:
        if self._database is None:
            return
        try:
            FleetStore(self._database.engine).beat(Heartbeat(
                "broker", "broker", None, status, detail, os.getpid(), socket.gethostname(),
                self._started, datetime.now(UTC), 0))
        except FleetError as exc:
            self._outage.failed(exc)
            return
        self._outage.succeeded()

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()
