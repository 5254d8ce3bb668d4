"""Order path latency: signal to persisted fill, in-process sandbox, SQLite and PostgreSQL.

Every bar of a flip-flop strategy changes the signal, so every `TradingBot.on_bar` runs the
whole path a live bot runs: strategy -> trader -> kill switch read fresh from the database
-> risk rails -> write-ahead order row (committed) -> sandbox broker submit (matching) ->
answer, fill, position and event written in one transaction.

    python bench/order_path.py                       # SQLite file + PostgreSQL if reachable
    python bench/order_path.py --orders 5000 --json bench/results/order_path.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.sqlbook import SqlBook
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.core.market_data import Bar
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.engine.bot import InstrumentSlot, TradingBot
from fleetkit.engine.execution import BotIdentity, ExecutionEngine
from fleetkit.engine.trader import Sizing, Trader
from fleetkit.risk.rails import RiskLimits
from fleetkit.runtime.clock import ManualClock
from fleetkit.store.database import open_database, upgrade_database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.strategy.base import StrategyContext
from report import save

BTC = "CRYPTO:BTC/USDT"
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class FlipFlop:
    name: ClassVar[str] = "flip_flop"

    def __init__(self) -> None:
        self._long = False

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal:
        self._long = not self._long
        return Signal.at(SignalLevel.STRONG_BUY if self._long else SignalLevel.STRONG_SELL)


def build(db_url: str, book: str) -> tuple[TradingBot, ManualClock, list[Bar]]:
    database = open_database(db_url, require_schema=False)
    upgrade_database(database)
    bot_id = FleetStore(database.engine).register_bot(
        name=f"bench-{time.time_ns()}", market="CRYPTO", currency="USDT", strategy="flip_flop",
        mode="sandbox", settings={}, now=START)
    ledger = SqlLedger(database.engine, database.fleet_tag())
    clock = ManualClock(START)
    catalog = load_catalog()
    prices = InventedPrices(7, catalog, MarketCalendars())
    venue_book = MemoryBook() if book == "memory" else SqlBook(book)
    venue = SandboxVenue(prices, venue_book, clock,
                         VenueConfig(seed=7, partial_fill_probability=0.0))
    broker = SandboxBroker(venue, "bench")
    instrument = catalog[BTC].instrument
    engine = ExecutionEngine(BotIdentity(bot_id, "bench", "CRYPTO", "USDT"), ledger, broker,
                             broker, clock,
                             RiskLimits(Decimal(50_000), Decimal(100_000), Decimal(5), 120.0,
                                        None, None), {"USDT": Decimal(1)})
    bot = TradingBot({BTC: InstrumentSlot(instrument, FlipFlop(),
                                          Trader(instrument, Sizing(Decimal(10_000),
                                                                    Decimal(1))))},
                     engine, ledger, clock)
    bot.load()
    bars = broker.bars(BTC, 60, START - timedelta(days=3), START)
    return bot, clock, bars


def measure(db_url: str, book: str, orders: int) -> dict[str, Any]:
    bot, clock, history = build(db_url, book)
    bars = (history * (orders // len(history) + 2))[: orders + 50]
    latencies: list[float] = []
    for i, bar in enumerate(bars):
        clock.set(START + timedelta(seconds=i))  # each order at its own moment
        started = time.perf_counter()
        execution = bot.on_bar(BTC, bar)
        elapsed = time.perf_counter() - started
        if i >= 50 and execution is not None:  # the first few warm caches and connections
            latencies.append(elapsed * 1000)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 3)

    return {"orders": len(latencies), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "max_ms": round(latencies[-1], 3), "mean_ms": round(statistics.mean(latencies), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "sqlite ledger, in-memory sandbox book": (f"sqlite:///{tmp}/fleet.db", "memory"),
            "sqlite ledger, sqlite sandbox book": (f"sqlite:///{tmp}/fleet2.db",
                                                   f"sqlite:///{tmp}/sandbox.db"),
            "postgresql ledger, in-memory sandbox book": (args.pg, "memory"),
        }
        for name, (db_url, book) in cases.items():
            try:
                results[name] = measure(db_url, book, args.orders)
            except Exception as exc:  # e.g. no PostgreSQL here: say so, measure the rest
                results[name] = {"error": str(exc).splitlines()[0]}
            print(f"{name:45s} {results[name]}")
    save(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
