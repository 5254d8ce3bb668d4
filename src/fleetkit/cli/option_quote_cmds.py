"""`fleet data partitions | archive | chain`: the days of option quotes in the market-data
database and in Parquet archives, the upkeep that moves them, and one recorded minute's
chain (docs/market-data.md)."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

from fleetkit.cli.dates import parse_date
from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption
from fleetkit.core.numbers import decimal_size

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.core.instruments import Market
    from fleetkit.core.option_quotes import OptionQuote

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
    data_app.command("chain")(chain_command)


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
               f"({rows:,} rows{', ' + decimal_size(sum(sizes)) if sizes else ''}), "
               f"{len(archived)} archived in {root}")
    lines = [(d.day, f"  {d.day}  {d.state.value:<9} {d.rows:>11,} rows  "
                     f"{decimal_size(d.bytes) if d.bytes is not None else ''}") for d in stored]
    lines += [(a.day, f"  {a.day}  {'archived':<9} {a.rows:>11,} rows  {decimal_size(a.bytes)}  "
                      f"{a.path.name}{'' if a.sha256 else '  (no sha256 sidecar: cut short)'}")
              for a in archived]
    for _, line in sorted(lines):
        typer.echo(line)


def archive_command(
        keep_days: Annotated[int | None, typer.Option(
            "--keep-days", min=1, max=3660, help="days kept in the database, today "
            "included; older days are archived (default: the config's "
            "market_data.option_collector.hot_days, 30)", show_default=False)] = None,
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
    if keep_days is None:
        keep_days = loaded.config.market_data.option_collector.hot_days
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


_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")
_QUOTE_COLUMNS = ("bid", "ask", "last", "iv", "oi")


def chain_command(
        underlying: Annotated[str, typer.Argument(
            help="the underlying as recorded: NIFTY, BANKNIFTY, SENSEX", show_default=False)],
        expiry: Annotated[str | None, typer.Option(
            "--expiry", metavar="DATE", help="YYYY-MM-DD (default: the nearest recorded in "
            "that minute)", show_default=False)] = None,
        at: Annotated[str | None, typer.Option(
            "--at", metavar="TIME", help="the newest recorded minute at or before this: an "
            "ISO time with its offset, or HH:MM in the market's time zone today (default: "
            "the newest recorded)", show_default=False)] = None,
        as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False) -> None:
    """One recorded minute's option chain of an underlying: calls on the left, puts on the
    right, the ATM strike highlighted."""
    from fleetkit.cli.data_cmds import _load, _open
    from fleetkit.store.option_quotes import OptionQuoteStore

    if as_csv and as_json:
        fail("--csv and --json are alternatives: pick one")
    wanted_expiry = parse_date(expiry, "--expiry") if expiry is not None else None
    moment = _parse_at(at) if at is not None else None
    loaded = _load(config)
    database = _open(loaded, db, market_data_db)
    try:
        store = OptionQuoteStore(database.engine)
        newest = store.latest_minute(underlying)
        if newest is None:
            _unknown_underlying(store.underlyings(), underlying)
        zone = _zone_of(store.chain(underlying, newest))
        minute = newest
        if moment is not None:
            bound = moment if isinstance(moment, datetime) else datetime.combine(
                datetime.now(UTC).astimezone(zone).date(), moment, tzinfo=zone)
            found = store.latest_minute(underlying, bound)
            if found is None:
                fail(f"nothing of {underlying} recorded at or before {bound.isoformat()} "
                     f"(--at {at}): the newest is {newest.astimezone(zone):%Y-%m-%d %H:%M}, "
                     "give a later --at")
            minute = found
        quotes = store.chain(underlying, minute)
    finally:
        database.dispose()
    expiries = sorted({q.expiry for q in quotes})
    chosen = wanted_expiry if wanted_expiry is not None else expiries[0]
    if chosen not in expiries:
        fail(f"{underlying} has no quotes of expiry {chosen} recorded at "
             f"{minute.astimezone(zone):%Y-%m-%d %H:%M}: recorded then "
             f"{', '.join(map(str, expiries))} — pick one, or another --at")
    shown = [q for q in quotes if q.expiry == chosen]
    _show_chain(underlying, minute.astimezone(zone), chosen, expiries, shown,
                as_json=as_json, as_csv=as_csv)


def _parse_at(text: str) -> datetime | time:
    """An aware ISO time, or a wall-clock HH:MM (the market's zone comes later)."""
    text = text.strip()
    if _CLOCK.match(text):
        hours, minutes = map(int, text.split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    fail(f"--at {text!r} is not a time: write HH:MM in the market's time zone (e.g. 14:30) "
         "or an ISO time with its offset (e.g. 2027-01-04T14:30+05:30)")


def _unknown_underlying(known: list[str], underlying: str) -> NoReturn:
    if not known:
        fail("no option quotes recorded in the market-data database: run the options "
             "collector (`fleet data collect-options`), or point --market-data-db at its "
             "database")
    close = [k for k in known if k.upper() == underlying.upper()]
    hint = f"did you mean {close[0]}?" if close else "check the spelling"
    fail(f"no option quotes of {underlying!r} recorded (recorded: {', '.join(known)}): {hint}")


def _zone_of(quotes: list[OptionQuote]) -> ZoneInfo:
    """The zone of the market the quotes' instruments name ("NFO:..."); NSE's otherwise."""
    from fleetkit.core.instruments import MARKETS

    code = quotes[0].instrument.partition(":")[0] if quotes else "NFO"
    return ZoneInfo(MARKETS[code].timezone if code in MARKETS else MARKETS["NFO"].timezone)


def _atm(strikes: list[Decimal], spot: Decimal) -> Decimal:
    """The listed strike nearest the underlying; halfway takes the higher, as atm_strike."""
    return min(strikes, key=lambda k: (abs(k - spot), -k))


def _show_chain(underlying: str, minute: datetime, expiry: date, expiries: list[date],
                quotes: list[OptionQuote], *, as_json: bool, as_csv: bool) -> None:
    by_strike: dict[Decimal, dict[str, OptionQuote]] = {}
    for q in quotes:
        by_strike.setdefault(q.strike, {})[q.option_type] = q
    strikes = sorted(by_strike)
    # The lowest price in the minute: as the straddle reads it (two snapshots may differ).
    spot = min(q.underlying_price for q in quotes)
    atm = _atm(strikes, spot)
    if as_json:
        typer.echo(json.dumps({
            "underlying": underlying, "minute": minute.astimezone(UTC).isoformat(),
            "expiry": expiry.isoformat(), "expiries": [e.isoformat() for e in expiries],
            "underlying_price": str(spot), "atm_strike": str(atm),
            "rows": [{"strike": str(k), "atm": k == atm,
                      "call": _quote_json(by_strike[k].get("CE")),
                      "put": _quote_json(by_strike[k].get("PE"))} for k in strikes]},
            indent=2))
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["minute", "underlying", "expiry", "strike", "atm",
                         *(f"call_{c}" for c in _QUOTE_COLUMNS),
                         *(f"put_{c}" for c in _QUOTE_COLUMNS)])
        for k in strikes:
            writer.writerow([minute.astimezone(UTC).isoformat(), underlying, expiry, k,
                             int(k == atm), *_quote_cells(by_strike[k].get("CE"), ""),
                             *_quote_cells(by_strike[k].get("PE"), "")])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{underlying} {expiry} at {minute:%Y-%m-%d %H:%M %Z}: underlying "
                  f"{spot}, ATM {atm} (other expiries: "
                  f"{', '.join(str(e) for e in expiries if e != expiry) or 'none'})",
                  pad_edge=False)
    for name in ("OI", "IV", "last", "ask", "bid"):
        table.add_column(f"call {name}", justify="right", no_wrap=True)
    table.add_column("strike", justify="center", style="bold", no_wrap=True)
    for name in ("bid", "ask", "last", "IV", "OI"):
        table.add_column(f"put {name}", justify="right", no_wrap=True)
    for k in strikes:
        call = _quote_cells(by_strike[k].get("CE"), "-")
        put = _quote_cells(by_strike[k].get("PE"), "-")
        table.add_row(call[4], call[3], call[2], call[1], call[0], str(k), *put,
                      style="reverse" if k == atm else None)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a pipe or a file: the whole row, never wrapped
    console.print(table)


def _quote_cells(quote: OptionQuote | None, empty: str) -> list[str]:
    """bid, ask, last, IV (percent), OI as text; `empty` for what was not quoted."""
    if quote is None:
        return [empty] * len(_QUOTE_COLUMNS)
    return [*(empty if v is None else str(v) for v in (quote.bid, quote.ask, quote.last)),
            empty if quote.iv is None else f"{quote.iv * 100:.1f}%",
            f"{quote.open_interest}"]


def _quote_json(quote: OptionQuote | None) -> dict[str, object] | None:
    if quote is None:
        return None
    return {"instrument": quote.instrument, "bid": _text(quote.bid), "ask": _text(quote.ask),
            "last": _text(quote.last), "iv": quote.iv, "volume": quote.volume,
            "open_interest": quote.open_interest}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --- helpers ----------------------------------------------------------------------------


def _market(code: str) -> Market:
    from fleetkit.core.instruments import MARKETS

    if code not in MARKETS:
        fail(f"unknown market {code!r} for --market: use one of {', '.join(MARKETS)}")
    return MARKETS[code]


def _archive_dir(loaded: LoadedConfig, given: Path | None, *, create: bool) -> Path:
    """--archive-dir, else the config's market_data.option_collector.archive_dir (relative
    to the config's directory), else $FLEET_HOME/archive/option_quotes."""
    configured = loaded.path_of(loaded.config.market_data.option_collector.archive_dir)
    root = given if given is not None else configured if configured is not None else \
        loaded.home / "archive" / "option_quotes"
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



def _s(count: int) -> str:
    return "" if count == 1 else "s"
