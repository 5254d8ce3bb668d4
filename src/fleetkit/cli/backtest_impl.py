"""The work behind `fleet backtest` (imported only when a backtest runs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.cli.app import fail
from fleetkit.config.loader import LoadedConfig, load_config
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.instruments import Instrument, instrument_key
from fleetkit.core.market_data import interval_seconds
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits
from fleetkit.backtest.run import BacktestResult, BacktestSpec, run_backtest
from fleetkit.backtest.tape import BarTape, csv_tape, generated_tape
from fleetkit.runtime.wiring import bot_limits, bot_sizing, sandbox_catalog, usd_per_unit
from fleetkit.strategy.base import describe_params_error, spec


def run_command(*, strategy: str | None, param: list[str] | None, bot: str | None,
                config: Path | None, market: str, symbol: str | None, interval: str, bars: int,
                start: str, seed: int | None, csv: Path | None,
                position_size_usd: Decimal | None, fee_bps: Decimal, slippage_bps: Decimal,
                trades: bool, as_json: bool, progress: bool) -> None:
    loaded = load_config(config)
    if symbol is None and bot is None:
        if market != "CRYPTO":
            fail(f"--market {market} needs --symbol (see the sandbox catalog: e.g. JPM on NYSE)")
        symbol = "BTC/USDT"
    settings = _settings(loaded.config, bot, strategy, param or [], market, symbol or "",
                         interval)
    fleet_config = loaded.config
    if seed is not None:
        fleet_config = fleet_config.model_copy(
            update={"sandbox": fleet_config.sandbox.model_copy(update={"seed": seed})})
    tape = _tape(fleet_config, settings, csv, bars, start, loaded)
    sizing = bot_sizing(fleet_config, settings)
    if position_size_usd is not None:
        sizing = Sizing(position_size_usd, sizing.usd_per_unit, sizing.allow_short,
                        sizing.order_type, sizing.limit_offset_bps)
    limits = _backtest_limits(bot_limits(fleet_config, settings))
    try:
        venue = VenueConfig(seed=fleet_config.sandbox.seed, fee_bps=fee_bps,
                            slippage_bps=slippage_bps, partial_fill_probability=0.0)
    except ValueError as exc:
        fail(str(exc))
    params = spec(settings.strategy).validate(settings.params).model_dump(mode="json")
    backtest_spec = BacktestSpec(settings.strategy, params, sizing, limits, venue)
    result = _run(backtest_spec, tape, progress and not as_json)
    if as_json:
        typer.echo(json.dumps(result.as_json(with_trades=trades), indent=2))
    else:
        Console().print(_summary(result, sizing))


def _backtest_limits(limits: RiskLimits) -> RiskLimits:
    # Replayed quotes are as old as their bar, and the daily-loss breaker needs live marks;
    # both stay live-only. Order value, position size and the collar apply as configured.
    return RiskLimits(limits.max_order_value_usd, limits.max_position_value_usd,
                      limits.price_collar_pct, 1e12, None, None)


def _settings(config: FleetConfig, bot: str | None, strategy: str | None, params: list[str],
              market: str, symbol: str, interval: str) -> BotSettings:
    if bot is not None:
        try:
            return config.bot(bot)
        except KeyError:
            fail(f"no bot named {bot!r} in the config; see `fleet status` or the bots list")
    if strategy is None:
        fail("give --strategy NAME (see `fleet strategies`) or --bot NAME from the config")
    parsed = _params(strategy, params)
    try:
        return BotSettings(name="backtest", market=market, symbols=[symbol], strategy=strategy,
                           params=parsed, bar_interval=interval)
    except ValidationError as exc:
        fail(describe_params_error(exc))


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


def _tape(config: FleetConfig, settings: BotSettings, csv: Path | None, count: int,
          start: str, loaded: LoadedConfig) -> BarTape:
    catalog = sandbox_catalog(config)
    key = instrument_key(settings.market, settings.symbols[0])
    entry = catalog.get(key)
    if entry is None:
        fail(f"{key} is not in the sandbox catalog; add it under sandbox.instruments")
    instrument: Instrument = entry.instrument
    usd_per_unit(config, instrument.currency)  # fails early with the fx_usd fix
    interval_s = interval_seconds(settings.bar_interval or config.defaults.bar_interval)
    if csv is not None:
        return csv_tape(csv, instrument, interval_s)
    try:
        first = datetime.fromisoformat(start)
    except ValueError:
        fail(f"--start {start!r}: use a date like 2024-01-02 or 2024-01-02T09:30")
    first = first if first.tzinfo else first.replace(tzinfo=UTC)
    from fleetkit.brokers.sandbox.prices import InventedPrices
    from fleetkit.runtime.calendar_watch import market_calendars

    prices = InventedPrices(config.sandbox.seed, catalog, market_calendars(loaded))
    return generated_tape(prices, instrument, first, count, interval_s)


def _run(backtest_spec: BacktestSpec, tape: BarTape, show: bool) -> BacktestResult:
    if not show:
        return run_backtest(backtest_spec, tape)
    with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,} bars"), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("replay", total=len(tape))
        return run_backtest(backtest_spec, tape, lambda done: bar.update(task, completed=done))


def _summary(result: BacktestResult, sizing: Sizing) -> Table:
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "no parameters"
    table = Table(title=f"backtest {result.strategy} ({params}) on {result.instrument}",
                  caption="percentages are of the capital a full position needs "
                          f"(position size {sizing.position_size_usd:,} USD)",
                  show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    ccy = result.currency
    symbol = result.instrument.split(":", 1)[1]
    rows = [
        ("bars", f"{result.bars:,} ({result.first_bar[:16]} .. {result.last_bar[:16]} UTC)"),
        ("orders / fills", f"{result.orders:,} / {result.fills:,}"),
        ("risk denials", f"{result.denials:,}"),
        ("net P&L (after fees)", f"{result.net_pnl:,.2f} {ccy} ({result.return_pct:+.2f}%)"),
        ("fees", f"{result.fees:,.2f} {ccy}"),
        ("max drawdown", f"{result.max_drawdown:,.2f} {ccy} ({result.max_drawdown_pct:.2f}%)"),
        ("Sharpe (daily, annualized)", "n/a" if result.sharpe is None else f"{result.sharpe:.2f}"),
        ("final position", f"{result.final_position} {symbol}"),
        ("replay", f"{result.replay_s:.2f} s, {result.bars_per_s:,.0f} bars/s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
