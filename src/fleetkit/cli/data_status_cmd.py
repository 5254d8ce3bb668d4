"""`fleet data status`: the market-data collectors at a glance — per collector its last
minute written, today's rows, minutes written and missed, gaps, rejects, write latency and
heartbeat; the option quote days held; the straddle tracker's newest straddles
(docs/market-data.md, "Watching the collectors")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption
from fleetkit.core.numbers import decimal_size

if TYPE_CHECKING:
    from collections.abc import Callable
    from zoneinfo import ZoneInfo

    from rich.table import Table

    from fleetkit.config.loader import LoadedConfig
    from fleetkit.store.collector_status import (
        CollectorHealth,
        LatestStraddle,
        QuoteDays,
    )
    from fleetkit.store.database import Database

# Command bodies import what they need: bot processes load the CLI too.

NOTHING_YET = ("no market data recorded yet: start collecting with `fleet data "
               "collect-options` and `fleet data track-straddles`, or run them as market-hours "
               "services (docs/market-data.md)")


def register(app: typer.Typer) -> None:
    """Add `status` to the `fleet data` group (data_cmds adds the group to `app`); once,
    however many apps are built."""
    from fleetkit.cli.data_cmds import data_app

    if not any(c.name == "status" for c in data_app.registered_commands):
        data_app.command("status")(status_command)


def status_command(config: ConfigOption = None, db: DbOption = None,
                   market_data_db: MarketDataDbOption = None,
                   as_json: JsonOption = False) -> None:
    """Each market-data collector's day so far (last minute written, rows, minutes written
    and missed, gaps, rejects by reason, write latency, heartbeat), the option quote days
    held and their size, and the straddle tracker's newest straddle per underlying."""
    from fleetkit.cli.data_cmds import _load, _open
    from fleetkit.monitor.collectors import collector_zones
    from fleetkit.store.collector_status import CollectorStatus

    loaded = _load(config)
    settings = loaded.config.market_data
    zone_of = collector_zones(settings)
    now = datetime.now(UTC)
    market = _open(loaded, db, market_data_db)
    fleet = _fleet_or_none(loaded, db)
    try:
        status = CollectorStatus(market.engine, fleet.engine if fleet else None)
        collectors = status.collectors(zone_of, now)
        quote_days = status.quote_days(now.astimezone(
            zone_of(settings.option_collector.name)).date())
        straddles = status.latest_straddles()
    finally:
        market.dispose()
        if fleet is not None:
            fleet.dispose()
    if as_json:
        typer.echo(json.dumps({
            "at": now.isoformat(), "collectors": [c.as_json() for c in collectors],
            "option_quotes": {**quote_days.as_json(),
                              "keep_days": settings.option_collector.hot_days},
            "straddles": [s.as_json() for s in straddles],
            "heartbeats_read": fleet is not None}, indent=2))
        return
    if not collectors and not quote_days.days and not straddles:
        typer.echo(NOTHING_YET)
        return
    _print_table(collectors, quote_days, straddles, zone_of, settings.option_collector.hot_days,
                 now, heartbeats_read=fleet is not None)


def _fleet_or_none(loaded: LoadedConfig, db: str | None) -> Database | None:
    """The fleet database, for the collectors' heartbeats; None when there is none (market
    data can be recorded before a fleet has run: the table then says so)."""
    from fleetkit.core.errors import FleetError
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    try:
        return open_database(database_url(loaded, db), must_exist=True, home=loaded.home,
                             application_name="fleet-data")
    except FleetError:
        return None


def _print_table(collectors: list[CollectorHealth], quote_days: QuoteDays,
                 straddles: list[LatestStraddle], zone_of: Callable[[str], ZoneInfo],
                 keep_days: int, now: datetime, *, heartbeats_read: bool) -> None:
    import sys

    from rich.console import Console

    # Piped, rich would assume 80 columns and squeeze the tables to illegibility.
    console = Console(width=None if sys.stdout.isatty() else 160)
    if collectors:
        console.print(collector_table(collectors, zone_of))
    if not heartbeats_read:
        typer.echo("heartbeats not shown: no fleet database (--db) to read them from")
    held = quote_days.days
    size = f", {decimal_size(quote_days.bytes)}" if quote_days.bytes is not None else ""
    parts = f"{quote_days.partitions} partitions{size}; " if quote_days.partitioned else ""
    span = "" if not held else f" ({held[0]})" if len(held) == 1 else \
        f" ({held[0]} to {held[-1]})"
    typer.echo(f"option quotes: {parts}{len(held)} trading day{'' if len(held) == 1 else 's'}"
               f" held{span}, keeping {keep_days} (`fleet data partitions` for each day)")
    if straddles:
        console.print(straddle_table(straddles, now))


def collector_table(collectors: list[CollectorHealth],
                    zone_of: Callable[[str], ZoneInfo]) -> Table:
    from rich.table import Table

    from fleetkit.core.durations import short_age

    table = Table(title="market-data collectors (today: each one's market day)",
                  pad_edge=False)
    for column in ("collector", "day", "last write", "rows today", "minutes", "missed",
                   "gaps", "rejects", "write ms avg/max", "heartbeat"):
        table.add_column(column, no_wrap=column not in ("rejects", "heartbeat"),
                         justify="right" if column in _NUMBERS else "left")
    for c in collectors:
        last = "" if c.last_minute is None else \
            f"{c.last_minute.astimezone(zone_of(c.name)):%H:%M %Z} " \
            f"({short_age(c.last_write_age_s)} ago)"
        rejects = ", ".join(f"{reason} {n}" for reason, n in sorted(c.rejects.items()))
        latency = "" if c.write_ms_avg is None and c.write_ms_max is None else \
            f"{_ms(c.write_ms_avg)}/{_ms(c.write_ms_max)}"
        # The status and its age only: the detail is in `fleet status` (and --json).
        beat = "none" if c.heartbeat is None else \
            f"{c.heartbeat.status} {short_age(c.heartbeat.age_s)} ago"
        table.add_row(c.name, str(c.trading_day), last, f"{c.rows_today:,}",
                      str(c.minutes_written), str(c.minutes_missed),
                      str(len(c.gaps)), rejects or "0", latency, beat)
    return table


_NUMBERS = ("rows today", "minutes", "missed", "gaps", "write ms avg/max")


def straddle_table(straddles: list[LatestStraddle], now: datetime) -> Table:
    from rich.table import Table

    from fleetkit.core.durations import short_age

    table = Table(title="newest ATM straddles", pad_edge=False)
    for column in ("underlying", "tracker", "at (UTC)", "expiry", "strike", "spot",
                   "premium", "source"):
        table.add_column(column, no_wrap=True)
    for s in straddles:
        table.add_row(s.underlying, s.tracker, f"{s.at:%m-%d %H:%M:%S} "
                      f"({short_age((now - s.at).total_seconds())} ago)", str(s.expiry),
                      f"{s.atm_strike:f}", f"{s.spot:.2f}",
                      "" if s.premium is None else f"{s.premium:.2f}", s.source)
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
