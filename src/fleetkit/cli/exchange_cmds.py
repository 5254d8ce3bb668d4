"""`fleet exchange check NAME`: reach a configured exchange before trusting a bot to it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.runtime.exchange_check import ExchangeCheck

exchange_app = typer.Typer(help="Real exchanges (ccxt) for paper and live bots.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(exchange_app, name="exchange")



@exchange_app.command()
def check(name: Annotated[str, typer.Argument(help="an entry under exchanges: in the config")],
          config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Load the exchange's markets, quote each bot's symbols with their tick, step and
    minimums, and — when credentials are configured — prove them with a balance call.
    Exits 2 if the credentials are refused, 1 if the exchange cannot be reached."""
    from fleetkit.config.loader import load_config
    from fleetkit.core.errors import CredentialsError, TransientBrokerError
    from fleetkit.runtime.exchange_check import check_exchange

    loaded = load_config(config)
    try:
        result = check_exchange(loaded.config, name)
    except CredentialsError as exc:
        fail(f"exchange {name}: credentials refused ({exc}); check the key, secret and "
             "whether the key is for this exchange (testnet keys differ)")
    except TransientBrokerError as exc:
        fail(f"exchange {name}: cannot reach it ({exc}); check the network and try again",
             code=1)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    _print(result)


def _print(result: ExchangeCheck) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    where = "testnet" if result.testnet else "REAL-MONEY venue"
    console.print(f"[bold]{result.name}[/]: {result.ccxt_id} ({where}), "
                  f"{result.markets} markets loaded")
    if result.authenticated:
        held = ", ".join(f"{k} {v}" for k, v in result.balances.items()) or "empty account"
        console.print(f"credentials accepted; balances: {held}")
        if result.reserved:
            console.print("reserved (not the bots'): "
                          + ", ".join(f"{k} {v}" for k, v in result.reserved.items()))
    else:
        console.print("no credentials configured: public data only (enough for paper bots)")
    table = Table("symbol", "bots", "last", "tick", "step", "min qty", "min notional")
    for s in result.symbols:
        table.add_row(s.symbol, ", ".join(s.bots), s.last_price, s.tick_size, s.step_size,
                      s.min_quantity or "-", s.min_notional or "-")
    if result.symbols:
        console.print(table)
