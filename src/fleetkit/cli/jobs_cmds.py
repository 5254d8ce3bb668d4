"""`fleet scheduler run`, `fleet jobs` and `fleet services`: scheduled jobs, each period run
once fleet-wide, and market-hours services, run by one scheduler while their market is open."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.runtime.scheduler_service import JobView

# Command bodies import what they need: bot processes load this module too.

scheduler_app = typer.Typer(help="The job scheduler.", no_args_is_help=True)

# Job and service commands are checked when the config is loaded (config.commands), so
# every command here — and `fleet up` — refuses the same ones.


@scheduler_app.command("run")
def scheduler_run(config: ConfigOption = None, db: DbOption = None) -> None:
    """Run the configured jobs at their times, and market-hours services while their market
    is open, until SIGINT/SIGTERM. Safe to run twice: the database lets each job period run
    once (periods missed while down are caught up) and one scheduler run each service."""
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.calendar_watch import market_calendars
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.scheduler_service import ServiceOptions, run_scheduler
    from fleetkit.runtime.signals import stop_signals
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    loaded = load_config(config)
    if not loaded.config.scheduled_work:
        fail(f"{loaded.source}: no enabled jobs or services — add some under `jobs:` or "
             "`services:` (see the README, Scheduled jobs)")
    configure_logging()
    db_url = database_url(loaded, db)
    database = open_database(db_url, application_name="fleet-scheduler")
    runtime = loaded.config.runtime
    stop = threading.Event()
    try:
        with stop_signals(stop):
            run_scheduler(loaded, database, db_url, stop, ServiceOptions(
                heartbeat_interval_s=runtime.heartbeat_interval_s,
                stop_timeout_s=runtime.stop_timeout_s,
                sessions=market_calendars(loaded)))  # with the config's holiday overrides
    finally:
        database.dispose()


@scheduler_app.command("tick")
def scheduler_tick(names: Annotated[list[str], typer.Argument(
                       help="jobs to tick (names from the config)", show_default=False)],
                   config: ConfigOption = None, db: DbOption = None) -> None:
    """Run what is due now for these jobs, exactly as the scheduler would, and wait for it:
    each period is claimed in the database first, so it never runs twice, whoever else
    ticks. What systemd timers run (`fleet deploy systemd`). Exit 1 if a run failed."""
    from datetime import UTC, datetime, timedelta

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.calendar_watch import market_calendars
    from fleetkit.runtime.clock import WallClock
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.scheduler import GRACE_S, Scheduler
    from fleetkit.runtime.scheduler_service import default_runner
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.jobs import JobStore, RunStatus

    loaded = load_config(config)
    chosen = []
    for name in names:
        try:
            job = loaded.config.job(name)
        except KeyError:
            known = ", ".join(j.name for j in loaded.config.jobs) or "none configured"
            fail(f"no job named {name!r} in {loaded.source} (jobs: {known})")
        if not job.enabled:
            fail(f"job {name} is disabled (enabled: false): enable it to tick it")
        chosen.append(job)
    configure_logging()
    db_url = database_url(loaded, db)
    database = open_database(db_url, must_exist=True, application_name="fleet-scheduler-tick")
    stop = threading.Event()
    try:
        now = datetime.now(UTC)
        store = JobStore(database.engine, "scheduler tick")
        scheduler = Scheduler(chosen, store, default_runner(loaded, db_url, stop),
                              clock=WallClock(), sessions=market_calendars(loaded),
                              first_seen=now - timedelta(seconds=GRACE_S))
        ran = scheduler.tick(now)
        last = store.last_runs()
    finally:
        database.dispose()
    failed = [run.job for run in ran
              if (done := last.get(run.job)) is not None and done.status is RunStatus.FAILED]
    typer.echo(f"ran {len(ran)} period(s)" + (f"; failed: {', '.join(failed)}" if failed else
                                              "" if ran else " (nothing due)"))
    if failed:
        raise typer.Exit(1)


def jobs(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Scheduled jobs: schedule, last run and how it ended, next run, failures in 7 days."""
    from datetime import UTC, datetime

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.scheduler_service import job_views
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.jobs import JobStore

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), must_exist=True)
    try:
        views = job_views(loaded.config.jobs, JobStore(database.engine), datetime.now(UTC))
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps([view.as_json() for view in views], indent=2))
        return
    if not views:
        typer.echo("no jobs configured: add them under `jobs:` in the config")
        return
    _print_table(views)


def _print_table(views: Sequence[JobView]) -> None:
    from rich.console import Console
    from rich.table import Table

    from fleetkit.store.jobs import RunStatus

    table = Table(show_lines=False, caption="times in UTC; `fleet jobs --json` for details")
    for column in ("job", "schedule", "last period", "result", "next run", "fails 7d"):
        table.add_column(column, no_wrap=column in ("job", "last period", "next run"))
    for view in views:
        job, last = view.job, view.last
        result = "never run" if last is None else last.status.value
        if last is not None and last.status is not RunStatus.SUCCEEDED and last.detail.strip():
            result += f": {last.detail.strip().splitlines()[-1][:80]}"
        table.add_row(
            job.name + ("" if job.enabled else " (disabled)"), job.describe_schedule(),
            "" if last is None else f"{last.period:%m-%d %H:%M}", result,
            "" if view.next_fire is None else f"{view.next_fire:%m-%d %H:%M}",
            str(len(view.failures)))
    Console().print(table)


def services(config: ConfigOption = None, db: DbOption = None,
             as_json: JsonOption = False) -> None:
    """Market-hours services: their hours, whether they should run now, until when, and
    which scheduler runs them."""
    from datetime import UTC, datetime, timedelta

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.calendar_watch import market_calendars
    from fleetkit.runtime.market_hours import Plan, plan_for
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.fleet import FleetStore
    from fleetkit.store.services import ServiceLeases

    loaded = load_config(config)
    now = datetime.now(UTC)
    calendars = market_calendars(loaded)
    database = open_database(database_url(loaded, db), must_exist=True)
    try:
        holders = ServiceLeases(database.engine, "fleet services").holders()
        beats = {b.component: b for b in FleetStore(database.engine).heartbeats()}
    finally:
        database.dispose()
    clocks = None
    if any(s.on_venue_clock for s in loaded.config.services):
        from fleetkit.runtime.service_clocks import ServiceClocks

        clocks = ServiceClocks.for_sandbox(loaded.config.sandbox.base_url, timeout_s=2.0)
    rows = []
    for service in loaded.config.services:
        offset = timedelta(0) if clocks is None else clocks.offset(service)
        plan = (plan_for(service, calendars, now, offset) if offset is not None
                else Plan(False, None))
        lease = holders.get(service.name)
        beat = beats.get(f"service:{service.name}")
        rows.append({
            "name": service.name, "command": service.command, "market": service.market,
            "hours": service.describe_hours(), "enabled": service.enabled,
            "should_run": service.enabled and plan.run,
            "until": None if plan.until is None else plan.until.isoformat(),
            "status": "disabled" if not service.enabled else (beat.status if beat else "never"),
            "detail": beat.detail if beat else "",
            "heartbeat_age_s": None if beat is None else round(
                (now - beat.beat_at).total_seconds(), 1),
            "held_by": lease.as_json() if lease is not None and lease.live(now) else None,
        })
    if clocks is not None:
        clocks.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no services configured: add them under `services:` in the config")
        return
    _print_services(rows)


def _print_services(rows: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="market-hours services")
    for column in ("service", "hours", "now", "until (UTC)", "status", "held by"):
        table.add_column(column)
    for row in rows:
        until = str(row["until"] or "-")[:16].replace("T", " ")
        held = row["held_by"]
        holder = f"{held['owner']}" if isinstance(held, dict) else "-"
        table.add_row(str(row["name"]), str(row["hours"]),
                      "run" if row["should_run"] else "off", until, str(row["status"]), holder)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(scheduler_app, name="scheduler")
    for command in (jobs, services):
        app.command()(command)
