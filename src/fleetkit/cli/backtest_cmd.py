"""`fleet backtest`: replay a strategy through the live engine on generated or CSV bars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from fleetkit.cli.app import app


@app.command()
def backtest(
    strategy: Annotated[str | None, typer.Option(help="strategy name (see `fleet strategies`)")]
    = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="strategy parameter NAME=VALUE (repeatable)")] = None,
    bot: Annotated[str | None, typer.Option(
        help="take strategy, params, instrument and sizing from this bot in the config")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="fleet.yaml")] = None,
    market: Annotated[str, typer.Option(help="market code: NYSE NSE LSE JPX XETRA CRYPTO")]
    = "CRYPTO",
    symbol: Annotated[str | None, typer.Option(
        help="instrument symbol [default: BTC/USDT on CRYPTO; required elsewhere]")] = None,
    interval: Annotated[str, typer.Option(help="bar interval: 1m, 5m, 15m, 30m, 1h")] = "1m",
    bars: Annotated[int, typer.Option(min=1, help="how many generated bars")] = 100_000,
    start: Annotated[str, typer.Option(help="first generated bar (UTC date or time)")]
    = "2024-01-02",
    seed: Annotated[int | None, typer.Option(help="price seed (default: the config's)")] = None,
    csv: Annotated[Path | None, typer.Option(
        help="replay bars from this CSV (time, open, high, low, close[, volume])")] = None,
    position_size_usd: Annotated[Decimal | None, typer.Option(help="full position size")] = None,
    fee_bps: Annotated[Decimal, typer.Option(help="venue fee, basis points")] = Decimal(1),
    slippage_bps: Annotated[Decimal, typer.Option(help="slippage, basis points")] = Decimal(2),
    trades: Annotated[bool, typer.Option("--trades", help="list every fill in --json")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="show a progress bar while replaying")] = True,
) -> None:
    """Replay a strategy through the same engine as live trading, with a simulated clock."""
    from fleetkit.cli.backtest_impl import run_command

    run_command(strategy=strategy, param=param, bot=bot, config=config, market=market,
                symbol=symbol, interval=interval, bars=bars, start=start, seed=seed, csv=csv,
                position_size_usd=position_size_usd, fee_bps=fee_bps,
                slippage_bps=slippage_bps, trades=trades, as_json=as_json, progress=progress)
