"""Fleet commands: init, up, status, halt, resume, strategies."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.core.controls import Control, TradingState

# Command bodies import what they need: `fleet bot run` loads this module too, and a fleet
# is many bot processes whose start-up time and memory add up.

def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def init(path: Annotated[Path, typer.Argument(help="where to write it")] = Path("fleet.yaml"),
         force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")]
         = False) -> None:
    """Write the demo fleet's config to PATH so you can edit it."""
    from fleetkit.config.loader import demo_config_text

    if path.is_dir():
        fail(f"{path} is a directory: give a file name, e.g. {path / 'fleet.yaml'}")
    if path.exists() and not force:
        fail(f"{path} already exists: pass --force to overwrite it")
    if path.parent.exists() and not path.parent.is_dir():
        fail(f"cannot write {path}: {path.parent} is a file, not a directory — choose "
             "another path")
    if not path.parent.is_dir():
        fail(f"cannot write {path}: directory {path.parent} does not exist — create it "
             f"first (mkdir -p {path.parent}) or choose another path")
    try:
        path.write_text(demo_config_text(), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path} ({exc.strerror}): choose a path this user can write")
    typer.echo(f"wrote {path} — edit it, then run: fleet up --config {path}")


def up(config: ConfigOption = None, db: DbOption = None,
       run_for: Annotated[float | None, typer.Option(
           "--for", min=1, help="stop cleanly after this many seconds")] = None,
       live: Annotated[bool | None, typer.Option(
           "--live/--no-live",
           help="live status table (default: on when output is a terminal)",
           show_default=False)] = None) -> None:
    """Run the fleet in the foreground: sandbox broker, one process per bot, a supervisor.

    One fleet per FLEET_HOME: while it runs, a second `fleet up` there is refused."""
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.fleet import check_port_free, preflight
    from fleetkit.runtime.home_lock import hold_fleet_home

    loaded = load_config(config)
    preflight(loaded)  # say what is wrong before announcing (or writing) anything
    with hold_fleet_home(loaded.home, loaded.source):
        check_port_free(loaded.config.sandbox.host, loaded.config.sandbox.port)
        _run_up(loaded, db, run_for, live)


def _run_up(loaded: LoadedConfig, db: str | None, run_for: float | None,
            live: bool | None) -> None:
    import threading

    from rich.console import Console
    from rich.live import Live

    from fleetkit.cli.render import fleet_table, summary_line
    from fleetkit.runtime.fleet import FleetOptions, run_fleet
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.ml_bootstrap import bots_needing_ml_extra, not_started_line
    from fleetkit.runtime.signals import stop_signals
    from fleetkit.store.status import FleetView

    logs = loaded.home / "logs"
    configure_logging(log_file=logs / "fleet.log")
    console = Console()
    stop = threading.Event()
    left_out, missing = bots_needing_ml_extra(loaded.config)
    typer.echo(f"fleetkit: starting {len(loaded.config.bots) - len(left_out)} bots from "
               f"{loaded.source}; data and logs in {loaded.home}"
               + (f"; stopping after {run_for:g}s" if run_for else "") + " — Ctrl-C to stop",
               err=True)
    if left_out:
        typer.echo(f"fleetkit: {not_started_line(left_out, missing)}", err=True)
    if live is None:
        live = sys.stdout.isatty()
    with stop_signals(stop):
        if live:
            with Live(console=console, refresh_per_second=1, screen=False) as screen:
                def show(view: FleetView) -> None:
                    screen.update(fleet_table(view, title="fleet up — Ctrl-C to stop"))

                run_fleet(loaded, FleetOptions(run_for, db, show), stop)
        else:
            import time

            last = [time.time()]  # first summary after 30 s, once bots have reported

            def log_line(view: FleetView) -> None:
                if view.at.timestamp() - last[0] >= 30:
                    typer.echo(summary_line(view))
                    last[0] = view.at.timestamp()

            run_fleet(loaded, FleetOptions(run_for, db, log_line), stop)
    typer.echo("fleetkit: fleet stopped", err=True)


def status(config: ConfigOption = None, db: DbOption = None,
           as_json: JsonOption = False) -> None:
    """Every bot: state, market, strategy, positions, today's P&L, heartbeat age; then
    every other process that heartbeats (market-data collectors, scheduler, notifier).

    A table on a terminal; piped or redirected, tab-separated values (a header row, then one
    row per bot by name; the other processes as lines on stderr); --json for everything."""
    from datetime import UTC, datetime

    from rich.console import Console

    from fleetkit.cli.render import component_lines, components_table, fleet_table, fleet_tsv
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.outbox import Outbox
    from fleetkit.store.status import fleet_view

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), must_exist=True)
    now = datetime.now(UTC)
    try:
        view = fleet_view(database.engine, now, loaded.config.runtime.stale_after_s)
        routes = Outbox(database.engine).health()
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps({**view.as_json(), "notifications": {
            h.route: h.as_json(now) for h in routes}}, indent=2))
        return
    # Piped or redirected, a table would be cut to 80 columns: scripts get tab-separated
    # rows instead, and what is not a row goes to stderr.
    tsv = not sys.stdout.isatty()
    if tsv:
        typer.echo(fleet_tsv(view), nl=False)
    if not view.bots:
        typer.echo("no bots registered yet: start the fleet with `fleet up`", err=tsv)
    elif not tsv:
        Console().print(fleet_table(view))
    # Collectors, the scheduler, the notifier: processes that are not bots, same beat.
    if view.components and not tsv:
        Console().print(components_table(view))
    for line in component_lines(view) if tsv else []:
        typer.echo(line, err=True)
    for h in routes:
        if h.dead or h.pending:
            hint = " — see `fleet notify dead`" if h.dead else ""
            typer.echo(f"notifications {h.route}: {h.pending} pending, {h.dead} dead letter(s)"
                       f"{hint}" + (f"; last error: {h.last_error[:120]}" if h.last_error
                                    else ""), err=tsv)


def halt(bot: Annotated[str | None, typer.Argument(help="the bot to halt")] = None,
         all_bots: Annotated[bool, typer.Option("--all", help="halt the whole fleet")] = False,
         reason: Annotated[str, typer.Option("--reason", "-r", help="why (kept in the audit)")]
         = "", reduce_only: Annotated[bool, typer.Option(
             "--reduce-only", help="only allow orders that shrink positions")] = False,
         config: ConfigOption = None, db: DbOption = None) -> None:
    """The kill switch: stop a bot (or --all) from sending orders, persisted and audited."""
    from fleetkit.core.controls import TradingState

    name = _target(bot, all_bots)
    if not reason.strip():
        fail("--reason is required: say why, it goes into the audit trail")
    state = TradingState.REDUCING if reduce_only else TradingState.HALTED
    previous = _set_state(config, db, name, state, reason.strip())
    scope = "the fleet" if name is None else f"bot {name}"
    again = " (it already was; reason updated)" if previous.state is state else ""
    typer.echo(f"{scope} is now {state.value.upper()}{again}: {reason.strip()} "
               "— checked before every order; resting orders are cancelled")


def resume(bot: Annotated[str | None, typer.Argument(help="the bot to resume")] = None,
           all_bots: Annotated[bool, typer.Option("--all", help="lift the fleet-wide halt")]
           = False, reason: Annotated[str, typer.Option("--reason", "-r")] = "operator resume",
           config: ConfigOption = None, db: DbOption = None) -> None:
    """Lift a halt on one bot (or the fleet-wide one with --all); audited.

    A bot halted because its ledger and its broker disagreed stays halted while they still
    do: fix the cause, or `fleet reconcile BOT --adopt-broker --reason ...` first."""
    from fleetkit.core.controls import TradingState

    name = _target(bot, all_bots)
    if name is not None:
        _refuse_while_mismatched(config, db, name)
    previous = _set_state(config, db, name, TradingState.ACTIVE, reason)
    scope = "the fleet" if name is None else f"bot {name}"
    if previous.state is TradingState.ACTIVE:
        typer.echo(f"{scope} was not halted; nothing changed")
    else:
        typer.echo(f"{scope} resumed (was {previous.state.value}: {previous.reason})")


def _refuse_while_mismatched(config: Path | None, db: str | None, name: str) -> None:
    from fleetkit.cli.reconcile_cmd import _Session
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.fleet import HELD_FOR_RECONCILIATION, FleetStore
    from fleetkit.store.ledger import SqlLedger

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), must_exist=True)
    try:
        bot_id = FleetStore(database.engine).bot(name).id
        control = SqlLedger(database.engine, database.fleet_tag()).controls(bot_id).bot
        if control.source not in HELD_FOR_RECONCILIATION:
            return
        with _Session(loaded, name, database) as reconciler:
            result = reconciler.inspect()
    finally:
        database.dispose()
    if not result.clean:
        summary = "; ".join(d.describe() for d in result.differences[:3])
        fail(f"bot {name} still differs from its broker ({summary}): fix that, or run "
             f"`fleet reconcile {name} --adopt-broker --reason ...`, then resume")


def _target(bot: str | None, all_bots: bool) -> str | None:
    if all_bots and bot:
        fail("give a bot name or --all, not both")
    if not all_bots and not bot:
        fail("name a bot, or pass --all for the whole fleet")
    return None if all_bots else bot


def _set_state(config: Path | None, db: str | None, name: str | None, state: TradingState,
               reason: str) -> Control:
    from datetime import UTC, datetime

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.fleet import FleetStore

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), must_exist=True)
    try:
        return FleetStore(database.engine).set_state(name, state, reason, actor(),
                                                     datetime.now(UTC))
    finally:
        database.dispose()


def strategies(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The strategies and their parameters: built-in, from installed packages (entry points)
    and from the config's `plugins:` modules."""
    from fleetkit.config.loader import import_config_plugins
    from fleetkit.strategy.base import STRATEGIES

    import_config_plugins(config)
    entries = STRATEGIES.entries()
    for problem in STRATEGIES.problems():  # a broken package is skipped, never fatal here
        typer.echo(f"warning: {problem.describe()}", err=True)
    if as_json:
        typer.echo(json.dumps({name: {"summary": e.item.summary,
                                      "origin": e.origin.describe(),
                                      "params": e.item.params_model.model_json_schema()}
                               for name, e in entries.items()}, indent=2))
        return
    for name, entry in sorted(entries.items()):
        spec = entry.item
        fields = ", ".join(f"{k}={_shown(f.default)}"
                           for k, f in spec.params_model.model_fields.items())
        origin = "" if entry.origin.kind == "builtin" else f" ({entry.origin.describe()})"
        typer.echo(f"{name:<20} {spec.summary}{origin}\n{'':<20} params: {fields or '(none)'}")


def _shown(value: object) -> str:
    from enum import IntEnum

    if isinstance(value, IntEnum):
        return f"{int(value)} ({value.name})"
    return repr(value)


def events(bot: Annotated[str | None, typer.Argument(help="only this bot's events")] = None,
           kind: Annotated[str | None, typer.Option(
               help="only these kinds: a kind (order.fill), its leading parts (order: every "
                    "order.* kind) or its trailing parts (fill: order.fill and fill.*)")]
           = None,
           limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many")] = 50,
           config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False
           ) -> None:
    """The audit trail, newest first: halts and resumes, denials, fills, mismatches, restarts."""
    from rich.console import Console
    from rich.table import Table

    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.audit import recent_events, recorded_kinds
    from fleetkit.store.database import open_database
    from fleetkit.store.fleet import FleetStore

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), must_exist=True)
    try:
        bot_id = None if bot is None else FleetStore(database.engine).bot(bot).id
        if kind is not None:
            _check_kind(recorded_kinds(database.engine), kind)
        found = recent_events(database.engine, bot_id=bot_id, kind=kind, limit=limit)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps([e.as_json() for e in found], indent=2))
        return
    table = Table(show_lines=False)
    for column in ("when (UTC)", "bot", "kind", "severity", "message", "by"):
        table.add_column(column, no_wrap=column != "message")
    for event in found:
        table.add_row(f"{event.at:%Y-%m-%d %H:%M:%S}", event.bot or "(fleet)", event.kind,
                      event.severity, event.message, event.actor or "")
    Console().print(table)


def _check_kind(recorded: list[str], wanted: str) -> None:
    """Refuse a --kind that names no kind in the audit trail and none that fleetkit alerts
    on (those are known before the first one happens), listing the kinds there are."""
    from fleetkit.core.alerts import concern_for
    from fleetkit.store.audit import kind_matches

    if any(kind_matches(kind, wanted) for kind in recorded):
        return
    stem = wanted.strip().rstrip(".")
    if stem and (concern_for(stem) or concern_for(f"{stem}.")):
        return
    fail(f"--kind {wanted!r} names no event kind recorded so far, nor one fleetkit alerts "
         "on: give a kind, or its leading or trailing dotted parts "
         f"(kinds recorded: {', '.join(recorded) or 'none yet'})")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"fleetkit {version('fleetkit')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("fleetkit (version unknown: not installed)")
        raise typer.Exit()


def fleet_options(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="print fleetkit's version and exit")] = False) -> None:
    """The options of `fleet` itself, before any command."""


def register(app: typer.Typer) -> None:
    app.callback()(fleet_options)
    for command in (init, up, status, halt, resume, strategies, events):
        app.command()(command)
