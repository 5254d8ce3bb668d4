"""`fleet notify ...` and `fleet monitor run`: alerts by concern, their delivery, and checks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from pathlib import Path

    from fleetkit.config.loader import LoadedConfig
    from fleetkit.store.database import Database

notify_app = typer.Typer(help="Alerts and reports by concern: Telegram, webhooks.",
                         no_args_is_help=True)
monitor_app = typer.Typer(help="Server, heartbeat and security checks.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
    app.add_typer(monitor_app, name="monitor")


RouteOption = Annotated[str | None, typer.Option("--route", help="only this route")]


def _open(config: Path | None, db: str | None) -> tuple[LoadedConfig, Database]:
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    loaded = load_config(config)
    return loaded, open_database(database_url(loaded, db), must_exist=True)


@notify_app.command("run")
def notify_run(config: ConfigOption = None, db: DbOption = None) -> None:
    """Deliver notifications until SIGINT/SIGTERM: route the outbox by concern, send within
    rate limits, retry with backoff, dead-letter; send the reports, run the monitors, and
    answer Telegram commands from allowlisted chats. One notifier delivers at a time (a
    lease); a second waits in standby."""
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.notify_service import run_notifier
    from fleetkit.runtime.notify_tasks import command_listener
    from fleetkit.runtime.signals import stop_signals

    loaded, database = _open(config, db)
    if not loaded.config.notify.routes:
        typer.echo("fleetkit: no routes under notify.routes: notifications stay in the outbox "
                   "(monitors and reports still run)", err=True)
    configure_logging()
    stop = threading.Event()
    listener = command_listener(loaded, database)
    try:
        with stop_signals(stop):
            run_notifier(loaded, database, stop,
                         extra_threads=[listener] if listener is not None else [])
    finally:
        database.dispose()


@notify_app.command("test")
def notify_test(concern: Annotated[str | None, typer.Option(
                    "--concern", help="only routes taking this concern: trading, "
                    "infrastructure, data, brief")] = None,
                route: RouteOption = None, config: ConfigOption = None) -> None:
    """Send a test message through each configured route now (not via the outbox) and say
    what each provider answered. Exit 1 if any route failed."""
    from fleetkit.config.loader import load_config
    from fleetkit.core.alerts import Concern
    from fleetkit.runtime.notifier import open_routes

    loaded = load_config(config)
    settings = loaded.config.notify
    if concern is not None and concern not in {c.value for c in Concern}:
        fail(f"unknown concern {concern!r}: use one of {', '.join(c.value for c in Concern)}")
    chosen = [r for r in settings.routes if r.enabled
              and (concern is None or concern in r.concerns)
              and (route is None or r.name == route)]
    if not chosen:
        fail("no route matches: add routes under notify.routes in the config (see "
             "docs/alerts.md)" if not settings.routes else "no enabled route matches "
             f"--route/--concern (routes: {', '.join(r.name for r in settings.routes)})")
    links = open_routes(settings.model_copy(update={"routes": chosen}), loaded.config_dir)
    failed = 0
    now = datetime.now(UTC)
    for r in chosen:
        link = links[r.name]
        if link.sender is None:
            typer.echo(f"✗ {r.name}: {link.broken}")
            failed += 1
            continue
        text = (f"✅ [{loaded.config.fleet.name}] test from `fleet notify test` at "
                f"{now:%Y-%m-%d %H:%M:%S} UTC: route {r.name} ({', '.join(r.concerns)}) works")
        outcome = link.sender.send(link.destination, text)
        link.sender.close()
        if outcome.ok:
            typer.echo(f"✓ {r.name} ({r.type} → {link.destination}): delivered")
        else:
            failed += 1
            typer.echo(f"✗ {r.name} ({r.type} → {link.destination}): {outcome.kind.value}: "
                       f"{outcome.description}")
    if failed:
        raise typer.Exit(1)


@notify_app.command("status")
def notify_status(config: ConfigOption = None, db: DbOption = None,
                  as_json: JsonOption = False) -> None:
    """Each route's backlog: pending, sent, dead letters, oldest waiting, last error."""
    from fleetkit.store.outbox import Outbox

    loaded, database = _open(config, db)
    try:
        outbox = Outbox(database.engine)
        health, unrouted, dead = outbox.health(), outbox.unrouted(), outbox.dead_letters(10)
    finally:
        database.dispose()
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps({"unrouted": unrouted,
                               "routes": {h.route: h.as_json(now) for h in health},
                               "dead_letters": [d.as_json() for d in dead]}, indent=2))
        return
    configured = {r.name for r in loaded.config.notify.routes}
    if not health and not configured:
        typer.echo("no routes configured and nothing delivered yet (notify.routes)")
    typer.echo(f"waiting to be routed: {unrouted}")
    for h in health:
        age = h.as_json(now)["oldest_pending_age_s"]
        waiting = f", oldest waiting {age:.0f} s" if age is not None else ""
        gone = "" if h.route in configured else " (no longer configured)"
        typer.echo(f"{h.route}{gone}: {h.sent} sent, {h.pending} pending{waiting}, "
                   f"{h.dead} dead" + (f" — last error: {h.last_error}" if h.last_error else ""))
    for d in dead:
        typer.echo(f"  dead #{d.id} {d.route} {d.kind} ({d.bot or 'fleet'}), {d.attempts} "
                   f"attempt(s): {d.last_error}")


@notify_app.command("dead")
def notify_dead(limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
                config: ConfigOption = None, db: DbOption = None,
                as_json: JsonOption = False) -> None:
    """Dead letters: messages given up on, with why."""
    from fleetkit.store.outbox import Outbox

    _, database = _open(config, db)
    try:
        dead = Outbox(database.engine).dead_letters(limit)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps([d.as_json() for d in dead], indent=2))
        return
    if not dead:
        typer.echo("no dead letters")
    for d in dead:
        typer.echo(f"#{d.id} {d.updated_at:%Y-%m-%d %H:%M:%S} {d.route} {d.kind} "
                   f"({d.bot or 'fleet'}), {d.attempts} attempt(s): {d.last_error}\n"
                   f"    {d.text.splitlines()[0][:160] if d.text else ''}")


@notify_app.command("retry")
def notify_retry(route: RouteOption = None,
                 ids: Annotated[list[int] | None, typer.Option(
                     "--id", help="only these dead letters (repeatable)")] = None,
                 config: ConfigOption = None, db: DbOption = None) -> None:
    """Put dead letters back in the queue (after fixing a token or unblocking the bot)."""
    from fleetkit.store.outbox import Outbox

    _, database = _open(config, db)
    try:
        count = Outbox(database.engine).requeue_dead(datetime.now(UTC), route, ids or ())
    finally:
        database.dispose()
    typer.echo(f"{count} dead letter(s) queued again" if count else "no dead letters matched")


@monitor_app.command("run")
def monitor_run(only: Annotated[list[str] | None, typer.Option(
                    "--only", help="server, services or security (repeatable)")] = None,
                alert: Annotated[bool, typer.Option(
                    "--alert", help="also record changes as alerts in the outbox (what the "
                    "notifier does on its schedule)")] = False,
                config: ConfigOption = None, db: DbOption = None,
                as_json: JsonOption = False) -> None:
    """Run the monitors once and print what they found. Exit 1 when something alerts."""
    from fleetkit.core.alerts import Severity
    from fleetkit.runtime.monitoring import MONITORS, Monitoring

    chosen = only or list(MONITORS)
    unknown = [name for name in chosen if name not in MONITORS]
    if unknown:
        fail(f"unknown monitor {unknown[0]!r}: use {', '.join(MONITORS)}")
    from fleetkit.config.loader import load_config

    needs_db = alert or "services" in chosen
    loaded, database = _open(config, db) if needs_db else (load_config(config), None)
    try:
        monitoring = Monitoring(loaded, database)
        now = datetime.now(UTC)
        findings = monitoring.check(chosen, now)
        if alert:
            monitoring.record(findings, now)
    finally:
        if database is not None:
            database.dispose()
    if as_json:
        typer.echo(json.dumps([{"monitor": f.monitor, "key": f.key,
                                "severity": f.severity.label, "message": f.message,
                                "data": dict(f.data)} for f in findings], indent=2,
                              default=str))
    else:
        marks = {Severity.INFO: "ok  ", Severity.WARNING: "WARN", Severity.ERROR: "ERR ",
                 Severity.CRITICAL: "CRIT", Severity.DEBUG: "    "}
        for f in findings:
            typer.echo(f"{marks[f.severity]} {f.monitor:<8} {f.message}")
    if any(f.alerting for f in findings):
        raise typer.Exit(1)
