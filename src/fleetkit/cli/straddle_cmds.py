"""`fleet data track-straddles | straddle`: the straddle tracker (the ATM straddle and
strangles followed over the sandbox's quote stream) and its snapshots of a day
(docs/market-data.md, "Straddle tracker")."""

from __future__ import annotations

import csv
import json
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.brokers.sandbox.client import SandboxClient
    from fleetkit.brokers.sandbox.stream_client import SandboxQuoteStream
    from fleetkit.config.market_data import StraddleTrackerSettings
    from fleetkit.core.instruments import Market
    from fleetkit.core.option_quotes import StraddlePoint
    from fleetkit.core.straddles import StraddleSnapshot
    from fleetkit.data.straddle_tracker import Heartbeat, TrackerOptions
    from fleetkit.store.database import Database

# Command bodies import what they need: bot processes load the CLI too.

TRACKER_ACCOUNT = "straddle-tracker"  # the sandbox account its REST requests are made as
HEADER = ("time", "spot", "strike", "call", "put", "premium", "source")


def register(app: typer.Typer) -> None:
    """Add `track-straddles` and `straddle` to the `fleet data` group (data_cmds adds the
    group to `app`); once, however many apps are built."""
    from fleetkit.cli.data_cmds import data_app

    if any(c.name == "straddle" for c in data_app.registered_commands):
        return
    data_app.command("track-straddles")(track_command)
    data_app.command("straddle")(straddle_command)


def track_command(
        underlyings: Annotated[list[str] | None, typer.Option(
            "--underlying", "-u", help="an underlying to track (repeat for more; default: "
            "market_data.straddle_tracker.underlyings)", show_default=False)] = None,
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None) -> None:
    """Follow the ATM straddle and strangles of each underlying's nearest expiry over the
    sandbox's quote stream, writing snapshots until SIGINT/SIGTERM (run it as a market-hours
    service: `services: [{name: straddles, market: NSE, command: "data track-straddles"}]`)."""
    from fleetkit.brokers.sandbox.client import SandboxClient
    from fleetkit.cli.data_cmds import _fleet_database, _load, _open
    from fleetkit.data.straddle_tracker import StraddleTracker
    from fleetkit.runtime.logs import configure_logging, get_logger
    from fleetkit.runtime.signals import stop_signals
    from fleetkit.store.collector_stats import CollectorStats
    from fleetkit.store.straddle_snapshots import StraddleSnapshotStore

    loaded = _load(config)
    settings = loaded.config.market_data.straddle_tracker
    options = _options(settings, underlyings, loaded.config.runtime.heartbeat_interval_s)
    configure_logging()
    log = get_logger("straddles", tracker=settings.name)
    base_url = loaded.config.sandbox.base_url
    stream = _stream(base_url, settings.max_tick_age_s)
    databases: list[Database] = []
    stop = threading.Event()
    try:
        database = _open(loaded, db, market_data_db, must_exist=False)
        databases.append(database)
        fleet = _fleet_database(loaded, db)
        databases.extend([fleet] if fleet else [])
        zone = ZoneInfo(_market(settings.market).timezone)
        with SandboxClient(base_url, TRACKER_ACCOUNT) as client:
            tracker = StraddleTracker(
                options, client, stream, StraddleSnapshotStore(database.engine),
                CollectorStats(database.engine), now=lambda: datetime.now(UTC),
                trading_day=lambda at: at.astimezone(zone).date(),
                venue_offset=_venue_offset(client, settings.market),
                heartbeat=_heartbeat(fleet, settings.name))
            log.info("straddle tracker started", action="straddles.start",
                     underlyings=",".join(options.underlyings), stream=base_url)
            with stop_signals(stop):
                tracker.run(stop)
    finally:
        stream.close()
        for opened in databases:
            opened.dispose()
    log.info("straddle tracker stopped", action="straddles.stop")


def straddle_command(
        underlying: Annotated[str, typer.Argument(help='an underlying: "NIFTY"',
                                                  show_default=False)],
        day_text: Annotated[str | None, typer.Option(
            "--date", metavar="DATE", help="the trading day, YYYY-MM-DD (default: today in "
            "the tracker's market)")] = None,
        width: Annotated[int, typer.Option(
            "--width", min=0, max=50, help="0 the ATM straddle, k the strangle k strikes "
            "each side")] = 0,
        as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False) -> None:
    """The tracker's snapshots of one underlying's day; where it recorded none, the options
    collector's minute-by-minute ATM straddle (said so)."""
    from fleetkit.cli.data_cmds import _load, _open
    from fleetkit.cli.dates import parse_date
    from fleetkit.store.straddle_snapshots import StraddleSnapshotStore

    if as_csv and as_json:
        fail("--csv and --json are alternatives: pick one")
    loaded = _load(config)
    settings = loaded.config.market_data.straddle_tracker
    zone = ZoneInfo(_market(settings.market).timezone)
    day = parse_date(day_text, "--date") if day_text else datetime.now(UTC).astimezone(
        zone).date()
    database = _open(loaded, db, market_data_db)
    try:
        store = StraddleSnapshotStore(database.engine)
        snapshots = store.series(underlying, day, width)
        minutes = [] if snapshots or width else _minute_series(database, underlying, day)
        if not snapshots and not minutes:
            _nothing(store.underlyings(), underlying, day, width)
    finally:
        database.dispose()
    if snapshots:
        _show_snapshots(underlying, day, width, snapshots, zone, as_json=as_json, as_csv=as_csv)
    else:
        _show_minutes(underlying, day, minutes, zone, as_json=as_json, as_csv=as_csv)


# --- track-straddles helpers ------------------------------------------------------------


def _options(settings: StraddleTrackerSettings, chosen: list[str] | None,
             heartbeat_interval_s: float) -> TrackerOptions:
    from fleetkit.data.straddle_tracker import TrackerOptions

    names = tuple(dict.fromkeys(u.strip().upper() for u in chosen)) if chosen else tuple(
        settings.underlyings)
    if any(not name for name in names):
        fail("--underlying needs a name, e.g. --underlying NIFTY")
    return TrackerOptions(settings.name, names, tuple(settings.strangles),
                          settings.flush_interval_ms / 1000, settings.max_batch,
                          heartbeat_interval_s=heartbeat_interval_s)


def _stream(base_url: str, max_tick_age_s: float) -> SandboxQuoteStream:
    from fleetkit.brokers.sandbox.stream_client import SandboxQuoteStream
    from fleetkit.core.errors import TransientBrokerError

    try:
        return SandboxQuoteStream.discover(base_url, max_tick_age_s=max_tick_age_s)
    except TransientBrokerError:
        fail(f"no sandbox answering at {base_url}: start it (`fleet broker serve`, or "
             "`fleet up`) or point sandbox.url at a running one")


def _venue_offset(client: SandboxClient, market: str) -> timedelta:
    """The venue's time minus the wall clock for `market` (demo time); zero when it does not
    say (IV is then measured on the wall clock)."""
    from fleetkit.core.errors import BrokerError

    try:
        return client.market_offset(market)
    except BrokerError:
        return timedelta(0)


def _heartbeat(fleet: Database | None, name: str) -> Heartbeat | None:
    if fleet is None:
        return None
    from fleetkit.runtime.heartbeat import ComponentHeartbeat
    from fleetkit.store.fleet import FleetStore
    from fleetkit.store.jobs import RunOwner

    beats = ComponentHeartbeat(FleetStore(fleet.engine), f"tracker:{name}", "collector",
                               RunOwner.this_process(), datetime.now(UTC))

    def beat(detail: str, cycles: int) -> None:
        status = "stopped" if detail == "stopped cleanly" else "running"
        beats.beat(status, detail, cycles, datetime.now(UTC))

    return beat


def _market(code: str) -> Market:
    from fleetkit.core.instruments import MARKETS

    return MARKETS[code]


# --- straddle helpers -------------------------------------------------------------------


def _minute_series(database: Database, underlying: str, day: date) -> list[StraddlePoint]:
    """The options collector's ATM straddle of each minute, at the strike step of the
    chains it recorded (whichever venue and contract rules they came from)."""
    from fleetkit.store.option_quotes import OptionQuoteStore
    from fleetkit.store.straddle_series import quoted_strike_step

    step = quoted_strike_step(database.engine, underlying, day)
    if step is None:
        return []
    return OptionQuoteStore(database.engine).straddle(underlying, day, step)


def _nothing(known: list[str], underlying: str, day: date, width: int) -> None:
    if underlying not in known:
        fail(f"no straddle snapshots of {underlying!r} (tracked: {', '.join(known) or 'none'}"
             "): check the name, or run `fleet data track-straddles`")
    what = "ATM straddle" if width == 0 else f"strangle of width {width}"
    fail(f"{underlying}: no {what} recorded on {day.isoformat()}: pick another --date")


def _show_snapshots(underlying: str, day: date, width: int, found: list[StraddleSnapshot],
                    zone: ZoneInfo, *, as_json: bool, as_csv: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"underlying": underlying, "date": day.isoformat(),
                               "width": width, "from": "tracker",
                               "snapshots": [s.as_json() for s in found]}, indent=2))
        return
    rows = [(s.at.astimezone(zone).strftime("%H:%M:%S.%f")[:-3], s.spot, s.atm_strike,
             s.call.mark, s.put.mark, s.premium, s.source) for s in found]
    if as_csv:
        _csv(rows)
        return
    what = "ATM straddle" if width == 0 else f"strangle ±{width}"
    typer.echo(f"{underlying} {what} on {day.isoformat()} ({zone.key}), expiry "
               f"{found[-1].expiry.isoformat()}: {len(found)} snapshot"
               f"{'' if len(found) == 1 else 's'}")
    _table(rows)


def _show_minutes(underlying: str, day: date, found: list[StraddlePoint], zone: ZoneInfo,
                  *, as_json: bool, as_csv: bool) -> None:
    note = "the tracker recorded nothing that day: the options collector's minute ATM straddle"
    if as_json:
        typer.echo(json.dumps({"underlying": underlying, "date": day.isoformat(), "width": 0,
                               "from": "option_quotes", "note": note,
                               "minutes": [p.as_json() for p in found]}, indent=2))
        return
    rows = [(p.minute.astimezone(zone).strftime("%H:%M"), p.underlying_price, p.strike,
             p.call, p.put, p.premium, "minute") for p in found]
    if as_csv:
        _csv(rows)
        return
    typer.echo(f"{underlying} ATM straddle on {day.isoformat()} ({zone.key}): {note}, "
               f"{len(found)} minute{'' if len(found) == 1 else 's'}")
    _table(rows)


Row = tuple[str, Decimal, Decimal, Decimal | None, Decimal | None, Decimal | None, str]


def _csv(rows: Sequence[Row]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])


def _table(rows: Sequence[Row]) -> None:
    texts = [HEADER, *[tuple("-" if v is None else _num(v) for v in row) for row in rows]]
    widths = [max(len(r[i]) for r in texts) for i in range(len(HEADER))]
    for row in texts:
        typer.echo("  ".join(cell.rjust(w) if i else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                   .rstrip())


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, Decimal) else str(value)


