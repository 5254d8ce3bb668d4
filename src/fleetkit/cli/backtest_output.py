"""What `fleet backtest` prints: the summary per bot (and the fleet's when several bots
ran), the days the brakes acted, and the JSON shape of the same."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from fleetkit.backtest.results import BacktestResult
from fleetkit.config.models import BotSettings, FleetConfig

_MOST_DAYS_SHOWN = 20


def json_summary(results: list[BacktestResult], shown: BacktestResult,
          written: dict[str, str]) -> dict[str, Any]:
    """One bot: its result, as before. Several: each bot's, and the fleet's (in USD)."""
    if len(results) == 1:
        return {**shown.as_json(), **written}
    return {"bots": [r.as_json() for r in results], "fleet": shown.as_json(), **written}


def summaries(results: list[BacktestResult], shown: BacktestResult,
               chosen: list[BotSettings], config: FleetConfig) -> list[Table]:
    sizes = {b.name: b.position_size_usd or config.defaults.position_size_usd for b in chosen}
    if len(results) == 1:
        return [_summary(shown, sizes.get(shown.bot)), *_brakes(shown)]
    return [_fleet_table(results, shown), *_brakes(shown)]


def _summary(result: BacktestResult, position_size_usd: object) -> Table:
    params = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "no parameters"
    size = (f"position size {position_size_usd:,} USD per instrument"
            if position_size_usd is not None else "a full position per instrument")
    table = Table(title=f"backtest {result.strategy} ({params}) on {result.instrument}",
                  caption=f"percentages are of the capital full positions need ({size})",
                  show_header=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    ccy = result.currency
    rows = [
        ("bars", f"{result.bars:,} ({result.first_bar[:16]} .. {result.last_bar[:16]} UTC)"),
        ("orders / fills", f"{result.orders:,} / {result.fills:,}"),
        ("risk denials", f"{result.denials:,}"),
        ("halts", f"{len(result.halts):,}"),
        ("net P&L (after fees)", f"{result.net_pnl:,.2f} {ccy} ({result.return_pct:+.2f}%)"),
        ("fees", f"{result.fees:,.2f} {ccy}"),
        ("max drawdown", f"{result.max_drawdown:,.2f} {ccy} ({result.max_drawdown_pct:.2f}%)"),
        ("Sharpe (daily, annualized)", "n/a" if result.sharpe is None else f"{result.sharpe:.2f}"),
        ("final position", result.final_position_text),
        ("replay", f"{result.replay_s:.2f} s, {result.bars_per_s:,.0f} bars/s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _fleet_table(results: list[BacktestResult], fleet: BacktestResult) -> Table:
    table = Table(title=f"backtest of {len(results)} bots together ({fleet.bars:,} bars, "
                        f"{fleet.first_bar[:16]} .. {fleet.last_bar[:16]} UTC)",
                  caption=f"replayed in {fleet.replay_s:.2f} s, {fleet.bars_per_s:,.0f} "
                          "bars/s; the fleet row is in USD")
    for column in ("bot", "strategy", "instruments", "orders / fills", "denials", "halts",
                   "net P&L", "max drawdown"):
        table.add_column(column, justify="left" if column in ("bot", "strategy",
                                                              "instruments") else "right")
    for r in [*results, fleet]:
        table.add_row(r.bot, r.strategy, ", ".join(k.split(":", 1)[1] for k in r.instruments)
                      if r is not fleet else f"{len(r.instruments)}",
                      f"{r.orders:,} / {r.fills:,}", f"{r.denials:,}", f"{len(r.halts):,}",
                      f"{r.net_pnl:,.2f} {r.currency}",
                      f"{r.max_drawdown:,.2f} ({r.max_drawdown_pct:.2f}%)")
    return table


def _brakes(result: BacktestResult) -> list[Table]:
    """The days the rails denied orders or a switch was halted (the rest were quiet)."""
    busy = [d for d in result.days if d.denials or d.halts]
    if not busy:
        return []
    table = Table(title=f"days the brakes acted ({len(busy)} of {len(result.days)})")
    for column in ("day", "P&L", "denials by rule", "halts"):
        table.add_column(column, justify="right" if column == "P&L" else "left")
    for day in busy[:_MOST_DAYS_SHOWN]:
        denials = ", ".join(f"{rule} {n}" for rule, n in sorted(day.denials.items()))
        halts = "; ".join(f"{h.ts[11:16]} {'fleet' if h.scope == 'fleet' else h.bot}: "
                          f"{h.reason}" for h in day.halts)
        table.add_row(day.day, f"{day.net_pnl:,.2f}", denials or "-", halts or "-")
    if len(busy) > _MOST_DAYS_SHOWN:
        table.caption = f"and {len(busy) - _MOST_DAYS_SHOWN} more days (all in --json)"
    return [table]


def written_lines(result: BacktestResult, written: dict[str, str]) -> list[str]:
    lines = []
    if "trades_file" in written:
        lines.append(f"{result.fills:,} fills written to {written['trades_file']}")
    if "plot_file" in written:
        lines.append(f"equity and drawdown chart written to {written['plot_file']}")
    return lines
