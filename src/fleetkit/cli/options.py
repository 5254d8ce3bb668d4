"""Options shared by several commands, spelled the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="fleet.yaml to use (default: $FLEET_CONFIG, ./fleet.yaml, the demo)")]
DbOption = Annotated[str | None, typer.Option(
    "--db", help="database URL (default: $FLEET_DB_URL, the config, SQLite under $FLEET_HOME)")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
MarketDataDbOption = Annotated[str | None, typer.Option(
    "--market-data-db", help="the market-data database URL (default: "
    "$FLEET_MARKET_DATA_DB_URL, database.market_data.url, else the --db database)")]
