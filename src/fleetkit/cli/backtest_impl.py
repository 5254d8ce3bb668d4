"""The work behind `fleet backtest` (imported only when a backtest runs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from fleetkit.backtest.csv_bars import csv_tape, off_session_warning
from fleetkit.backtest.replay import ReplayBot
from fleetkit.backtest.report import output_problem, write_equity_chart, write_trades
from fleetkit.backtest.results import BacktestResult, fleet_result
from fleetkit.backtest.run import run_fleet_backtest
from fleetkit.backtest.tape import BarTape, generated_tape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.cli.backtest_output import json_summary, summaries, written_lines
from fleetkit.cli.errors import fail
from fleetkit.config.loader import LoadedConfig, load_config
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import interval_seconds
from fleetkit.engine.assembly import BotRecipe
from fleetkit.runtime.wiring import bot_instruments, bot_recipe, sandbox_catalog, usd_per_unit
from fleetkit.strategy.base import describe_params_error, spec


@dataclass(frozen=True, slots=True)
class Outputs:
    """The files asked for besides the summary: fills as CSV, the equity chart as PNG."""

    trades: Path | None = None
    plot: Path | None = None


def run_command(*, strategy: str | None, param: list[str] | None, bot: str | None,
                bots: str | None, all_bots: bool, config: Path | None, market: str | None,
                symbol: str | None, interval: str | None, bars: int, start: str | None,
                seed: int | None, csv: Path | None, store: StoreRange,
                position_size_usd: Decimal | None,
                fee_bps: Decimal, slippage_bps: Decimal, outputs: Outputs, as_json: bool,
                progress: bool) -> None:
    _check_outputs(outputs, csv)  # before the replay, not after minutes of it
    loaded = load_config(config)
    fleet_config = loaded.config
    if seed is not None:
        fleet_config = fleet_config.model_copy(
            update={"sandbox": fleet_config.sandbox.model_copy(update={"seed": seed})})
    chosen = _selection(fleet_config, Selection(strategy, param or [], bot, bots, all_bots,
                                                market, symbol, interval))
    store.check(csv)
    if csv is not None and sum(len(b.symbols) for b in chosen) > 1:
        fail("--csv holds one instrument's bars; replay one bot and one symbol with it "
             "(--bot NAME --symbol SYMBOL), or drop --csv for generated bars")
    replayed = [_replay_bot(fleet_config, settings, i + 1, position_size_usd)
                for i, settings in enumerate(chosen)]
    tapes = _tapes(fleet_config, replayed, csv, bars, start, loaded, store)
    try:
        venue = VenueConfig(seed=fleet_config.sandbox.seed, fee_bps=fee_bps,
                            slippage_bps=slippage_bps, partial_fill_probability=0.0)
    except ValueError as exc:
        fail(str(exc))
    results = _run([ReplayBot(r, {k: tapes[k] for k in r.instruments}) for r in replayed],
                   venue, progress and not as_json)
    shown = fleet_result(results, fleet_config.fx_usd)
    written = _write_outputs(shown, results, outputs)
    if as_json:
        typer.echo(json.dumps(json_summary(results, shown, written), indent=2))
        return
    console = Console()
    for table in summaries(results, shown, chosen, fleet_config):
        console.print(table)
    for line in written_lines(shown, written):
        console.print(line, highlight=False)


GENERATED_START = "2024-01-02"


@dataclass(frozen=True, slots=True)
class StoreRange:
    """--from-store and what goes with it."""

    enabled: bool
    end: str | None
    db: str | None
    market_data_db: str | None

    def check(self, csv: Path | None) -> None:
        if self.enabled and csv is not None:
            fail("--from-store and --csv are two sources of bars: give one of them")
        if not self.enabled:
            given = [name for name, value in (("--to", self.end), ("--db", self.db),
                                              ("--market-data-db", self.market_data_db))
                     if value is not None]
            if given:
                fail(f"{', '.join(given)} {'goes' if len(given) == 1 else 'go'} only with "
                     "--from-store: add it, or drop them")


@dataclass(frozen=True, slots=True)
class Selection:
    """What the command line asks to replay, before it is checked against the config."""

    strategy: str | None
    params: list[str]
    bot: str | None
    bots: str | None
    all_bots: bool
    market: str | None
    symbol: str | None
    interval: str | None


def _selection(config: FleetConfig, asked: Selection) -> list[BotSettings]:
    """The bots to replay, every flag honoured or refused with the fix."""
    named = [n.strip() for n in (asked.bots or "").split(",") if n.strip()]
    sources = [flag for flag, given in (("--strategy", asked.strategy is not None),
                                        ("--bot", asked.bot is not None),
                                        ("--bots", bool(named)), ("--all", asked.all_bots))
               if given]
    if len(sources) > 1:
        fail(f"{' and '.join(sources)} each say what to replay; give one of them")
    if asked.params and asked.strategy is None:
        fail("--param sets a --strategy's parameters; a config bot's come from the config")
    if asked.strategy is not None or not sources:
        return [_ad_hoc(config, asked)]
    if asked.bot is not None:
        return [_one_bot(config, asked)]
    if asked.symbol is not None or asked.market is not None:
        fail("--symbol and --market pick one bot's instruments; with --bots or --all each bot "
             "trades its own (use --bot NAME to replay one bot on one symbol)")
    chosen = config.bots if asked.all_bots else [_bot(config, n) for n in named]
    if not chosen:
        fail("the config has no bots to replay; add some under `bots:` or use --strategy")
    return [_with_interval(b, asked.interval) if asked.interval else b for b in chosen]


def _ad_hoc(config: FleetConfig, asked: Selection) -> BotSettings:
    if asked.strategy is None:
        fail("give --strategy NAME (see `fleet strategies`), --bot NAME, --bots A,B or --all "
             "(the config's bots)")
    market = asked.market or "CRYPTO"
    symbol = asked.symbol
    if symbol is None:
        if market != "CRYPTO":
            fail(f"--market {market} needs --symbol (see the sandbox catalog: e.g. JPM on "
                 "NYSE)")
        symbol = "BTC/USDT"
    parsed = _params(asked.strategy, asked.params)
    try:
        return BotSettings(name="backtest", market=market, symbols=[symbol],
                           strategy=asked.strategy, params=parsed,
                           bar_interval=asked.interval or config.defaults.bar_interval)
    except ValidationError as exc:
        fail(describe_params_error(exc))


def _one_bot(config: FleetConfig, asked: Selection) -> BotSettings:
    settings = _bot(config, asked.bot or "")
    if asked.market is not None and asked.market != settings.market:
        fail(f"bot {settings.name} trades on {settings.market}, not {asked.market}: drop "
             "--market (or replay another bot)")
    if asked.symbol is not None:
        if asked.symbol not in settings.symbols:
            fail(f"bot {settings.name} trades {', '.join(settings.symbols)}; --symbol picks "
                 f"one of them, not {asked.symbol}")
        settings = settings.model_copy(update={"symbols": [asked.symbol]})
    return _with_interval(settings, asked.interval) if asked.interval else settings


def _bot(config: FleetConfig, name: str) -> BotSettings:
    try:
        return config.bot(name)
    except KeyError:
        known = ", ".join(b.name for b in config.bots[:8]) or "none"
        more = ", ..." if len(config.bots) > 8 else ""
        fail(f"no bot named {name!r} in the config (bots: {known}{more})")


def _with_interval(settings: BotSettings, interval: str) -> BotSettings:
    """The bot's settings replayed on --interval bars instead of its own bar_interval."""
    try:
        interval_seconds(interval)
    except ValueError as exc:
        fail(f"--interval: {exc}")
    return settings.model_copy(update={"bar_interval": interval})


def _replay_bot(config: FleetConfig, settings: BotSettings, bot_id: int,
                position_size_usd: Decimal | None) -> BotRecipe:
    if settings.contract == "front_future":
        fail(f"bot {settings.name} trades {settings.market} futures month by month: backtests "
             "replay listed instruments only; replay its strategy on the index with "
             f"--strategy {settings.strategy} --market {(settings.signal or '?').split(':')[0]} "
             f"--symbol '{(settings.signal or '?').partition(':')[2]}', or judge a learning "
             f"bot with `fleet ml evaluate {settings.name}`")
    instruments = bot_instruments(settings, sandbox_catalog(config))
    derivatives = [key for key, instrument in instruments.items() if instrument.margined]
    if derivatives:
        fail(f"bot {settings.name} trades {', '.join(derivatives)}, a perpetual: backtests "
             "replay spot instruments only (no funding or margin); replay its strategy on "
             f"{settings.signal or 'the spot instrument'} with --strategy, or judge a "
             f"learning bot with `fleet ml evaluate {settings.name}`")
    for instrument in instruments.values():
        usd_per_unit(config, instrument.currency)  # fails early with the fx_usd fix
    recipe = bot_recipe(config, settings, bot_id, instruments)
    if position_size_usd is not None:
        recipe = replace(recipe, sizing=replace(recipe.sizing,
                                                position_size_usd=position_size_usd))
    return recipe


def _params(strategy: str, pairs: list[str]) -> dict[str, Any]:
    try:
        model = spec(strategy).params_model
    except KeyError as exc:
        fail(str(exc.args[0]))
    result: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--param {pair!r}: write NAME=VALUE, e.g. --param fast=10")
        if name not in model.model_fields:
            fail(f"--param {name}: unknown parameter of {strategy} "
                 f"(known: {', '.join(model.model_fields)})")
        try:
            result[name] = json.loads(value)
        except json.JSONDecodeError:
            result[name] = value
    return result


def _tapes(config: FleetConfig, recipes: list[BotRecipe], csv: Path | None, count: int,
           start: str | None, loaded: LoadedConfig, store: StoreRange) -> dict[str, BarTape]:
    """One tape per instrument the bots trade (at the bots' bar interval)."""
    intervals: dict[str, int] = {}
    instruments: dict[str, Instrument] = {}
    for recipe in recipes:
        for key, instrument in recipe.instruments.items():
            if intervals.setdefault(key, recipe.interval_s) != recipe.interval_s:
                fail(f"{key} is traded by bots with different bar intervals; one venue serves "
                     "one tape per instrument: replay them apart, or pass --interval")
            instruments[key] = instrument
    if csv is not None:
        [(key, instrument)] = instruments.items()
        return {key: _csv_tape(csv, instrument, intervals[key], loaded)}
    if store.enabled:
        from fleetkit.cli.backtest_store import stored_tapes

        return stored_tapes(loaded, instruments, intervals, start, store.end, store.db,
                            store.market_data_db)
    start = start or GENERATED_START
    try:
        first = datetime.fromisoformat(start)
    except ValueError:
        fail(f"--start {start!r}: use a date like 2024-01-02 or 2024-01-02T09:30")
    first = first if first.tzinfo else first.replace(tzinfo=UTC)
    from fleetkit.brokers.sandbox.prices import InventedPrices
    from fleetkit.runtime.calendar_watch import market_calendars

    prices = InventedPrices(config.sandbox.seed, sandbox_catalog(config),
                            market_calendars(loaded))
    return {key: generated_tape(prices, instrument, first, count, intervals[key])
            for key, instrument in instruments.items()}


def _csv_tape(csv: Path, instrument: Instrument, interval_s: int,
              loaded: LoadedConfig) -> BarTape:
    from fleetkit.runtime.calendar_watch import market_calendars

    tape = csv_tape(csv, instrument, interval_s)
    warning = off_session_warning(csv, tape, market_calendars(loaded))
    if warning is not None:
        typer.echo(f"warning: {warning}", err=True)
    return tape


def _check_outputs(outputs: Outputs, csv: Path | None) -> None:
    asked = [("--trades", outputs.trades, None), ("--plot", outputs.plot, ".png")]
    for option, path, suffix in asked:
        if path is None:
            continue
        problem = output_problem(path, suffix=suffix)
        if problem is not None:
            fail(f"{option} {path}: {problem}")
        if csv is not None and _same_file(path, csv):
            fail(f"{option} {path} is the --csv file being replayed; write to another file")
    if outputs.trades is not None and outputs.plot is not None and _same_file(
            outputs.trades, outputs.plot):
        fail(f"--trades and --plot both name {outputs.plot}; give each its own file")


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _write_outputs(shown: BacktestResult, results: list[BacktestResult],
                   outputs: Outputs) -> dict[str, str]:
    """Write the files asked for; what was written, as the --json keys that name it. With
    several bots the trades name their bot and the chart is the fleet's, in USD."""
    def trades(path: Path) -> None:
        write_trades(results, path)

    def chart(path: Path) -> None:
        write_equity_chart(shown, path)

    writers: list[tuple[str, str, Path | None, Callable[[Path], None]]] = [
        ("--trades", "trades_file", outputs.trades, trades),
        ("--plot", "plot_file", outputs.plot, chart)]
    written: dict[str, str] = {}
    for option, key, path, write in writers:
        if path is None:
            continue
        try:
            write(path)
        except OSError as exc:  # the disk filled up, or the directory went away meanwhile
            fail(f"{option} {path}: cannot write it ({exc.strerror or exc}); nothing was "
                 "left half-written")
        written[key] = str(path)
    return written


def _run(bots: list[ReplayBot], venue: VenueConfig, show: bool) -> list[BacktestResult]:
    if not show:
        return run_fleet_backtest(bots, venue)
    total = sum(len(t) for b in bots for t in b.tapes.values())
    with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,} bars"), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("replay", total=total)
        return run_fleet_backtest(bots, venue, lambda done: bar.update(task, completed=done))
