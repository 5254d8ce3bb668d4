"""`fleet backtest`: replay a strategy through the live engine on generated or CSV bars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer


def backtest(
    strategy: Annotated[str | None, typer.Option(help="strategy name (see `fleet strategies`)")]
    = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="strategy parameter NAME=VALUE (repeatable)")] = None,
    bot: Annotated[str | None, typer.Option(
        help="replay this bot from the config: its strategy, params, sizing, rails, exits and "
             "every one of its symbols as one portfolio")] = None,
    bots: Annotated[str | None, typer.Option(
        "--bots", metavar="A,B,...",
        help="replay these config bots together, as the fleet runs them (one venue, one "
             "fleet-wide daily-loss breaker)")] = None,
    all_bots: Annotated[bool, typer.Option("--all", help="replay every bot in the config "
                                                         "together")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="fleet.yaml")] = None,
    market: Annotated[str | None, typer.Option(
        help="market code: NYSE NSE LSE JPX XETRA CRYPTO (with --strategy; default CRYPTO; "
             "with --bot it must be the bot's)")] = None,
    symbol: Annotated[str | None, typer.Option(
        help="instrument symbol (with --strategy: default BTC/USDT on CRYPTO, required "
             "elsewhere; with --bot: one of the bot's symbols, replayed alone)")] = None,
    interval: Annotated[str | None, typer.Option(
        help="bar interval: 5s, 10s, 15s, 30s, 1m, 5m, 15m, 30m, 1h; a --csv file's bars must "
             "be this far apart (default: the bot's bar_interval, else the config's, 1m)")]
    = None,
    bars: Annotated[int, typer.Option(min=1, help="how many generated bars")] = 100_000,
    start: Annotated[str | None, typer.Option(
        help="first bar: generated bars start here (UTC date or time, default 2024-01-02); "
             "with --from-store, the first day replayed in the exchange's time zone (default: "
             "the oldest stored bar)")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", metavar="DATE", help="with --from-store: the last day replayed, included "
                                     "(default: the newest stored bar)")] = None,
    from_store: Annotated[bool, typer.Option(
        "--from-store", help="replay the bars the fleet recorded (`fleet data backfill`, "
                             "`fleet data record`): 1m bars, or 5m/15m/1h aggregated on the "
                             "exchange's sessions")] = False,
    db: Annotated[str | None, typer.Option(
        "--db", metavar="URL", help="with --from-store: the fleet database URL")] = None,
    market_data_db: Annotated[str | None, typer.Option(
        "--market-data-db", metavar="URL",
        help="with --from-store: the market-data database, when it is not the fleet's")] = None,
    seed: Annotated[int | None, typer.Option(help="price seed (default: the config's)")] = None,
    csv: Annotated[Path | None, typer.Option(
        help="replay bars from this CSV: a header with a time column (ISO 8601, UTC unless "
             "it has an offset, or epoch s/ms) and open, high, low, close[, volume]; rows "
             "sorted by time, spaced by --interval (gaps are fine); a bad row is refused by "
             "number, bars outside the market's sessions are counted in a warning")] = None,
    position_size_usd: Annotated[Decimal | None, typer.Option(help="full position size")] = None,
    fee_bps: Annotated[Decimal, typer.Option(help="venue fee, basis points")] = Decimal(1),
    slippage_bps: Annotated[Decimal, typer.Option(help="slippage, basis points")] = Decimal(2),
    trades: Annotated[Path | None, typer.Option(
        "--trades", metavar="FILE",
        help="write every fill to this CSV (ts, instrument, side, quantity, price, fee, "
             "currency); an existing file is replaced, a missing directory refused")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="FILE",
        help="draw equity (top) and drawdown (below) to this PNG; an existing file is "
             "replaced, a missing directory refused")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="show a progress bar while replaying")] = True,
) -> None:
    """Replay a strategy, a config bot or several bots through the same engine as live
    trading — rails, breakers and protective exits included — with a simulated clock.

    Bars are generated from the sandbox's prices (the bars it serves a live bot at
    --interval) or read from --csv. A CSV is checked before the replay: a bad time or price,
    high/low not holding open and close, rows out of order or repeated, or bars spaced
    unlike --interval are refused in one line naming the row (the header is row 1), the
    column and the fix; bars outside the market's sessions are replayed with a warning.
    --trades and --plot write whole files or none (an existing file is replaced).
    """
    from fleetkit.cli.backtest_impl import Outputs, StoreRange, run_command

    run_command(strategy=strategy, param=param, bot=bot, bots=bots, all_bots=all_bots,
                config=config, market=market,
                symbol=symbol, interval=interval, bars=bars, start=start, seed=seed, csv=csv,
                store=StoreRange(from_store, end, db, market_data_db),
                position_size_usd=position_size_usd, fee_bps=fee_bps,
                slippage_bps=slippage_bps, outputs=Outputs(trades, plot), as_json=as_json,
                progress=progress)


def register(app: typer.Typer) -> None:
    app.command()(backtest)
