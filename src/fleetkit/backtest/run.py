"""The backtester: a strategy replayed through the live engine — the same TradingBot,
Trader, risk rails and ExecutionEngine, the sandbox venue's own matching — on a tape of
bars with a simulated clock. Only the ledger is in memory instead of in a database."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.market_data import Bar
from fleetkit.core.numbers import ZERO
from fleetkit.engine.bot import InstrumentSlot, TradingBot
from fleetkit.engine.execution import BotIdentity, Execution, ExecutionEngine
from fleetkit.engine.sync import OrderSync, SyncReport
from fleetkit.engine.trader import Sizing, Trader
from fleetkit.risk.rails import RiskLimits
from fleetkit.backtest.metrics import performance
from fleetkit.backtest.tape import BarClock, BarTape, TapePrices
from fleetkit.store.memory import MemoryLedger
from fleetkit.strategy.base import build_strategy

BOT_ID = 1
ACCOUNT = "backtest"


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    strategy: str
    params: dict[str, Any]
    sizing: Sizing
    limits: RiskLimits
    venue: VenueConfig = field(default_factory=lambda: VenueConfig(partial_fill_probability=0.0))


@dataclass(frozen=True, slots=True)
class Trade:
    ts: str
    side: str
    quantity: str
    price: str
    fee: str


@dataclass(frozen=True, slots=True)
class BacktestResult:
    instrument: str
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
    final_position: str
    replay_s: float
    trades: tuple[Trade, ...] = ()
    # Mark-to-market equity (capital + net P&L, in `currency`) at every bar's close.
    curve_ts_s: npt.NDArray[np.int64] | None = None
    curve: npt.NDArray[np.float64] | None = None

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.replay_s if self.replay_s > 0 else float("inf")

    def as_json(self, *, with_trades: bool = False) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in (
            "instrument", "currency", "strategy", "params", "bars", "first_bar", "last_bar",
            "orders", "fills", "denials", "fees", "net_pnl", "return_pct", "max_drawdown",
            "max_drawdown_pct", "sharpe", "final_position", "replay_s")}
        data["bars_per_s"] = round(self.bars_per_s)
        for key in ("fees", "net_pnl", "return_pct", "max_drawdown", "max_drawdown_pct",
                    "replay_s"):
            data[key] = round(data[key], 6)
        if with_trades:
            data["trades"] = [t.__dict__ if hasattr(t, "__dict__") else _trade_dict(t)
                              for t in self.trades]
        return data


def _trade_dict(trade: Trade) -> dict[str, str]:
    return {"ts": trade.ts, "side": trade.side, "quantity": trade.quantity,
            "price": trade.price, "fee": trade.fee}


class _PositionChanges:
    """The position after each bar that changed it; the equity curve is rebuilt from these
    with numpy at the end, so quiet bars cost nothing (statistics, not accounting)."""

    __slots__ = ("average", "base", "quantity", "ts_s")

    def __init__(self) -> None:
        self.ts_s: list[float] = []
        self.quantity: list[float] = []
        self.average: list[float] = []
        self.base: list[float] = []  # realized P&L minus fees

    def record(self, bar: Bar, ledger: MemoryLedger, key: str) -> None:
        position = ledger.positions(BOT_ID).get(key)
        if position is None:
            return
        self.ts_s.append(bar.ts.timestamp())
        self.quantity.append(float(position.quantity))
        self.average.append(float(position.average_price))
        self.base.append(float(position.realized_pnl - position.fees))

    def equity(self, tape: BarTape, capital: float) -> npt.NDArray[np.float64]:
        """Mark-to-market equity at every bar's close."""
        at = np.searchsorted(tape.ts_s, np.asarray(self.ts_s, dtype=np.float64))
        segment = np.searchsorted(at, np.arange(len(tape)), side="right")
        quantity = np.r_[0.0, self.quantity][segment]
        average = np.r_[0.0, self.average][segment]
        base = np.r_[0.0, self.base][segment]
        curve: npt.NDArray[np.float64] = capital + base + quantity * (tape.close - average)
        return curve


def run_backtest(spec: BacktestSpec, tape: BarTape,
                 progress: Callable[[int], None] | None = None) -> BacktestResult:
    instrument = tape.instrument
    key = instrument.key
    clock = BarClock(tape)
    venue = SandboxVenue(TapePrices(tape), MemoryBook(), clock, spec.venue)
    broker = SandboxBroker(venue, ACCOUNT, match_on_call=False)  # after_each drives matching
    ledger = MemoryLedger("bt")
    identity = BotIdentity(BOT_ID, ACCOUNT, instrument.market, instrument.currency)
    engine = ExecutionEngine(identity, ledger, broker, broker, clock, spec.limits,
                             {instrument.currency: spec.sizing.usd_per_unit})
    bot = TradingBot({key: InstrumentSlot(instrument, build_strategy(spec.strategy, spec.params),
                                          Trader(instrument, spec.sizing))},
                     engine, ledger, clock, record_signals=False)
    clock.follow(bot.state.of(key))
    sync = OrderSync(identity, ledger, broker, clock, {key: instrument.lot_size})
    capital = float(spec.sizing.position_size_usd / spec.sizing.usd_per_unit)
    changes = _PositionChanges()

    def after(bar: Bar, execution: Execution | None) -> None:
        if bot.has_open_orders:  # resting limits / partial remainders fill as time passes
            venue.match(clock.now())
            sync.sync_fills(SyncReport())
            bot.refresh()
        changes.record(bar, ledger, key)

    started = time.perf_counter()
    done = 0
    for chunk in tape.chunks():
        bot.replay(key, chunk, after)
        done += len(chunk)
        if progress is not None:
            progress(done)
    curve = changes.equity(tape, capital)
    replay_s = time.perf_counter() - started
    return _result(spec, tape, ledger, curve, capital, replay_s)


def _result(spec: BacktestSpec, tape: BarTape, ledger: MemoryLedger,
            curve: npt.NDArray[np.float64], capital: float, replay_s: float) -> BacktestResult:
    key = tape.instrument.key
    always_open = tape.instrument.calendar == "24/7"
    perf = performance(tape.ts_s, curve, capital, 365.0 if always_open else 252.0)
    fills = ledger.fills(BOT_ID)
    position = ledger.positions(BOT_ID).get(key)
    fees = sum((f.fee for f in fills), ZERO)
    trades = tuple(Trade(f.ts.isoformat(), f.side.value, str(f.quantity), str(f.price),
                         str(f.fee)) for f in fills)
    return BacktestResult(
        instrument=key, currency=tape.instrument.currency, strategy=spec.strategy,
        params=dict(spec.params), bars=len(tape), first_bar=_iso(int(tape.ts_s[0])),
        last_bar=_iso(int(tape.ts_s[-1])), orders=len(ledger.orders(BOT_ID)), fills=len(fills),
        denials=sum(1 for e in ledger.events if e.event.kind == "risk.denied"),
        fees=float(fees), net_pnl=perf.net_pnl, return_pct=perf.return_pct,
        max_drawdown=perf.max_drawdown, max_drawdown_pct=perf.max_drawdown_pct,
        sharpe=perf.sharpe,
        final_position=str(position.quantity if position else Decimal(0)),
        replay_s=replay_s, trades=trades, curve_ts_s=tape.ts_s, curve=curve)


def _iso(ts_s: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_s, UTC).isoformat()
