"""Replay speed: `fleet backtest` vs backtrader, same strategy, same bars, same trades.

Both replay the same one-minute BTC/USDT bars (invented by the sandbox, seed 7) with an SMA
crossover: long while the fast average is above the slow one, flat otherwise; orders fill
at the bar's close (backtrader: cheat-on-close); the position is floor(10,000 / close) in
lots of 0.00001; no fees, no slippage. The trade lists are compared fill by fill.

    pip install -e '.[bench]'
    python bench/backtest_vs_backtrader.py --bars 1000000 --fast 10 --slow 30
    python bench/backtest_vs_backtrader.py --bars 1000000 --fast 50 --slow 200 --json out.json

fleetkit's time is the replay (bars -> strategy -> trader -> risk rails -> write-ahead ->
sandbox matching -> ledger, plus the equity curve); backtrader's is `cerebro.run()` on a
preloaded pandas feed. Generating the bars is not timed for either.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from fleetkit.backtest.run import BacktestSpec, run_backtest
from fleetkit.backtest.tape import BarTape, generated_tape
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits
from report import publish

KEY = "CRYPTO:BTC/USDT"
SIZE_USD = Decimal(10_000)
LOT = Decimal("0.00001")
TICK = Decimal("0.01")


def fleetkit_run(tape: BarTape, fast: int, slow: int) -> tuple[float, list[tuple[Any, ...]]]:
    spec = BacktestSpec(
        "sma_cross", {"fast": fast, "slow": slow}, Sizing(SIZE_USD, Decimal(1)),
        RiskLimits(Decimal(10**9), Decimal(10**9), Decimal(50), 1e12, None, None),
        VenueConfig(fee_bps=Decimal(0), slippage_bps=Decimal(0), partial_fill_probability=0.0))
    result = run_backtest(spec, tape)
    trades = [(t.ts, t.side, Decimal(t.quantity), Decimal(t.price)) for t in result.trades]
    return result.replay_s, trades


def backtrader_run(tape: BarTape, fast: int, slow: int) -> tuple[float, list[tuple[Any, ...]]]:
    warnings.filterwarnings("ignore")
    import backtrader as bt
    import pandas as pd

    frame = pd.DataFrame({"open": tape.open, "high": tape.high, "low": tape.low,
                          "close": tape.close, "volume": tape.volume},
                         index=pd.to_datetime(tape.ts_s, unit="s"))
    trades: list[tuple[Any, ...]] = []

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(period=fast)
            self.slow = bt.ind.SMA(period=slow)

        def next(self) -> None:
            if self.fast[0] > self.slow[0] and not self.position:
                close = Decimal(repr(self.data.close[0]))
                size = (SIZE_USD / close / LOT).to_integral_value(ROUND_FLOOR) * LOT
                self.buy(size=float(size))
            elif self.fast[0] < self.slow[0] and self.position:
                self.close()

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                # Bars are stamped by their start; a fill at the close belongs to that bar.
                when = bt.num2date(order.executed.dt).replace(tzinfo=UTC)
                # backtrader's prices carry float noise (112432.56000000001): round to the tick.
                trades.append((when, "buy" if order.isbuy() else "sell",
                               Decimal(repr(abs(order.executed.size))).quantize(LOT),
                               Decimal(repr(order.executed.price)).quantize(TICK)))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.set_coc(True)
    cerebro.broker.setcash(10**12)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(SmaCross)
    started = time.perf_counter()
    cerebro.run()
    return time.perf_counter() - started, trades


def compare(ours: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> dict[str, Any]:
    # fleetkit stamps a fill with its bar's close, backtrader with the bar's start.
    ours_norm = [(datetime.fromisoformat(t[0]) - timedelta(minutes=1), t[1], t[2], t[3])
                 for t in ours]

    def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
        return bool(a[1:] == b[1:] and a[0] == b[0])

    identical = sum(1 for a, b in zip(ours_norm, theirs, strict=False) if same(a, b))
    first_difference = next((i for i, (a, b) in enumerate(zip(ours_norm, theirs, strict=False))
                             if not same(a, b)), None)
    return {"fleetkit_fills": len(ours), "backtrader_fills": len(theirs),
            "identical": identical, "first_difference_at": first_difference}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    catalog = load_catalog()
    prices = InventedPrices(7, catalog, MarketCalendars())
    tape = generated_tape(prices, catalog[KEY].instrument, datetime(2024, 1, 2, tzinfo=UTC),
                          args.bars, 60)
    ours_s, ours = fleetkit_run(tape, args.fast, args.slow)
    try:
        theirs_s, theirs = backtrader_run(tape, args.fast, args.slow)
    except ImportError:
        print("backtrader is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
                   f"{platform.python_version()}",
        "bars": len(tape), "strategy": f"sma_cross fast={args.fast} slow={args.slow}",
        "fleetkit_s": round(ours_s, 3), "fleetkit_bars_per_s": round(len(tape) / ours_s),
        "backtrader_s": round(theirs_s, 3), "backtrader_bars_per_s": round(len(tape) / theirs_s),
        "speedup": round(theirs_s / ours_s, 1), "trades": compare(ours, theirs),
    }
    publish(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
