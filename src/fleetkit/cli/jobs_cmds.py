"""`fleet scheduler run` and `fleet jobs`: scheduled jobs, each period run once fleet-wide."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from fleetkit.cli.app import app, fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.config.models import JobSettings
    from fleetkit.runtime.scheduler_service import JobView

# Command bodies import what they need: bot processes load this module too.

scheduler_app = typer.Typer(help="The job scheduler.", no_args_is_help=True)
app.add_typer(scheduler_app, name="scheduler")

# Commands a job must not run: they never return (or would start a scheduler in a scheduler).
_NOT_AS_JOBS = ("up", "scheduler")


@scheduler_app.command("run")
def scheduler_run(config: ConfigOption = None, db: DbOption = None) -> None:
    """Run the configured jobs at their times until SIGINT/SIGTERM. Safe to run twice: the
    database lets each period run once, and periods missed while down are caught up."""
    import threading

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.scheduler_service import ServiceOptions, run_scheduler
    from fleetkit.runtime.signals import stop_signals
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    loaded = load_config(config)
    jobs = [job for job in loaded.config.jobs if job.enabled]
    if not jobs:
        fail(f"{loaded.source}: no enabled jobs — add some under `jobs:` (see the README, "
             "Scheduled jobs)")
    check_job_commands(jobs)
    configure_logging()
    db_url = database_url(loaded, db)
    database = open_database(db_url, application_name="fleet-scheduler")
    runtime = loaded.config.runtime
    stop = threading.Event()
    try:
        with stop_signals(stop):
            run_scheduler(loaded, database, db_url, stop, ServiceOptions(
                heartbeat_interval_s=runtime.heartbeat_interval_s,
                stop_timeout_s=runtime.stop_timeout_s))
    finally:
        database.dispose()


@app.command()
def jobs(config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Scheduled jobs: schedule, last run and how it ended, next run, failures in 7 days."""
    from datetime import UTC, datetime

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.scheduler_service import job_views
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.jobs import JobStore

    loaded = load_config(config)
    check_job_commands(loaded.config.jobs)
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


def check_job_commands(jobs: Sequence[JobSettings]) -> None:
    """Each job's first word must be a fleet command or a registered job kind."""
    import shlex

    from fleetkit.runtime.scheduler import JOB_KINDS

    commands = _fleet_commands()
    for job in jobs:
        word = shlex.split(job.command)[0]
        if word in JOB_KINDS:
            continue
        if word in _NOT_AS_JOBS:
            fail(f"job {job.name}: `fleet {word}` runs until stopped and cannot be a job — "
                 "schedule a command that finishes, e.g. \"reconcile --all\"")
        if word not in commands:
            known = ", ".join(sorted(c for c in commands if c not in _NOT_AS_JOBS))
            fail(f"job {job.name}: {word!r} is not a fleet command or a registered job kind "
                 f"(commands: {known})")


def _fleet_commands() -> set[str]:
    names = {info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
             for info in app.registered_commands}
    names |= {info.name or "" for info in app.registered_groups}
    return names - {""}


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
