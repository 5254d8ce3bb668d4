"""`fleet data partitions | archive`: the days of option quotes in the market-data database
and in Parquet archives, and the upkeep that moves them (docs/market-data.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.core.instruments import Market

# Command bodies import what they need: bot processes load the CLI too.

DEFAULT_KEEP_DAYS = 30
DEFAULT_AHEAD_DAYS = 5

ArchiveDirOption = Annotated[Path | None, typer.Option(
    "--archive-dir", help="where Parquet archives go (default: $FLEET_HOME/archive/"
    "option_quotes)", show_default=False)]


def register(app: typer.Typer) -> None:
    """Add `partitions` and `archive` to the `fleet data` group (data_cmds adds the group
    to `app`); once, however many apps are built."""
    from fleetkit.cli.data_cmds import data_app

    if any(c.name == "partitions" for c in data_app.registered_commands):
        return
    data_app.command("partitions")(partitions_command)
    data_app.command("archive")(archive_command)


def partitions_command(archive_dir: ArchiveDirOption = None, config: ConfigOption = None,
                       db: DbOption = None, market_data_db: MarketDataDbOption = None,
                       as_json: JsonOption = False) -> None:
    """The days of option quotes: in the database (partitions on PostgreSQL, with rows and
    sizes) and archived to Parquet (with their sha256)."""
    from fleetkit.cli.data_cmds import _load, _open
    from fleetkit.store.option_archive import archived_days
    from fleetkit.store.option_partitions import OptionPartitions

    loaded = _load(config)
    root = _archive_dir(loaded, archive_dir, create=False)
    database = _open(loaded, db, market_data_db)
    try:
        stored = OptionPartitions(database.engine).days()
    finally:
        database.dispose()
    archived = archived_days(root) if root.is_dir() else []
    if as_json:
        typer.echo(json.dumps({"archive_dir": str(root),
                               "database": [d.as_json() for d in stored],
                               "archived": [a.as_json() for a in archived]}, indent=2))
        return
    rows = sum(d.rows for d in stored)
    sizes = [d.bytes for d in stored if d.bytes is not None]
    typer.echo(f"option quotes: {len(stored)} day{_s(len(stored))} in the database "
               f"({rows:,} rows{', ' + _size(sum(sizes)) if sizes else ''}), "
               f"{len(archived)} archived in {root}")
    lines = [(d.day, f"  {d.day}  {d.state.value:<9} {d.rows:>11,} rows  "
                     f"{_size(d.bytes) if d.bytes is not None else ''}") for d in stored]
    lines += [(a.day, f"  {a.day}  {'archived':<9} {a.rows:>11,} rows  {_size(a.bytes)}  "
                      f"{a.path.name}{'' if a.sha256 else '  (no sha256 sidecar: cut short)'}")
              for a in archived]
    for _, line in sorted(lines):
        typer.echo(line)


def archive_command(
        keep_days: Annotated[int, typer.Option(
            "--keep-days", min=1, max=3660, help="days kept in the database, today "
            "included; older days are archived")] = DEFAULT_KEEP_DAYS,
        ahead: Annotated[int, typer.Option(
            "--ahead", min=0, max=60, help="also make the partitions of this many coming "
            "trading days (PostgreSQL; holidays get none)")] = DEFAULT_AHEAD_DAYS,
        market_code: Annotated[str, typer.Option(
            "--market", help="whose calendar and time zone decide trading days and today")
        ] = "NFO",
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="say what would be archived; change nothing")] = False,
        archive_dir: ArchiveDirOption = None, config: ConfigOption = None,
        db: DbOption = None, market_data_db: MarketDataDbOption = None,
        as_json: JsonOption = False) -> None:
    """Partition upkeep, safe to rerun and to schedule (`jobs: [{name: option-archive,
    command: "data archive", when: {market: NSE, at: close, offset_minutes: 30}}]`): make
    partitions ahead, then move each day older than --keep-days to a verified Parquet file
    and drop it from the database."""
    from fleetkit.cli.data_cmds import _load, _open
    from fleetkit.data.option_archiver import OptionArchiver
    from fleetkit.store.option_partitions import OptionPartitions

    market = _market(market_code)
    loaded = _load(config)
    root = _archive_dir(loaded, archive_dir, create=not dry_run)
    today = datetime.now(UTC).astimezone(ZoneInfo(market.timezone)).date()
    database = _open(loaded, db, market_data_db)
    try:
        archiver = OptionArchiver(OptionPartitions(database.engine), root,
                                  _trading_days(loaded, market))
        made = [] if dry_run else archiver.create_ahead(today, ahead)
        done = archiver.archive(today, keep_days, dry_run=dry_run)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps({"today": today.isoformat(), "archive_dir": str(root),
                               "dry_run": dry_run,
                               "partitions_made": [d.isoformat() for d in made],
                               "archived": [d.as_json() for d in done]}, indent=2))
        return
    if made:
        typer.echo(f"made partition{_s(len(made))} for {', '.join(map(str, made))}")
    verb = "would archive" if dry_run else "archived"
    if not done:
        typer.echo(f"nothing to archive: no day before the last {keep_days} in the database")
    for day in done:
        where = f" to {day.archive.path} (sha256 {day.archive.sha256[:12]}…)" \
            if day.archive else (" (empty: dropped, no file)" if not dry_run else "")
        typer.echo(f"{verb} {day.day}: {day.rows:,} rows{where}")


# --- helpers ----------------------------------------------------------------------------


def _market(code: str) -> Market:
    from fleetkit.core.instruments import MARKETS

    if code not in MARKETS:
        fail(f"unknown market {code!r} for --market: use one of {', '.join(MARKETS)}")
    return MARKETS[code]


def _archive_dir(loaded: LoadedConfig, given: Path | None, *, create: bool) -> Path:
    root = (given if given is not None else loaded.home / "archive" / "option_quotes")
    root = root.expanduser().absolute()
    if root.exists() and not root.is_dir():
        fail(f"--archive-dir {root} is a file, not a directory: choose another path")
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create the archive directory {root} ({exc.strerror or exc}): "
                 "create it yourself or choose another with --archive-dir")
    return root


def _trading_days(loaded: LoadedConfig, market: Market) -> Callable[[date, date], list[date]]:
    from fleetkit.calendars.days import calendar_days
    from fleetkit.runtime.calendar_watch import calendar_overrides, market_calendars

    overrides = calendar_overrides(loaded)
    calendars = market_calendars(loaded)

    def trading_days(first: date, last: date) -> list[date]:
        return [d.day for d in calendar_days(market.calendar, first, last,
                                             overrides=overrides, calendars=calendars)
                if not d.is_holiday]

    return trading_days


def _size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"


def _s(count: int) -> str:
    return "" if count == 1 else "s"
