"""`fleet metrics serve|show`: the fleet's Prometheus metrics, read from its database."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, MarketDataDbOption

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client import CollectorRegistry

metrics_app = typer.Typer(help="Prometheus metrics for the whole fleet.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(metrics_app, name="metrics")



@metrics_app.command()
def serve(config: ConfigOption = None, db: DbOption = None,
          market_data_db: MarketDataDbOption = None,
          host: Annotated[str, typer.Option(help="address to bind; metrics include P&L, so "
                                                 "loopback unless a proxy guards it")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535)] = 9108) -> None:
    """Serve /metrics for Prometheus until SIGINT/SIGTERM (one endpoint for every bot)."""
    import threading

    from prometheus_client import start_http_server

    from fleetkit.runtime.logs import configure_logging, get_logger
    from fleetkit.runtime.signals import stop_signals

    registry, dispose = _registry(config, db, market_data_db)
    configure_logging()
    stop = threading.Event()
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        dispose()
        fail(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port")
    get_logger("metrics").info(f"metrics on http://{host}:{port}/metrics",
                               action="metrics.serve", host=host, port=port)
    with stop_signals(stop):
        stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    dispose()


@metrics_app.command()
def show(config: ConfigOption = None, db: DbOption = None,
         market_data_db: MarketDataDbOption = None) -> None:
    """Print the metrics once, in Prometheus' text format (what a scrape would get)."""
    from prometheus_client import generate_latest

    registry, dispose = _registry(config, db, market_data_db)
    try:
        typer.echo(generate_latest(registry).decode("utf-8"), nl=False)
    finally:
        dispose()


def _registry(config: Path | None, db: str | None, market_data_db: str | None
              ) -> tuple[CollectorRegistry, Callable[[], None]]:
    from prometheus_client import CollectorRegistry

    from fleetkit.config.loader import load_config
    from fleetkit.monitor.collectors import MarketDataCollector, collector_zones
    from fleetkit.monitor.metrics import FleetCollector
    from fleetkit.runtime.wiring import database_url, market_data_url
    from fleetkit.store.collector_status import CollectorStatus
    from fleetkit.store.database import open_database
    from fleetkit.store.migrate import COLLECTOR_BRANCHES

    loaded = load_config(config)
    fleet_url = database_url(loaded, db)
    database = open_database(fleet_url, must_exist=True)
    market_url = market_data_url(loaded, fleet_url, market_data_db)
    # Market data in the fleet database (the default) shares its engine; in its own
    # database it gets one, checked for the market-data schema like the collectors do.
    try:
        market = database if market_url == fleet_url else open_database(
            market_url, branches=COLLECTOR_BRANCHES, must_exist=True)
    except BaseException:
        database.dispose()
        raise
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(database.engine, loaded.config.runtime.stale_after_s))
    registry.register(MarketDataCollector(CollectorStatus(market.engine, database.engine),
                                          collector_zones(loaded.config.market_data)))

    def dispose() -> None:
        database.dispose()
        if market is not database:
            market.dispose()

    return registry, dispose
