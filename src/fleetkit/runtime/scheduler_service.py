"""`fleet scheduler run` and `fleet jobs`: the scheduler as a process (APScheduler wakes it,
threads run the jobs, the heartbeat says it is alive) and the jobs as an operator sees them."""

from __future__ import annotations

import logging
import shlex
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import JobSettings, ServiceSettings
from fleetkit.core.errors import FleetError
from fleetkit.engine.ports import Clock, SessionSource
from fleetkit.runtime.clock import WallClock
from fleetkit.runtime.heartbeat import ComponentHeartbeat
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.market_hours import MarketHoursServices, SpecFor, wall_clock
from fleetkit.runtime.schedule import CronSchedule, schedule_for
from fleetkit.runtime.scheduler import (
    JOB_KINDS,
    CallableRunner,
    JobRunner,
    Scheduler,
    SubprocessRunner,
)
from fleetkit.runtime.supervisor import ChildSpec
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.jobs import JobRun, JobStore, RunOwner
from fleetkit.store.services import ServiceLeases

log = get_logger("scheduler")
COMPONENT = "scheduler"
FAILURES_SINCE = timedelta(days=7)  # what `fleet jobs` counts as recent


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    heartbeat_interval_s: float = 10.0
    stop_timeout_s: float = 8.0
    runner: JobRunner | None = None  # default: registered kinds, else `python -m fleetkit`
    clock: Clock | None = None
    sessions: SessionSource | None = None
    on_tick: Callable[[Scheduler], None] | None = None  # tests: observe or stop the loop
    service_spec: SpecFor | None = None  # tests: what a market-hours service runs


def default_runner(loaded: LoadedConfig, db_url: str, stop: threading.Event) -> JobRunner:
    from fleetkit.runtime.fleet import child_environment

    return CallableRunner(JOB_KINDS, SubprocessRunner(child_environment(loaded, db_url), stop))


def run_scheduler(loaded: LoadedConfig, database: Database, db_url: str,
                  stop: threading.Event, options: ServiceOptions) -> None:
    """Run the configured jobs until `stop` is set; jobs run as subprocesses get `db_url`."""
    from apscheduler.schedulers.background import BackgroundScheduler

    clock = options.clock or WallClock()
    sessions = options.sessions or _calendars(loaded.config.jobs, loaded.config.services)
    owner = RunOwner.this_process()
    wake = threading.Event()
    threads = _RunThreads()
    runner = options.runner or default_runner(loaded, db_url, stop)
    scheduler = Scheduler(loaded.config.jobs, JobStore(database.engine, f"scheduler@{owner}"),
                          runner, clock=clock, owner=owner, sessions=sessions,
                          dispatch=threads.start, on_done=wake.set)
    heartbeat = ComponentHeartbeat(FleetStore(database.engine), COMPONENT, COMPONENT, owner,
                                   clock.now())
    services = _market_hours(loaded, database, db_url, sessions, owner, options)
    # APScheduler only wakes the loop; its own bookkeeping lines would drown ours.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    timer = BackgroundScheduler(timezone=UTC)
    for job in scheduler.jobs:
        schedule = scheduler.schedules[job.name]
        if isinstance(schedule, CronSchedule):  # market jobs are timed by the loop's wait
            timer.add_job(wake.set, trigger=schedule.trigger, id=job.name, name=job.name,
                          coalesce=True, max_instances=1, misfire_grace_time=None)
    timer.start()
    log.info("scheduler started", action="scheduler.start", jobs=len(scheduler.jobs),
             services=len(services.services) if services else 0, database=database.where)
    try:
        _loop(scheduler, services, heartbeat, clock, wake, stop, options)
    finally:
        timer.shutdown(wait=False)
        stop.set()  # interrupts running subprocess jobs; they are recorded as failed
        if services is not None:
            services.stop_all(clock.now())
        threads.join(options.stop_timeout_s)
        heartbeat.beat("stopped", "stopped cleanly", scheduler.ticks, clock.now())
        log.info("scheduler stopped", action="scheduler.stop")


def _loop(scheduler: Scheduler, services: MarketHoursServices | None, heartbeat: ComponentHeartbeat,
          clock: Clock, wake: threading.Event, stop: threading.Event,
          options: ServiceOptions) -> None:
    while not stop.is_set():
        wake.clear()
        now = clock.now()
        try:
            scheduler.tick(now)
        except FleetError as exc:  # database down: nothing can be claimed, try again later
            log.warning("tick failed", action="scheduler.tick", error=str(exc))
        if services is not None:
            services.tick(now)
        upcoming = _next_fires(scheduler, now)
        heartbeat.beat("running", _describe(scheduler, services, upcoming), scheduler.ticks,
                       clock.now())
        if options.on_tick is not None:
            options.on_tick(scheduler)
        wait_s = options.heartbeat_interval_s
        changes = [at for _, at in upcoming[:1]]
        if services is not None and (change := services.next_change()) is not None:
            changes.append(change)
        if changes:
            wait_s = min(wait_s, max(0.0, (min(changes) - clock.now()).total_seconds()))
        _wait(wake, stop, wait_s)


def _wait(wake: threading.Event, stop: threading.Event, seconds: float) -> None:
    """Until a fire time (APScheduler sets `wake`), a finished run, `stop`, or `seconds`."""
    remaining = seconds
    while remaining > 0 and not stop.is_set() and not wake.is_set():
        step = min(remaining, 0.25)
        wake.wait(step)
        remaining -= step


def _next_fires(scheduler: Scheduler, now: datetime) -> list[tuple[str, datetime]]:
    found = [(job.name, scheduler.next_fire(job, now)) for job in scheduler.jobs]
    return sorted(((name, at) for name, at in found if at is not None), key=lambda f: f[1])


def _describe(scheduler: Scheduler, services: MarketHoursServices | None,
              upcoming: list[tuple[str, datetime]]) -> str:
    parts = [f"{len(scheduler.jobs)} jobs"]
    if services is not None:
        parts.append(f"{len(services.running())}/{len(services.services)} services running")
    busy = scheduler.busy()
    if busy:
        parts.append("running " + ", ".join(busy))
    if upcoming:
        name, at = upcoming[0]
        parts.append(f"next {name} at {at:%Y-%m-%d %H:%M} UTC")
    return "; ".join(parts)


class _RunThreads:
    """One thread per run, so a long job delays neither the others nor the heartbeat."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def start(self, work: Callable[[], None]) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=work, name="fleet-job", daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self, timeout_s: float) -> None:
        deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
        for thread in self._threads:
            thread.join(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))


def _market_hours(loaded: LoadedConfig, database: Database, db_url: str,
                  sessions: SessionSource | None, owner: RunOwner,
                  options: ServiceOptions) -> MarketHoursServices | None:
    enabled = [s for s in loaded.config.services if s.enabled]
    if not enabled or sessions is None:
        return None
    spec_for = options.service_spec or _service_spec(loaded, db_url)
    offset_for = wall_clock
    if any(s.on_venue_clock for s in enabled):
        from fleetkit.runtime.service_clocks import ServiceClocks

        offset_for = ServiceClocks.for_sandbox(loaded.config.sandbox.base_url).offset
    return MarketHoursServices(enabled, sessions, ServiceLeases(database.engine, str(owner)),
                               FleetStore(database.engine), spec_for, host=owner.host,
                               offset_for=offset_for)


def _service_spec(loaded: LoadedConfig, db_url: str) -> SpecFor:
    from fleetkit.runtime.fleet import child_environment

    env = child_environment(loaded, db_url)
    logs = loaded.home / "logs" / "services"

    def spec(service: ServiceSettings) -> ChildSpec:
        argv = [sys.executable, "-m", "fleetkit", *shlex.split(service.command)]
        return ChildSpec(service.name, argv, logs / f"{service.name}.log",
                         {**env, "FLEET_SERVICE": service.name}, "service",
                         die_with_parent=True)

    return spec


def _calendars(jobs: Sequence[JobSettings],
               services: Sequence[ServiceSettings] = ()) -> SessionSource | None:
    if not any(job.when is not None for job in jobs) and not any(s.enabled for s in services):
        return None
    from fleetkit.calendars.market_calendars import MarketCalendars
    from fleetkit.calendars.overrides import load_overrides

    # The shipped holiday overrides (NSE beyond the library's data) at least; the
    # scheduler process passes the config's own file in through `options.sessions`.
    return MarketCalendars(load_overrides(None).for_market_calendars())


# --- `fleet jobs` -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class JobView:
    job: JobSettings
    last: JobRun | None
    next_fire: datetime | None
    failures: tuple[JobRun, ...]

    def as_json(self) -> dict[str, Any]:
        job = self.job
        return {
            "name": job.name, "command": job.command, "enabled": job.enabled,
            "cron": job.cron, "timezone": job.zone_name if job.cron else None,
            "when": None if job.when is None else job.when.model_dump(),
            "catch_up": job.catch_up, "max_catch_up": job.max_catch_up,
            "timeout_s": job.timeout_s,
            "last_run": None if self.last is None else self.last.as_json(),
            "next_run": None if self.next_fire is None else self.next_fire.isoformat(),
            "recent_failures": [run.as_json() for run in self.failures],
        }


def job_views(jobs: Sequence[JobSettings], store: JobStore, now: datetime,
              sessions: SessionSource | None = None) -> list[JobView]:
    """Every configured job with its newest run, next fire time and last week's failures."""
    last = store.last_runs()
    failures = store.failures(now - FAILURES_SINCE)
    sessions = sessions or _calendars(jobs)
    views = []
    for job in jobs:
        upcoming = schedule_for(job, sessions).next_after(now) if job.enabled else None
        views.append(JobView(job, last.get(job.name), upcoming,
                             tuple(run for run in failures if run.job == job.name)))
    return views

