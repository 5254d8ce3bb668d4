"""`fleet data collect-options`: the options collector (data/option_collector.py), a chain
snapshot every minute of the session into option_quotes, run as a market-hours service."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.brokers.sandbox.client import SandboxClient
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.data.option_collector import OptionCollector, PassReport
    from fleetkit.runtime.heartbeat import ComponentHeartbeat
    from fleetkit.store.database import Database

OnceOption = Annotated[bool, typer.Option(
    "--once", help="take the current minute (and fill what is missing), print what was done "
                   "as JSON, and exit")]
ACCOUNT = "fleet-options"  # the collector's sandbox account: it reads quotes, never trades
# How long a long-running collector waits for a sandbox that is not up yet before each retry.
WAIT_FOR_VENUE_S = 5.0


def register(app: typer.Typer) -> None:
    """Add `collect-options` to the `fleet data` group (data_cmds adds the group to `app`);
    once, however many apps are built."""
    from fleetkit.cli.data_cmds import data_app

    if not any(c.name == "collect-options" for c in data_app.registered_commands):
        data_app.command("collect-options")(collect_options)


def collect_options(config: ConfigOption = None, db: DbOption = None,
                    market_data_db: MarketDataDbOption = None, once: OnceOption = False) -> None:
    """Snapshot the configured option chains (`market_data.option_collector`) every minute
    of the session into option_quotes, until SIGINT/SIGTERM. Run it as a market-hours
    service: `services: [{name: options, market: NSE, command: "data collect-options",
    start_minutes_before_open: 5}]`. Missed minutes are recorded, alerted and filled from
    the venue where it can still serve them."""
    from fleetkit.cli.data_cmds import _fleet_database, _load, _open
    from fleetkit.runtime.logs import configure_logging
    from fleetkit.runtime.signals import stop_signals

    loaded = _load(config)
    configure_logging()
    client = _sandbox(loaded)
    database = _open(loaded, db, market_data_db, must_exist=False)
    fleet = _fleet_database(loaded, db)
    stop = threading.Event()
    try:
        with stop_signals(stop):
            offset = _venue_offset(loaded, client, stop, once=once)
            if offset is None:
                return  # stopped while waiting for the venue
            collector = _collector(loaded, client, database, fleet, offset)
            if once:
                report = collector.run_pass()
                typer.echo(json.dumps(_report_json(report), indent=2))
                return
            beat = _heartbeat(loaded, fleet)
            started = time.monotonic()

            def on_pass(report: PassReport) -> None:
                _log_pass(collector, report)
                if beat is not None:
                    beat.beat("running", _detail(collector, report),
                              int(time.monotonic() - started), datetime.now(UTC))

            collector.follow(stop, on_pass)
            if beat is not None:
                beat.beat("stopped", "stopped cleanly", 0, datetime.now(UTC))
    finally:
        client.close()
        database.dispose()
        if fleet is not None:
            fleet.dispose()


# --- wiring -------------------------------------------------------------------------------


def _sandbox(loaded: LoadedConfig) -> SandboxClient:
    from fleetkit.brokers.sandbox.client import SandboxClient

    return SandboxClient(loaded.config.sandbox.base_url, ACCOUNT,
                         timeout_s=loaded.config.runtime.broker_timeout_s)


def _venue_offset(loaded: LoadedConfig, client: SandboxClient, stop: threading.Event, *,
                  once: bool) -> timedelta | None:
    """The sandbox's clock offset for the collector's market; waits for a sandbox that is not
    up yet (a service started before the broker), or refuses at once with --once."""
    from fleetkit.core.errors import FleetError
    from fleetkit.runtime.logs import get_logger

    market = loaded.config.market_data.option_collector.market
    url = loaded.config.sandbox.base_url
    said = False
    while not stop.is_set():
        try:
            return client.market_offset(market)
        except FleetError as exc:
            if once:
                fail(f"the sandbox at {url} does not answer ({exc}): start it with `fleet up` "
                     "or `fleet broker serve`, or set sandbox.url")
            if not said:
                get_logger("data").warning(
                    "waiting for the sandbox", action="options.wait", url=url, error=str(exc),
                    fix="start it with `fleet up` or `fleet broker serve`")
                said = True
            stop.wait(WAIT_FOR_VENUE_S)
    return None


def _collector(loaded: LoadedConfig, client: SandboxClient, database: Database,
               fleet: Database | None, offset: timedelta) -> OptionCollector:
    from zoneinfo import ZoneInfo

    from fleetkit.cli.data_cmds import _market_sessions
    from fleetkit.core.instruments import MARKETS
    from fleetkit.data.option_collector import OptionCollector
    from fleetkit.runtime.clock import WallClock
    from fleetkit.store.collector_stats import CollectorStats
    from fleetkit.store.data_alerts import MissedMinuteAlerts
    from fleetkit.store.option_quotes import OptionQuoteStore

    settings = loaded.config.market_data.option_collector
    alerts = MissedMinuteAlerts(fleet.engine) if fleet is not None else None
    return OptionCollector(settings.plan(), client, "sandbox", OptionQuoteStore(database.engine),
                           CollectorStats(database.engine), _market_sessions(loaded),
                           ZoneInfo(MARKETS[settings.market].timezone), WallClock(),
                           offset=offset, alerts=alerts)


def _heartbeat(loaded: LoadedConfig, fleet: Database | None) -> ComponentHeartbeat | None:
    from fleetkit.runtime.heartbeat import ComponentHeartbeat
    from fleetkit.store.fleet import FleetStore
    from fleetkit.store.jobs import RunOwner

    if fleet is None:
        return None
    name = loaded.config.market_data.option_collector.name
    return ComponentHeartbeat(FleetStore(fleet.engine), f"collector:{name}", "collector",
                              RunOwner.this_process(), datetime.now(UTC))


# --- output -------------------------------------------------------------------------------


def _report_json(report: PassReport) -> dict[str, object]:
    return {"written": [{"minute": m.isoformat(), "rows": rows, "write_ms": round(ms, 1)}
                        for m, rows, ms in report.written],
            "filled": [{"minute": m.isoformat(), "rows": rows} for m, rows in report.filled],
            "missed": [m.isoformat() for m in report.missed],
            "rejected": report.rejected, "late": report.late}


def _log_pass(collector: OptionCollector, report: PassReport) -> None:
    from fleetkit.runtime.logs import get_logger

    log = get_logger("data")
    for minute, rows, ms in report.written:
        log.info("options minute written", action="options.minute",
                 collector=collector.settings.name, minute=minute.isoformat(), rows=rows,
                 write_ms=round(ms, 1))
    if report.filled:
        log.info("missed minutes filled from the venue", action="options.filled",
                 collector=collector.settings.name, minutes=len(report.filled),
                 first=report.filled[0][0].isoformat())
    if report.rejected:
        log.warning("quotes rejected", action="options.rejected",
                    collector=collector.settings.name, rejected=report.rejected)


def _detail(collector: OptionCollector, report: PassReport) -> str:
    if collector.last_written is None:
        return "waiting for the session" if not report.missed else "no snapshot yet"
    minute, quotes = collector.last_written
    missed = f" · {len(report.missed)} missed" if report.missed else ""
    return f"last minute {minute:%H:%M} UTC · {quotes} quotes{missed}"
