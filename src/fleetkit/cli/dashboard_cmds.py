"""`fleet dashboard [--host] [--port]`, `fleet dashboard passwd NAME`, `fleet dashboard
chart [--day]`: the Streamlit dashboard, its users, and the end-of-day P&L chart."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption

dashboard_app = typer.Typer(help="The Streamlit dashboard: the whole fleet at a glance.",
                            invoke_without_command=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dashboard_app, name="dashboard")


APP_SCRIPT = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


@dashboard_app.callback()
def serve(ctx: typer.Context, config: ConfigOption = None, db: DbOption = None,
          host: Annotated[str | None, typer.Option(
              help="address to bind (default dashboard.host, 127.0.0.1); anything but "
                   "loopback needs dashboard.auth")] = None,
          port: Annotated[int | None, typer.Option(
              min=1, max=65535, help="port (default dashboard.port, 8501)")] = None) -> None:
    """Serve the dashboard until Ctrl-C: overview, P&L, positions, orders and trades, risk,
    health, and (logged in) controls. Reads the database only, except for the controls."""
    if ctx.invoked_subcommand is not None:
        return
    from fleetkit.config.loader import load_config
    from fleetkit.dashboard.auth import load_users, require_safe_bind
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    loaded = load_config(config)
    settings = loaded.config.dashboard
    bind = host or settings.host
    require_safe_bind(bind, settings.auth)
    load_users(settings.auth, loaded.config_dir)  # a missing secret fails here, not in a page
    secrets_args: list[str] = []
    if settings.auth.oidc:
        from fleetkit.dashboard.oidc import check_oidc_setup

        setup = check_oidc_setup(settings.auth, loaded.config_dir, cwd=Path.cwd(),
                                 home=Path.home())
        if setup.secrets_file is not None:
            secrets_args = ["--secrets.files", str(setup.secrets_file.resolve())]
    open_database(database_url(loaded, db), must_exist=True).dispose()  # fail fast, clearly
    env = dict(os.environ)
    if loaded.source_path is not None:
        env["FLEET_CONFIG"] = str(loaded.source_path.resolve())
    env["FLEET_HOME"] = str(loaded.home)
    if db:
        env["FLEET_DASHBOARD_DB_URL"] = db
    args = [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
            "--server.address", bind, "--server.port", str(port or settings.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
            "--server.runOnSave", "false", "--theme.base", "light", *secrets_args]
    typer.echo(f"dashboard on http://{bind}:{port or settings.port} (Ctrl-C stops it)")
    sys.stdout.flush()
    os.execve(sys.executable, args, env)  # noqa: S606 (our own interpreter, fixed args)


@dashboard_app.command()
def passwd(name: Annotated[str, typer.Argument(help="the user's name (shown in the audit)")],
           password_stdin: Annotated[bool, typer.Option(
               "--password-stdin", help="read the password from standard input")] = False
           ) -> None:
    """Print a `NAME:hash` line for dashboard.auth's users file (or environment variable).
    The password is asked twice (or read from stdin) and never stored."""
    from fleetkit.dashboard.auth import hash_password

    if not name.strip() or ":" in name or any(c.isspace() for c in name):
        fail("the user name must be one word without ':'")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    typer.echo(f"{name}:{hash_password(password)}")


@dashboard_app.command()
def chart(config: ConfigOption = None, db: DbOption = None,
          day: Annotated[str | None, typer.Option(
              help="the UTC day, YYYY-MM-DD (default: yesterday, the last whole day)")] = None,
          send: Annotated[bool, typer.Option(
              help="put the fleet's chart in the outbox for the trading concern when "
                   "notify.routes exist")] = True) -> None:
    """Draw the end-of-day P&L charts (fleet and per bot, PNG) under the data directory.
    Schedule it as a job, e.g. command "dashboard chart", cron "10 0 * * *"."""
    from fleetkit.config.loader import load_config
    from fleetkit.dashboard.eod import enqueue_fleet_chart, write_day_charts
    from fleetkit.dashboard.queries import DashboardQueries
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.fleet import FleetStore
    from fleetkit.store.outbox import Outbox

    chosen = _day(day)
    loaded = load_config(config)
    database = open_database(database_url(loaded, db), must_exist=True)
    try:
        queries = DashboardQueries(database.engine, loaded.config.runtime.stale_after_s)
        currencies = {b.name: b.currency for b in FleetStore(database.engine).bots()}
        charts = write_day_charts(queries, chosen, loaded.home, currencies)
        queued = False
        if send and loaded.config.notify.routes and charts.fleet is not None:
            queued = enqueue_fleet_chart(Outbox(database.engine), charts, datetime.now(UTC))
    finally:
        database.dispose()
    if charts.fleet is None:
        typer.echo(f"no P&L was recorded on {chosen.isoformat()}: no chart drawn")
        return
    typer.echo(f"{len(charts.bots) + 1} charts in {charts.folder}")
    typer.echo(charts.summary())
    if queued:
        typer.echo("the fleet's chart is queued for the trading concern")


def _day(text: str | None) -> date:
    if text is None:
        return datetime.now(UTC).date() - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--day {text!r}: give a date as YYYY-MM-DD")
