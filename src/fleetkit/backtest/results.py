"""What a backtest found, per bot and for the fleet: orders, fills, P&L, drawdown, Sharpe,
and the brakes day by day (denials by rule, halts), read from the replay's ledger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.metrics import performance
from fleetkit.backtest.replay import FleetReplay, ReplayBot
from fleetkit.backtest.tape import BarTape
from fleetkit.core.numbers import ZERO
from fleetkit.store.memory import RecordedEvent


@dataclass(frozen=True, slots=True)
class Trade:
    ts: str
    instrument: str
    side: str
    quantity: str
    price: str
    fee: str
    client_order_id: str = ""


@dataclass(frozen=True, slots=True)
class Halt:
    ts: str
    scope: str  # "bot" or "fleet"
    source: str
    reason: str
    bot: str = ""  # whose replay recorded it


@dataclass(frozen=True, slots=True)
class Day:
    """One UTC day of a bot's replay: its P&L change and what the brakes did."""

    day: str
    net_pnl: float
    denials: Mapping[str, int]
    halts: tuple[Halt, ...] = ()


@dataclass(frozen=True, slots=True)
class BacktestResult:
    bot: str
    instruments: tuple[str, ...]
    currency: str
    strategy: str
    params: dict[str, Any]
    bars: int
    first_bar: str
    last_bar: str
    orders: int
    fills: int
    denials: int
    fees: float
    net_pnl: float
    return_pct: float
    max_drawdown: float
    max_drawdown_pct: float
    sharpe: float | None
    final_positions: dict[str, str]
    replay_s: float
    trades: tuple[Trade, ...] = ()
    halts: tuple[Halt, ...] = ()
    capital: float = 0.0  # what the percentages are of: a full position per instrument
    days: tuple[Day, ...] = ()
    # Mark-to-market equity (capital + net P&L, in `currency`) at every bar close.
    curve_ts_s: npt.NDArray[np.int64] | None = field(default=None, repr=False)
    curve: npt.NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def instrument(self) -> str:
        return ", ".join(self.instruments)

    @property
    def final_position(self) -> str:
        if len(self.final_positions) == 1:
            return next(iter(self.final_positions.values()))
        return ", ".join(f"{k} {v}" for k, v in self.final_positions.items())

    @property
    def final_position_text(self) -> str:
        """Each instrument's final quantity with its symbol ("0.5 BTC/USDT, 10 ETH/USDT")."""
        return ", ".join(f"{v} {k.split(':', 1)[-1]}" for k, v in self.final_positions.items())

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.replay_s if self.replay_s > 0 else float("inf")

    def as_json(self, *, with_trades: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {k: getattr(self, k) for k in (
            "bot", "instrument", "currency", "strategy", "params", "bars", "first_bar",
            "last_bar", "orders", "fills", "denials", "fees", "net_pnl", "return_pct",
            "max_drawdown", "max_drawdown_pct", "sharpe", "final_position", "replay_s")}
        data["instruments"] = list(self.instruments)
        data["final_positions"] = dict(self.final_positions)
        data["bars_per_s"] = round(self.bars_per_s)
        for key in ("fees", "net_pnl", "return_pct", "max_drawdown", "max_drawdown_pct",
                    "replay_s"):
            data[key] = round(data[key], 6)
        data["halts"] = [_plain(h) for h in self.halts]
        data["days"] = [{"day": d.day, "net_pnl": round(d.net_pnl, 6),
                         "denials": dict(d.denials), "halts": [_plain(h) for h in d.halts]}
                        for d in self.days]
        if with_trades:
            data["trades"] = [_plain(t) for t in self.trades]
        return data


def _plain(record: Trade | Halt) -> dict[str, str]:
    return {name: getattr(record, name) for name in record.__slots__}


def bot_results(replay: FleetReplay, bots: Sequence[ReplayBot], replay_s: float
                ) -> list[BacktestResult]:
    return [_bot_result(replay, i, spec, replay_s) for i, spec in enumerate(bots)]


def _bot_result(replay: FleetReplay, index: int, spec: ReplayBot,
                replay_s: float) -> BacktestResult:
    recipe = spec.recipe
    bot_id = recipe.identity.id
    ledger = replay.ledger
    ts_s, pnl = _bot_curve(replay, index, spec)
    capital = float(recipe.sizing.position_size_usd / recipe.usd_per_unit) * len(spec.tapes)
    equity = capital + pnl
    always_open = all(t.instrument.calendar == "24/7" for t in spec.tapes.values())
    perf = performance(ts_s, equity, capital, 365.0 if always_open else 252.0)
    fills = ledger.fills(bot_id)
    cids = {o.id: o.client_order_id for o in ledger.orders(bot_id)}
    by_cid = set(cids.values())
    positions = ledger.positions(bot_id)
    events = [e for e in ledger.events if e.bot_id in (bot_id, None)]
    name = recipe.identity.name
    halts = tuple(_halt(e, name) for e in events if e.event.kind == "control.halted")
    return BacktestResult(
        bot=recipe.identity.name, instruments=tuple(spec.tapes), currency=recipe.identity.currency,
        strategy=recipe.strategy, params=dict(recipe.params),
        bars=sum(len(t) for t in spec.tapes.values()),
        first_bar=_iso(min(int(t.ts_s[0]) for t in spec.tapes.values())),
        last_bar=_iso(max(int(t.ts_s[-1]) for t in spec.tapes.values())),
        orders=len(cids), fills=len(fills),
        denials=sum(1 for e in events if e.bot_id == bot_id and e.event.kind == "risk.denied"),
        fees=float(sum((f.fee for f in fills), ZERO)), net_pnl=perf.net_pnl,
        return_pct=perf.return_pct, max_drawdown=perf.max_drawdown,
        max_drawdown_pct=perf.max_drawdown_pct, sharpe=perf.sharpe,
        final_positions={k: str(positions[k].quantity if k in positions else Decimal(0))
                         for k in spec.tapes},
        replay_s=replay_s,
        trades=tuple(Trade(f.ts.isoformat(), f.instrument, f.side.value, str(f.quantity),
                           str(f.price), str(f.fee),
                           f.client_order_id if f.client_order_id in by_cid else "")
                     for f in fills),
        halts=halts, days=_days(ts_s, pnl, events, bot_id, name), capital=capital,
        curve_ts_s=ts_s,
        curve=equity)


def _bot_curve(replay: FleetReplay, index: int, spec: ReplayBot
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The bot's P&L at every bar close of any of its instruments (each instrument's last
    known value carried forward)."""
    tapes: Mapping[str, BarTape] = spec.tapes
    ends = np.unique(np.concatenate([t.ts_s + t.interval_s for t in tapes.values()]))
    total = np.zeros(len(ends))
    for key, tape in tapes.items():
        curve = replay.trails[index].equity(key, tape)
        at = np.searchsorted(tape.ts_s + tape.interval_s, ends, side="right") - 1
        total += np.where(at >= 0, curve[np.maximum(at, 0)], 0.0)
    return ends.astype(np.int64), total


def _days(ts_s: npt.NDArray[np.int64], pnl: npt.NDArray[np.float64],
          events: list[RecordedEvent], bot_id: int, name: str) -> tuple[Day, ...]:
    days = ts_s // 86_400
    last = np.flatnonzero(np.r_[days[1:] != days[:-1], True])
    closes = pnl[last]
    changes = np.diff(np.r_[0.0, closes])
    denials: dict[str, Counter[str]] = {}
    halts: dict[str, list[Halt]] = {}
    for e in events:
        day = e.at.astimezone(UTC).date().isoformat()
        if e.event.kind == "risk.denied" and e.bot_id == bot_id:
            denials.setdefault(day, Counter())[e.event.code or "?"] += 1
        elif e.event.kind == "control.halted":
            halts.setdefault(day, []).append(_halt(e, name))
    return tuple(Day(_iso(int(days[i]) * 86_400)[:10], float(changes[n]),
                     dict(denials.get(_iso(int(days[i]) * 86_400)[:10], {})),
                     tuple(halts.get(_iso(int(days[i]) * 86_400)[:10], ())))
                 for n, i in enumerate(last))


def _halt(event: RecordedEvent, bot: str) -> Halt:
    return Halt(event.at.isoformat(), "fleet" if event.bot_id is None else "bot",
                event.event.code or "", str(event.event.data.get("reason", event.event.message)),
                bot)


def _iso(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat()


def fleet_result(results: Sequence[BacktestResult], usd_per_currency: Mapping[str, Decimal]
                 ) -> BacktestResult:
    """The fleet as one result, in USD: every bot's P&L added at each moment any of them
    closed a bar (each bot's last value carried forward), its fills, denials and halts."""
    if len(results) == 1:
        return results[0]
    rates = {r.bot: float(usd_per_currency[r.currency]) for r in results}
    ends = np.unique(np.concatenate([r.curve_ts_s for r in results if r.curve_ts_s is not None]))
    capital = sum(r.capital * rates[r.bot] for r in results)
    pnl = np.zeros(len(ends))
    for r in results:
        if r.curve_ts_s is None or r.curve is None:
            continue
        at = np.searchsorted(r.curve_ts_s, ends, side="right") - 1
        own = (r.curve - r.capital) * rates[r.bot]
        pnl += np.where(at >= 0, own[np.maximum(at, 0)], 0.0)
    always_open = all(k.startswith("CRYPTO:") for r in results for k in r.instruments)
    perf = performance(ends.astype(np.int64), capital + pnl, capital,
                       365.0 if always_open else 252.0)
    halts = tuple(sorted({h for r in results for h in r.halts}, key=lambda h: h.ts))
    return BacktestResult(
        bot="fleet", instruments=tuple(k for r in results for k in r.instruments),
        currency="USD", strategy=f"fleet of {len(results)} bots", params={},
        bars=sum(r.bars for r in results), first_bar=min(r.first_bar for r in results),
        last_bar=max(r.last_bar for r in results), orders=sum(r.orders for r in results),
        fills=sum(r.fills for r in results), denials=sum(r.denials for r in results),
        fees=sum(r.fees * rates[r.bot] for r in results), net_pnl=perf.net_pnl,
        return_pct=perf.return_pct, max_drawdown=perf.max_drawdown,
        max_drawdown_pct=perf.max_drawdown_pct, sharpe=perf.sharpe,
        final_positions={f"{r.bot} {k}": v for r in results
                         for k, v in r.final_positions.items()},
        replay_s=max((r.replay_s for r in results), default=0.0),
        trades=tuple(t for r in results for t in r.trades), halts=halts,
        days=_fleet_days(results, rates), capital=capital, curve_ts_s=ends.astype(np.int64),
        curve=capital + pnl)


def _fleet_days(results: Sequence[BacktestResult], rates: Mapping[str, float]
                ) -> tuple[Day, ...]:
    days: dict[str, tuple[float, Counter[str], list[Halt]]] = {}
    for r in results:
        for d in r.days:
            net, denials, halts = days.setdefault(d.day, (0.0, Counter(), []))
            denials.update(d.denials)
            halts.extend(h for h in d.halts if h not in halts)
            days[d.day] = (net + d.net_pnl * rates[r.bot], denials, halts)
    return tuple(Day(day, net, dict(denials), tuple(halts))
                 for day, (net, denials, halts) in sorted(days.items()))
