"""Waiting out a dead database or broker: back off with jitter, say so, resume by itself."""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from fleetkit.core.backoff import equal_jitter_delay
from fleetkit.core.durations import format_duration
from fleetkit.core.errors import (
    BadBrokerReplyError,
    DatabaseUnavailableError,
    FleetError,
    TransientBrokerError,
)
from fleetkit.engine.ports import Clock, Event
from fleetkit.runtime.logs import BoundLogger
from fleetkit.store.database import Database, ping

MAX_BACKOFF_S = 30.0
REMIND_EVERY_S = 300.0


def backoff_delays(initial_s: float = 0.5, maximum_s: float = MAX_BACKOFF_S,
                   rng: random.Random | None = None) -> Callable[[], float]:
    """Successive waits on core.backoff's curve, from the first."""
    jitter = rng or random.Random()  # noqa: S311 - jitter, not security
    attempt = 0

    def next_delay() -> float:
        nonlocal attempt
        attempt += 1
        return equal_jitter_delay(attempt - 1, initial_s, maximum_s, jitter)

    return next_delay


Sleep = Callable[[float], bool]
"""Wait this many seconds; True means "stop requested" (a threading.Event's wait)."""

Beat = Callable[[str, str], None]
"""Write a heartbeat: (status, detail)."""


OutagePhase = Literal["started", "ongoing", "over"]


class OutageThrottle:
    """Says a failure that recurs at every tick (a heartbeat write, a status refresh) once
    when it starts, as a reminder every `remind_every_s` while it lasts, and once when it
    ends with how long it lasted: an outage is a few lines in a log, not one a second.

    Callers report each attempt: `failed(error)` or `succeeded()`; both return the phase
    they announced, None when they kept quiet. `fields` go on every line (service=...)."""

    def __init__(self, log: BoundLogger, action: str, *, problem: str, recovered: str,
                 remind_every_s: float = REMIND_EVERY_S,
                 monotonic: Callable[[], float] = time.monotonic, **fields: Any) -> None:
        self._log = log
        self._action = action
        self._problem = problem
        self._recovered = recovered
        self._remind_every_s = remind_every_s
        self._now = monotonic
        self._fields = fields
        self._since: float | None = None  # when the current outage started
        self._said_at = 0.0
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: object) -> OutagePhase | None:
        now = self._now()
        self._failures += 1
        if self._since is None:
            self._since = self._said_at = now
            self._log.warning(self._problem, action=self._action, outage="started",
                              error=str(error), **self._fields)
            return "started"
        if now - self._said_at < self._remind_every_s:
            return None
        self._said_at = now
        lasted = now - self._since
        self._log.warning(f"{self._problem} (still, after {format_duration(lasted)})",
                          action=self._action, outage="ongoing", outage_s=round(lasted, 1),
                          failures=self._failures, error=str(error), **self._fields)
        return "ongoing"

    def succeeded(self) -> OutagePhase | None:
        if self._since is None:
            return None
        lasted = self._now() - self._since
        self._log.info(f"{self._recovered} after {format_duration(lasted)}",
                       action=self._action, outage="over", outage_s=round(lasted, 1),
                       failures=self._failures, **self._fields)
        self._since = None
        self._failures = 0
        return "over"


class Outage:
    """`beat` keeps the heartbeat (and with it the bot's lease) fresh while the broker is
    away, so a long broker outage reads as "paused", not as a hung process to be killed."""

    def __init__(self, log: BoundLogger, sleep: Sleep, clock: Clock,
                 record: Callable[[Event], None] | None = None,
                 beat: Beat | None = None) -> None:
        self._log = log
        self._sleep = sleep
        self._clock = clock
        self.record = record
        self._beat = beat

    def wait_for_database(self, exc: DatabaseUnavailableError, database: Database) -> None:
        """No order can be written, so none is sent; wait until the database answers."""
        started = self._clock.now()
        message = f"database unreachable, trading paused: {exc}"
        self._log.error(message, action="db.unavailable")
        print(f"fleetkit: {message}", file=sys.stderr, flush=True)
        # A write, not a read: readers get through a SQLite file another process has locked.
        if not self._wait(lambda: ping(database, write=True), DatabaseUnavailableError):
            return  # asked to stop: nothing recovered, nothing to announce
        downtime = (self._clock.now() - started).total_seconds()
        self._log.warning("database back, resuming", action="db.recovered", downtime_s=downtime)
        self._emit(Event("db.recovered", f"database was unreachable for {downtime:.0f}s "
                         f"({exc}); trading resumed after reconciliation", "warning"))

    def wait_for_broker(self, exc: FleetError, probe: Callable[[], None]) -> None:
        """Pause until the broker answers a probe. A broker that answered nonsense (a bad
        reply: never applied) is said to be so, not "unreachable": it was reachable."""
        started = self._clock.now()
        what = ("broker answered what we will not use" if isinstance(exc, BadBrokerReplyError)
                else "broker unreachable")
        self._log.error(f"{what}, trading paused: {exc}", action="broker.unavailable")
        self._emit(Event("broker.unavailable", f"{what}: {exc}", "error"))
        since = f"{started:%H:%M:%S} UTC"
        if not self._wait(probe, TransientBrokerError, BadBrokerReplyError,
                          on_retry=lambda: self._heartbeat(f"{what} since {since}; "
                                                           "retrying with backoff")):
            return
        downtime = (self._clock.now() - started).total_seconds()
        self._log.warning("broker back, reconciling", action="broker.recovered",
                          downtime_s=downtime)
        self._emit(Event("broker.recovered", f"broker paused trading for {downtime:.0f}s "
                         f"({what}); reconciled and resumed", "warning"))

    def _wait(self, probe: Callable[[], None], *retry_on: type[BaseException],
              on_retry: Callable[[], None] = lambda: None) -> bool:
        """Probe after each backoff pause until it passes (True) or a stop is asked (False)."""
        delays = backoff_delays()
        while True:
            on_retry()
            if self._sleep(delays()):
                return False
            try:
                probe()
                return True
            except retry_on:
                continue

    def _heartbeat(self, detail: str) -> None:
        if self._beat is None:
            return
        with contextlib.suppress(DatabaseUnavailableError):  # noticed once the broker is back
            self._beat("paused", detail)

    def _emit(self, event: Event) -> None:
        if self.record is None:
            return
        try:
            self.record(event)
        except DatabaseUnavailableError:
            self._log.warning("could not record event: database unavailable",
                              action="event.lost_db", kind=event.kind)
