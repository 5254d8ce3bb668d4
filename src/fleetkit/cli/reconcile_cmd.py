"""`fleet reconcile`: ledger vs broker per bot, and --adopt-broker to take the broker's truth."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.runtime.reconcile import BotReconciliation, Reconciler
    from fleetkit.store.database import Database


def reconcile(
    bot: Annotated[str | None, typer.Argument(help="the bot to reconcile")] = None,
    all_bots: Annotated[bool, typer.Option("--all", help="every bot in the config")] = False,
    adopt_broker: Annotated[bool, typer.Option(
        "--adopt-broker", help="correct the ledger to match the broker (audited; one bot)")]
    = False,
    reason: Annotated[str, typer.Option("--reason", "-r", help="why (kept in the audit)")] = "",
    config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False,
) -> None:
    """Compare each bot's ledger with its broker account; exit 1 while anything differs."""
    from datetime import UTC, datetime

    from fleetkit.cli.fleet_cmds import actor
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    if all_bots == (bot is not None):
        fail("name a bot, or pass --all")
    if adopt_broker and (all_bots or not reason.strip()):
        fail("--adopt-broker needs one bot and a --reason (it rewrites that bot's ledger)")
    loaded = load_config(config)
    names = [b.name for b in loaded.config.bots] if all_bots else [bot or ""]
    database = open_database(database_url(loaded, db), must_exist=True)
    results: list[BotReconciliation] = []
    try:
        for name in names:
            with _Session(loaded, name, database) as reconciler:
                results.append(reconciler.adopt_broker(reason.strip(), actor(), datetime.now(UTC))
                               if adopt_broker else reconciler.inspect())
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in results], indent=2))
    else:
        _print(results)
    if not all(r.clean for r in results):
        raise typer.Exit(1)


class _Session:
    """A Reconciler with its broker connection, closed on exit."""

    def __init__(self, loaded: LoadedConfig, name: str, database: Database) -> None:
        from fleetkit.core.errors import UnknownBotError
        from fleetkit.runtime.connections import connection_factory

        config = loaded.config
        try:
            settings = config.bot(name)
        except KeyError:
            raise UnknownBotError(f"no bot named {name!r} in the config") from None
        self._connection = connection_factory(loaded)(settings)
        self._config, self._settings, self._database = config, settings, database

    def __enter__(self) -> Reconciler:
        from fleetkit.core.errors import TransientBrokerError, UserError
        from fleetkit.runtime.reconcile import Reconciler

        try:
            self._connection.broker.positions()  # an account call: proves we get through
        except TransientBrokerError as exc:
            self._connection.close()
            raise UserError(f"cannot reach the broker for bot {self._settings.name} ({exc}): "
                            "start it (fleet up, or fleet broker serve) and try again") from None
        return Reconciler(self._config, self._settings, self._database,
                          self._connection.broker, self._connection.instruments,
                          contracts=self._connection.contracts)

    def __exit__(self, *_: object) -> None:
        self._connection.close()


def _print(results: list[BotReconciliation]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for result in results:
        verdict = "[green]matches the broker[/]" if result.clean else "[bold red]DIFFERS[/]"
        table = Table(title=f"{result.bot}: {verdict}"
                      + (f" — halted: {result.halt}" if result.halt else ""))
        for column in ("instrument", "ledger", "broker", ""):
            table.add_column(column, justify="right" if column in ("ledger", "broker") else "left")
        for line in result.positions:
            table.add_row(line.instrument, f"{line.ledger.normalize():f}",
                          f"{line.broker.normalize():f}", "differs" if line.differs else "")
        console.print(table)
        for difference in result.differences:
            if difference.client_order_id:
                console.print(f"  {difference.describe()}")
        for note in result.notes:
            console.print(f"  note: {note}")
        if result.pending_orders:
            console.print(f"  {len(result.pending_orders)} order(s) with an unknown outcome; "
                          "the bot resolves them by lookup")


def register(app: typer.Typer) -> None:
    app.command()(reconcile)
