"""`fleet db upgrade | current | roles`: schema migrations and per-bot database roles."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.app import app, fail
from fleetkit.cli.options import ConfigOption, DbOption
from fleetkit.core.errors import ConfigError

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.store.database import Database
    from fleetkit.store.roles import RoleOutcome

db_app = typer.Typer(help="Database schema migrations and roles.", no_args_is_help=True)
app.add_typer(db_app, name="db")

@db_app.command()
def upgrade(config: ConfigOption = None, db: DbOption = None) -> None:
    """Migrate the database to this fleetkit's schema (safe to run any number of times)."""
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database, upgrade_database

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), require_schema=False)
    try:
        before, after = upgrade_database(database)
    finally:
        database.dispose()
    if before == after:
        typer.echo(f"{database.where}: already at {after}, nothing to do")
    else:
        typer.echo(f"{database.where}: migrated {before or 'empty'} -> {after}")


@db_app.command()
def current(config: ConfigOption = None, db: DbOption = None,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the database's schema revision and the one this fleetkit expects."""
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database
    from fleetkit.store.migrate import current_revision, head_revision

    loaded = load_config(config)
    database = open_database(database_url(loaded, db), require_schema=False, must_exist=True)
    try:
        revision = current_revision(database.engine)
    finally:
        database.dispose()
    head = head_revision()
    if as_json:
        typer.echo(json.dumps({"database": database.where, "current": revision, "head": head,
                               "up_to_date": revision == head}))
        return
    note = "up to date" if revision == head else "run `fleet db upgrade`"
    typer.echo(f"{database.where}: at {revision or 'no schema'}, code expects {head} ({note})")


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
