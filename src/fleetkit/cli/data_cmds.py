"""`fleet data bars | gaps | backfill | record`: the bar history of the instruments the fleet
trades, in the market-data database (docs/market-data.md). `partitions | archive` live in
cli/option_quote_cmds.py."""

from __future__ import annotations

import csv
import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from fleetkit.cli.dates import DATE, parse_date
from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.core.bars import BarRecord
    from fleetkit.core.sessions import Session
    from fleetkit.data.recorder import BarRecorder
    from fleetkit.store.bars import BarStore
    from fleetkit.store.database import Database

# Command bodies import what they need: bot processes load this module too.

data_app = typer.Typer(help="Market data: bar history, its gaps, and its recorder; "
                       "option quote partitions and their archives.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


SymbolArgument = Annotated[str, typer.Argument(
    help='an instrument: "CRYPTO:BTC/USDT", or a symbol the config trades ("BTC/USDT")',
    show_default=False)]
FromOption = Annotated[str | None, typer.Option(
    "--from", metavar="DATE", help="first day, YYYY-MM-DD in the exchange's time zone (or an "
    "ISO time with its offset)")]
ToOption = Annotated[str | None, typer.Option(
    "--to", metavar="DATE", help="last day, YYYY-MM-DD, included (or an ISO time, excluded)")]
SymbolsArgument = Annotated[list[str] | None, typer.Argument(
    help="instruments to record (default: every one the config's bots trade)",
    show_default=False)]
DaysOption = Annotated[int, typer.Option(
    "--days", min=1, max=3660, help="how far back an instrument with no bars yet starts")]

MAX_DAYS = 3 * 366
DEFAULT_GAP_DAYS = 7


@data_app.command("bars")
def bars_command(
        symbol: SymbolArgument,
        timeframe: Annotated[str, typer.Option(
            "--timeframe", "-t", help="1m, 5m, 15m, 1h, 4h or 1d (aggregated from 1m on the "
            "exchange's session boundaries when not stored)")] = "1m",
        start: FromOption = None, end: ToOption = None,
        as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False) -> None:
    """Export an instrument's bars (default: today, in the exchange's time zone)."""
    from fleetkit.core.bars import ONE_MINUTE, TIMEFRAMES, aggregate
    from fleetkit.store.bars import BarStore

    if as_csv and as_json:
        fail("--csv and --json are alternatives: pick one")
    if timeframe not in TIMEFRAMES:
        fail(f"unknown timeframe {timeframe!r}: use one of {', '.join(TIMEFRAMES)}")
    _check_dates(start, end)
    loaded = _load(config)
    database = _open(loaded, db, market_data_db)
    try:
        store = BarStore(database.engine)
        instrument = _instrument(loaded, store, symbol)
        first, last = _window(instrument, start, end, default_days=1)
        stored = timeframe in store.timeframes(instrument)
        if stored:
            found = store.read(instrument, timeframe, first, last)
        else:
            minutes = store.read(instrument, ONE_MINUTE, *_widened(first, last))
            found = [b for b in aggregate(minutes, timeframe, _sessions(loaded, instrument,
                                                                        first, last))
                     if first <= b.open_time < last]
    finally:
        database.dispose()
    how = "stored" if stored else "aggregated from 1m"
    if as_json:
        typer.echo(json.dumps({"instrument": instrument, "timeframe": timeframe,
                               "from": first.isoformat(), "to": last.isoformat(), "bars_from": how,
                               "bars": [_bar_json(b) for b in found]}, indent=2))
    elif as_csv:
        _write_csv(found)
    else:
        typer.echo(f"{instrument} {timeframe} ({how}), {first:%Y-%m-%d %H:%M} to "
                   f"{last:%Y-%m-%d %H:%M} UTC: {len(found)} bar{'' if len(found) == 1 else 's'}")
        for b in found:
            typer.echo(f"{b.open_time:%Y-%m-%d %H:%M}  {b.open}  {b.high}  {b.low}  {b.close}  "
                       f"{b.volume}")


GapSymbolArgument = Annotated[str | None, typer.Argument(
    help='an instrument\'s bar gaps: "CRYPTO:BTC/USDT", or a symbol the config trades; '
         "without one, the collectors' recorded outages", show_default=False)]


@data_app.command("gaps")
def gaps_command(symbol: GapSymbolArgument = None, start: FromOption = None,
                 end: ToOption = None, config: ConfigOption = None, db: DbOption = None,
                 market_data_db: MarketDataDbOption = None, as_json: JsonOption = False) -> None:
    """Missing one-minute bars of SYMBOL inside the market's sessions (holidays and weekends
    have none), up to the newest stored bar; without SYMBOL, the outages the options
    collector and the straddle tracker recorded, and how much of each was filled (default:
    the last 7 days)."""
    from fleetkit.core.bar_gaps import MINUTE, find_gaps
    from fleetkit.core.bars import ONE_MINUTE
    from fleetkit.store.bars import BarStore

    _check_dates(start, end)
    loaded = _load(config)
    if symbol is None:
        _collector_gaps(loaded, start, end, db, market_data_db, as_json=as_json)
        return
    database = _open(loaded, db, market_data_db)
    try:
        store = BarStore(database.engine)
        instrument = _instrument(loaded, store, symbol)
        first, last = _window(instrument, start, end, default_days=DEFAULT_GAP_DAYS)
        newest = store.last_open_time(instrument, ONE_MINUTE)
        # Up to the newest bar: after it the recorder has not been yet (or the venue's demo
        # time is behind the wall clock); a stale recorder shows as an old "newest".
        checked = min(last, newest + MINUTE) if newest is not None else first
        present = store.open_times(instrument, ONE_MINUTE, first, checked)
    finally:
        database.dispose()
    gaps = find_gaps(present, _sessions(loaded, instrument, first, checked), first, checked) \
        if checked > first else []
    missing = sum(g.minutes for g in gaps)
    if as_json:
        typer.echo(json.dumps({"instrument": instrument, "from": first.isoformat(),
                               "to": last.isoformat(), "checked_until": checked.isoformat(),
                               "newest_bar": newest.isoformat() if newest else None,
                               "missing_minutes": missing,
                               "gaps": [g.as_json() for g in gaps]}, indent=2))
        return
    if newest is None:
        typer.echo(f"{instrument}: no one-minute bars stored — run `fleet data backfill`")
        return
    typer.echo(f"{instrument}: {len(gaps)} gap{'' if len(gaps) == 1 else 's'}, {missing} "
               f"missing minute{'' if missing == 1 else 's'} from {first:%Y-%m-%d %H:%M} to "
               f"{checked:%Y-%m-%d %H:%M} UTC (newest bar {newest:%Y-%m-%d %H:%M})")
    for gap in gaps:
        typer.echo(f"  {gap.start:%Y-%m-%d %H:%M} to {gap.end:%Y-%m-%d %H:%M}  "
                   f"{gap.minutes} min")


def _collector_gaps(loaded: LoadedConfig, start: str | None, end: str | None, db: str | None,
                    market_data_db: str | None, *, as_json: bool) -> None:
    from fleetkit.store.collector_stats import CollectorStats

    zone = ZoneInfo("UTC")
    last = _moment(end, "--to", zone, next_day=True) if end else datetime.now(UTC)
    first = _moment(start, "--from", zone) if start else last - timedelta(days=DEFAULT_GAP_DAYS)
    if first >= last:
        fail(f"--from {start or first.date()} is not before --to {end or last.date()}: "
             "swap them")
    database = _open(loaded, db, market_data_db)
    try:
        found = CollectorStats(database.engine).gaps(since=first, until=last)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps({"from": first.isoformat(), "to": last.isoformat(),
                               "gaps": [g.as_json() for g in found]}, indent=2))
        return
    typer.echo(f"collector outages from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC: "
               f"{len(found)}")
    for gap in found:
        minutes = (gap.ended_at - gap.started_at).total_seconds() / 60
        scope = f" {gap.scope}" if gap.scope else ""
        typer.echo(f"  {gap.collector}{scope}  {gap.started_at:%Y-%m-%d %H:%M:%S} to "
                   f"{gap.ended_at:%Y-%m-%d %H:%M:%S} ({minutes:.1f} min): {gap.reason}; "
                   f"filled {gap.filled}")


@data_app.command("backfill")
def backfill_command(symbols: SymbolsArgument = None, days: DaysOption = 7,
                     start: FromOption = None, config: ConfigOption = None,
                     db: DbOption = None, market_data_db: MarketDataDbOption = None,
                     as_json: JsonOption = False) -> None:
    """Fetch each traded instrument's one-minute bars from its venue, from the newest stored
    bar (or --days back) to now; safe to rerun or interrupt: it never stores a bar twice.
    --from refetches from that day (filling holes the venue can still serve)."""
    from fleetkit.runtime.bar_sources import configured_feeds

    _check_dates(start, None)
    loaded = _load(config)
    only = _wanted(loaded, symbols)
    recorder, databases = _recorder(loaded, db, market_data_db, days)
    done = []
    try:
        with configured_feeds(loaded.config, only) as feeds:
            for feed in feeds:
                since = _window(feed.instrument, start, None, default_days=1)[0] \
                    if start is not None else None
                result = recorder.catch_up(feed, since=since)
                done.append(result)
                if not as_json:
                    typer.echo(f"{result.instrument} ({result.source}): {result.inserted} new "
                               f"bar{'' if result.inserted == 1 else 's'} of {result.fetched} "
                               f"fetched, {result.rejected} refused; newest "
                               f"{result.last:%Y-%m-%d %H:%M} UTC" if result.last else
                               f"{result.instrument} ({result.source}): no bars yet")
                    if result.gaps:
                        missing = sum(g.minutes for g in result.gaps)
                        typer.echo(f"  {len(result.gaps)} gap(s), {missing} minute(s) inside "
                                   "sessions the venue did not serve: `fleet data gaps "
                                   f"{result.instrument}`")
    finally:
        for database in databases:
            database.dispose()
    if as_json:
        typer.echo(json.dumps({"instruments": [d.as_json() for d in done]}, indent=2))


@data_app.command("record")
def record_command(symbols: SymbolsArgument = None, days: DaysOption = 7,
                   config: ConfigOption = None, db: DbOption = None,
                   market_data_db: MarketDataDbOption = None) -> None:
    """Backfill, then write each bar as it closes, until SIGINT/SIGTERM (run it as a
    market-hours service: `services: [{name: bars, market: NSE, command: "data record"}]`)."""
    from fleetkit.runtime.bar_sources import configured_feeds
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.signals import stop_signals

    loaded = _load(config)
    only = _wanted(loaded, symbols)
    configure_logging()
    recorder, databases = _recorder(loaded, db, market_data_db, days)
    stop = threading.Event()
    try:
        with stop_signals(stop), configured_feeds(loaded.config, only) as feeds:
            recorder.follow(feeds, stop)
    finally:
        for database in databases:
            database.dispose()


# --- helpers ----------------------------------------------------------------------------


def _load(config: Path | None) -> LoadedConfig:
    from fleetkit.config.loader import load_config

    return load_config(config)


def _open(loaded: LoadedConfig, db: str | None, market_data_db: str | None, *,
          must_exist: bool = True) -> Database:
    from fleetkit.runtime.wiring import database_url, market_data_url
    from fleetkit.store.database import open_database
    from fleetkit.store.migrate import COLLECTOR_BRANCHES

    url = market_data_url(loaded, database_url(loaded, db), market_data_db)
    return open_database(url, branches=COLLECTOR_BRANCHES, must_exist=must_exist,
                         home=loaded.home, application_name="fleet-data")


def _recorder(loaded: LoadedConfig, db: str | None, market_data_db: str | None,
              days: int) -> tuple[BarRecorder, list[Database]]:
    """The recorder, and the databases to dispose: the market-data one, and the fleet one
    its gap alerts go to (when there is one to write to)."""
    from fleetkit.data.recorder import BarRecorder
    from fleetkit.runtime.clock import WallClock
    from fleetkit.store.bars import BarStore
    from fleetkit.store.data_alerts import GapAlertStore

    if not loaded.config.bots:
        fail(f"{loaded.source}: no bots, so no instruments to record — add bots, or name "
             "instruments the config trades")
    database = _open(loaded, db, market_data_db, must_exist=False)
    fleet = _fleet_database(loaded, db)
    recorder = BarRecorder(BarStore(database.engine), WallClock(),
                           lookback=timedelta(days=days),
                           sessions=_market_sessions(loaded),
                           alerts=GapAlertStore(fleet.engine) if fleet else None)
    return recorder, [database, *([fleet] if fleet else [])]


def _fleet_database(loaded: LoadedConfig, db: str | None) -> Database | None:
    """The fleet database, for the data.gap events; None (said on stderr) when there is
    none yet: bar history can be recorded before a fleet has run, its gaps are then only
    in the output and `fleet data gaps`."""
    from fleetkit.core.errors import FleetError
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    try:
        return open_database(database_url(loaded, db), must_exist=True, home=loaded.home,
                             application_name="fleet-data")
    except FleetError as exc:
        typer.echo(f"warning: gaps will not be alerted (no fleet database to record them "
                   f"in: {exc})", err=True)
        return None


def _market_sessions(loaded: LoadedConfig) -> Callable[[str, datetime, datetime],
                                                        list[Session]]:
    from fleetkit.core.instruments import market
    from fleetkit.runtime.calendar_watch import market_calendars

    calendars = market_calendars(loaded)

    def sessions(name: str, first: datetime, last: datetime) -> list[Session]:
        wide_first, wide_last = _widened(first, last)
        return calendars.sessions(market(name).calendar, wide_first.date(), wide_last.date())

    return sessions


def _traded(loaded: LoadedConfig) -> list[str]:
    from fleetkit.core.instruments import instrument_key

    return list(dict.fromkeys(instrument_key(b.market, s) for b in loaded.config.bots
                              for s in b.symbols))


def _wanted(loaded: LoadedConfig, symbols: list[str] | None) -> set[str] | None:
    if not symbols:
        return None
    traded = _traded(loaded)
    chosen: set[str] = set()
    for symbol in symbols:
        matches = [k for k in traded if symbol in (k, k.partition(":")[2])]
        if len(matches) != 1:
            fail(f"{symbol!r} is not an instrument the config's bots trade"
                 + (" on one market only: write MARKET:SYMBOL" if matches else "")
                 + f" (traded: {', '.join(traded) or 'none'})")
        chosen.add(matches[0])
    return chosen


def _instrument(loaded: LoadedConfig, store: BarStore, symbol: str) -> str:
    """MARKET:SYMBOL as given, or the one traded or stored instrument with that symbol."""
    from fleetkit.core.instruments import MARKETS

    market, sep, _ = symbol.partition(":")
    if sep and market in MARKETS:
        return symbol
    if sep:
        fail(f"unknown market {market!r} in {symbol!r}: use one of {', '.join(MARKETS)}")
    known = list(dict.fromkeys([*_traded(loaded), *(s.instrument for s in store.summaries())]))
    matches = [k for k in known if k.partition(":")[2] == symbol]
    if len(matches) == 1:
        return matches[0]
    if matches:
        fail(f"{symbol!r} is traded on several markets ({', '.join(matches)}): write "
             "MARKET:SYMBOL")
    fail(f"no instrument {symbol!r} in the config or the bar store (known: "
         f"{', '.join(known) or 'none'}): write MARKET:SYMBOL, e.g. CRYPTO:BTC/USDT")


def _window(instrument: str, start: str | None, end: str | None, *,
            default_days: int) -> tuple[datetime, datetime]:
    """[first, last) in UTC: dates are whole days in the exchange's time zone."""
    from fleetkit.core.instruments import market

    zone = ZoneInfo(market(instrument.partition(":")[0]).timezone)
    today = datetime.now(UTC).astimezone(zone).date()
    last = _moment(end, "--to", zone, next_day=True) if end else _midnight(
        today + timedelta(days=1), zone)
    first = _moment(start, "--from", zone) if start else _midnight(
        last.astimezone(zone).date() - timedelta(days=default_days), zone)
    if first >= last:
        fail(f"--from {start or first.date()} is not before --to {end or last.date()}: "
             "swap them")
    if last - first > timedelta(days=MAX_DAYS):
        fail(f"--from {first.date()} --to {last.date()} spans over {MAX_DAYS} days: narrow it")
    return first, last


def _check_dates(start: str | None, end: str | None) -> None:
    """Refuse a malformed --from/--to before anything is opened (the zone comes later)."""
    for text, option in ((start, "--from"), (end, "--to")):
        if text is not None:
            _moment(text, option, ZoneInfo("UTC"))


def _moment(text: str, option: str, zone: ZoneInfo, *, next_day: bool = False) -> datetime:
    text = text.strip()
    if DATE.match(text):
        day = parse_date(text, option)
        return _midnight(day + timedelta(days=1) if next_day else day, zone)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a date: write YYYY-MM-DD, e.g. 2024-01-03 (or an ISO "
             "time with its offset)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _widened(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """A range that holds every session overlapping [first, last), whole: a bucket that
    starts inside the range may hold minutes of a session that opened before it."""
    return first - timedelta(days=1), last + timedelta(days=1)


def _sessions(loaded: LoadedConfig, instrument: str, first: datetime,
              last: datetime) -> list[Session]:
    """The sessions of `instrument`'s market around [first, last]."""
    return _market_sessions(loaded)(instrument.partition(":")[0], first, last)


def _bar_json(bar: BarRecord) -> dict[str, str]:
    return {"open_time": bar.open_time.isoformat(), "open": str(bar.open),
            "high": str(bar.high), "low": str(bar.low), "close": str(bar.close),
            "volume": str(bar.volume)}


def _write_csv(found: list[BarRecord]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["open_time", "open", "high", "low", "close", "volume"])
    for bar in found:
        writer.writerow([bar.open_time.isoformat(), bar.open, bar.high, bar.low, bar.close,
                         bar.volume])
