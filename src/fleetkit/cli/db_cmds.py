"""`fleet db upgrade | current | roles`: schema migrations and per-bot database roles."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, MarketDataDbOption
from fleetkit.core.errors import ConfigError

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.store.database import Database, SchemaPlacement
    from fleetkit.store.migrate import BranchStatus
    from fleetkit.store.roles import RoleOutcome

db_app = typer.Typer(help="Database schema migrations and roles.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


BranchOption = Annotated[list[str] | None, typer.Option(
    "--branch", help="only this schema branch: trading, operations or market_data "
                     "(repeatable; default: all)")]


@db_app.command()
def upgrade(config: ConfigOption = None, db: DbOption = None,
            market_data_db: MarketDataDbOption = None, branch: BranchOption = None) -> None:
    """Migrate every schema branch of every configured database to this fleetkit's (safe to
    run any number of times, from several hosts at once)."""
    from fleetkit.config.loader import load_config
    from fleetkit.store.database import upgrade_placements
    from fleetkit.store.migrate import SchemaState, mismatch

    loaded = load_config(config)
    newer: list[str] = []
    for done in upgrade_placements(_layout(loaded, db, market_data_db, branch),
                                   home=loaded.home, strict=False):
        for step in done.branches:
            before, after = step.before, step.after
            if after.state is SchemaState.NEWER:
                newer.append(mismatch(after, done.where))
                line = f"at {after.current}, newer than this fleetkit's {after.head}: left as is"
            elif step.changed:
                line = f"migrated {before.current or 'empty'} -> {after.current}"
            else:
                line = f"already at {after.current}, nothing to do"
            typer.echo(f"{done.where} {after.branch}: {line}")
    if newer:
        fail("; ".join(newer))


@db_app.command()
def current(config: ConfigOption = None, db: DbOption = None,
            market_data_db: MarketDataDbOption = None,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show each database's schema branches: the revision there, the one this fleetkit
    expects, and what to do (exit 2 when a newer fleetkit migrated one)."""
    from fleetkit.config.loader import load_config
    from fleetkit.store.migrate import SchemaState, mismatch

    loaded = load_config(config)
    report = [_placement_status(p, fleet_database=i == 0)
              for i, p in enumerate(_layout(loaded, db, market_data_db, None))]
    newer = [mismatch(s, where) for where, statuses in report for s in statuses
             if s.state is SchemaState.NEWER]
    if as_json:
        trading = report[0][1][0]  # the fleet database's trading branch, as before branches
        typer.echo(json.dumps({
            "database": report[0][0], "current": trading.current, "head": trading.head,
            "up_to_date": all(s.state is SchemaState.CURRENT for _, ss in report for s in ss),
            "databases": [{"database": where, "branches": [s.as_json() for s in statuses]}
                          for where, statuses in report]}))
        if newer:
            typer.echo(f"error: {'; '.join(newer)}", err=True)
            raise typer.Exit(2)
        return
    for where, statuses in report:
        for s in statuses:
            typer.echo(f"{where} {s.branch}: at {s.current or 'no schema'}, code expects "
                       f"{s.head} ({s.action})")
    if newer:
        fail("; ".join(newer))


def _layout(loaded: LoadedConfig, db: str | None, market_data_db: str | None,
            chosen: list[str] | None) -> tuple[SchemaPlacement, ...]:
    """Which branches live in which database, narrowed to the --branch ones."""
    from fleetkit.runtime.wiring import database_url, market_data_url
    from fleetkit.store.database import SchemaPlacement, placements
    from fleetkit.store.migrate import BRANCH_NAMES

    fleet_url = database_url(loaded, db)
    layout = placements(fleet_url, market_data_url(loaded, fleet_url, market_data_db))
    if not chosen:
        return layout
    unknown = sorted(set(chosen) - set(BRANCH_NAMES))
    if unknown:
        raise ConfigError(f"no schema branch {', '.join(unknown)}: the branches are "
                          f"{', '.join(BRANCH_NAMES)}")
    narrowed = (SchemaPlacement(p.url, tuple(b for b in p.branches if b in chosen))
                for p in layout)
    return tuple(p for p in narrowed if p.branches)


def _placement_status(placement: SchemaPlacement, *, fleet_database: bool
                      ) -> tuple[str, tuple[BranchStatus, ...]]:
    """The branches' revisions there; a market-data SQLite file not made yet has none."""
    from fleetkit.sqlutil.engine import redact_url
    from fleetkit.store.database import open_database, sqlite_path
    from fleetkit.store.migrate import BranchStatus, SchemaState, branch, schema_status

    path = sqlite_path(placement.url)
    if not fleet_database and path is not None and not path.exists():
        return redact_url(placement.url), tuple(
            BranchStatus(b, (), branch(b).head, SchemaState.EMPTY) for b in placement.branches)
    database = open_database(placement.url, require_schema=False, must_exist=True)
    try:
        return database.where, schema_status(database.engine, placement.branches)
    finally:
        database.dispose()


@db_app.command()
def roles(
    config: ConfigOption = None, db: DbOption = None,
    bots_: Annotated[list[str] | None, typer.Option(
        "--bots", help="bots to give a role: `all` (the default: every bot in the config) "
                       "or names; repeat the option for several")] = None,
    rotate: Annotated[bool, typer.Option(
        "--rotate", help="issue new passwords for roles that exist already")] = False,
    secrets_dir: Annotated[Path | None, typer.Option(
        "--secrets-dir", help="where new passwords go, one <role>.password file (mode 0600) "
                              "each (default: $FLEET_HOME/db-roles)")] = None,
    reader_role: Annotated[list[str] | None, typer.Option(
        "--reader-role", help="also a read-only login role of this name (dashboards, "
                              "monitors); repeatable")] = None,
    prefix: Annotated[str, typer.Option(
        "--role-prefix", help="bot role names are PREFIX + bot name (change it when two "
                              "fleets share one PostgreSQL server)")] = "fleet_bot_",
    show_passwords: Annotated[bool, typer.Option(
        "--show-passwords", help="also print new passwords (they are otherwise only in "
                                 "the files)")] = False,
    passwords_from: Annotated[Path | None, typer.Option(
        "--passwords-from", metavar="DIR",
        help="take each role's password from DIR/<role>.password: missing roles are created "
             "with it, existing ones changed to it (for deployments that keep the passwords "
             "in files)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a summary, without passwords")] = False,
) -> None:
    """Create or rotate each bot's PostgreSQL login role, confined to its own rows
    (idempotent; run as the database owner, with CREATEROLE)."""
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.roles import ensure_roles, require_postgresql

    _refuse_with_passwords_from(passwords_from, rotate=rotate, secrets_dir=secrets_dir,
                                show_passwords=show_passwords)
    loaded = load_config(config)
    names = _selected_bots(loaded, bots_)
    readers = tuple(reader_role or ())
    # Every file is read before the database is touched: a missing one changes nothing.
    declared = None if passwords_from is None else _declared_passwords(
        passwords_from, names, prefix, readers)
    database = open_database(database_url(loaded, db))
    try:
        if declared is not None and database.engine.dialect.name == "sqlite":
            _nothing_to_declare(database.where, as_json)
            return
        require_postgresql(database.engine)
        _register_missing(loaded, database, names)
        outcomes = ensure_roles(database.engine, names, prefix=prefix, rotate=rotate,
                                reader_roles=readers, passwords=declared)
    finally:
        database.dispose()
    folder = secrets_dir or loaded.home / "db-roles"
    written = {o.role: _write_password(folder, o.role, o.password)
               for o in outcomes if o.password is not None}
    if as_json:
        typer.echo(json.dumps({"database": database.where,
                               "changed": any(o.changed for o in outcomes),
                               "roles": [{**o.as_json(), "password_file": written.get(o.role)}
                                         for o in outcomes]}))
        return
    for outcome in outcomes:
        typer.echo(_describe(outcome, written.get(outcome.role), show_passwords))
    if not any(o.changed for o in outcomes):
        typer.echo(f"{database.where}: every role already in place, nothing changed")


def _refuse_with_passwords_from(passwords_from: Path | None, *, rotate: bool,
                                secrets_dir: Path | None, show_passwords: bool) -> None:
    """--passwords-from declares every password: nothing is issued, so nothing to rotate,
    write or show."""
    if passwords_from is None:
        return
    clashing = [name for name, given in (("--rotate", rotate), ("--secrets-dir", secrets_dir),
                                         ("--show-passwords", show_passwords)) if given]
    if clashing:
        fail(f"--passwords-from takes every password from its file, so it cannot be combined "
             f"with {' or '.join(clashing)}: to change a password, change its file and run "
             "this again")


def _nothing_to_declare(where: str, as_json: bool) -> None:
    """Generated deployments run `--passwords-from` at every start, whatever the database:
    on SQLite there is no role to declare, which is success, not an error to restart on."""
    note = ("SQLite has no database roles: nothing to do (isolation is by fleetkit's own API, "
            "docs/isolation.md)")
    if as_json:
        typer.echo(json.dumps({"database": where, "changed": False, "roles": [], "note": note}))
    else:
        typer.echo(f"{where}: {note}")


def _declared_passwords(folder: Path, names: list[str], prefix: str,
                        readers: tuple[str, ...]) -> dict[str, str]:
    from fleetkit.store.roles import bot_role_name, check_role_name, read_password_files

    roles = [bot_role_name(n, prefix) for n in names] + [check_role_name(r) for r in readers]
    return read_password_files(folder, roles)


def _selected_bots(loaded: LoadedConfig, chosen: list[str] | None) -> list[str]:
    configured = [b.name for b in loaded.config.bots]
    if not chosen or chosen == ["all"]:
        return configured
    unknown = [n for n in chosen if n not in configured]
    if unknown:
        raise ConfigError(f"not bots of this config: {', '.join(unknown)} "
                          f"(configured: {', '.join(configured) or 'none'})")
    return chosen


def _register_missing(loaded: LoadedConfig, database: Database, names: list[str]) -> None:
    """A bot's role can only update its own registry row, never create it: rows for bots
    that never ran are made here, exactly as `fleet up` makes them."""
    from fleetkit.runtime.wiring import bot_currency, describe_bot
    from fleetkit.store.fleet import FleetStore

    store = FleetStore(database.engine)
    known = {b.name for b in store.bots()}
    now = datetime.now(UTC)
    for bot in loaded.config.bots:
        if bot.name in names and bot.name not in known:
            store.register_bot(name=bot.name, market=bot.market, currency=bot_currency(bot),
                               strategy=bot.strategy, mode=bot.mode,
                               settings=describe_bot(loaded.config, bot), now=now)


def _write_password(folder: Path, role: str, password: str) -> str:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{role}.password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT
    return str(path)


def _describe(outcome: RoleOutcome, password_file: str | None, show: bool) -> str:
    who = f"bot {outcome.bot}" if outcome.bot else "reader"
    done = [word for word, flag in (("created", outcome.created), ("password rotated",
            outcome.rotated), (f"added to {outcome.group}", outcome.granted),
            ("mapped to its bot", outcome.mapped)) if flag]
    if outcome.password_set:
        done.append("password set from its file")
    line = f"{who}: role {outcome.role} " + (", ".join(done) if done else "unchanged")
    if password_file:
        line += f"; password in {password_file}"
    if show and outcome.password:
        line += f"; password {outcome.password}"
    return line
