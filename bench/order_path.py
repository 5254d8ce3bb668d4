"""Order path latency: signal to persisted fill, in-process sandbox, SQLite and PostgreSQL.

Every bar of a flip-flop strategy changes the signal, so every `TradingBot.on_bar` runs the
whole path a live bot runs: strategy -> trader -> kill switch read fresh from the database
-> risk rails -> write-ahead order row (committed) -> sandbox broker submit (matching) ->
answer, fill, position and event written in one transaction.

On PostgreSQL the ledger runs as the schema's owner and, as production bots do, as the
bot's own login role (row-level security and migration 0011's BEFORE triggers on). Each
PostgreSQL run gets a fresh schema, dropped afterwards. Statements are counted per order
(SQLAlchemy's cursor executions, plus the BEGIN psycopg sends and every COMMIT): on
PostgreSQL each is one round trip to the server.

    python bench/order_path.py                       # SQLite file + PostgreSQL if reachable
    python bench/order_path.py --orders 3000 --repeat 5 --json bench/results/order_path.json
    python bench/order_path.py --show-statements     # one order's statements, then exit
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

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
from fleetkit.store.database import Database, open_database, upgrade_database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.roles import ensure_roles
from fleetkit.strategy.base import StrategyContext
from report import save

BTC = "CRYPTO:BTC/USDT"
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WARM_UP = 50  # the first orders warm caches, prepared statements and connections


class FlipFlop:
    name: ClassVar[str] = "flip_flop"

    def __init__(self) -> None:
        self._long = False

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal:
        self._long = not self._long
        return Signal.at(SignalLevel.STRONG_BUY if self._long else SignalLevel.STRONG_SELL)


@dataclass
class StatementCounter:
    """Statements the ledger's engine sends: cursor executions, psycopg's implicit BEGIN
    (PostgreSQL; SQLite's BEGIN is a cursor execution already) and COMMITs."""

    count: int = 0
    log: list[str] | None = None
    _implicit_begin: bool = field(default=False, repr=False)

    def attach(self, engine: Engine) -> None:
        self._implicit_begin = engine.dialect.name == "postgresql"
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    def _note(self, what: str) -> None:
        self.count += 1
        if self.log is not None:
            self.log.append(" ".join(what.split()))

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._note(statement)

    def _begin(self, _conn: Any) -> None:
        if self._implicit_begin:
            self._note("BEGIN (psycopg, before the first statement)")

    def _commit(self, _conn: Any) -> None:
        self._note("COMMIT")

    def _rollback(self, _conn: Any) -> None:
        self._note("ROLLBACK")


@dataclass
class Target:
    """Where a case's ledger lives: the URL the bot's ledger connects with, and how to
    register the bot (as the owner) first."""

    ledger_url: str
    owner: Database
    as_role: Callable[[str], str] | None = None  # bot name -> the URL of its own role


def build(target: Target, book: str, counter: StatementCounter
          ) -> tuple[TradingBot, ManualClock, list[Bar], Database]:
    name = f"bench-{time.time_ns()}"
    bot_id = FleetStore(target.owner.engine).register_bot(
        name=name, market="CRYPTO", currency="USDT", strategy="flip_flop",
        mode="sandbox", settings={}, now=START)
    url = target.as_role(name) if target.as_role is not None else target.ledger_url
    database = open_database(url) if target.as_role is not None else target.owner
    counter.attach(database.engine)
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
    return bot, clock, bars, database


def measure(target: Target, book: str, orders: int) -> dict[str, Any]:
    counter = StatementCounter()
    bot, clock, history, database = build(target, book, counter)
    try:
        bars = (history * (orders // len(history) + 2))[: orders + WARM_UP]
        latencies: list[float] = []
        statements: list[int] = []
        for i, bar in enumerate(bars):
            clock.set(START + timedelta(seconds=i))  # each order at its own moment
            before = counter.count
            started = time.perf_counter()
            execution = bot.on_bar(BTC, bar)
            elapsed = time.perf_counter() - started
            if i >= WARM_UP and execution is not None:
                latencies.append(elapsed * 1000)
                statements.append(counter.count - before)
    finally:
        if database is not target.owner:
            database.dispose()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 3)

    return {"orders": len(latencies), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "max_ms": round(latencies[-1], 3), "mean_ms": round(statistics.mean(latencies), 3),
            "statements_per_order": round(statistics.mean(statements), 2)}


def show_statements(target: Target) -> None:
    """Print the statements of one order (after the warm-up) on `target`."""
    counter = StatementCounter()
    bot, clock, history, database = build(target, "memory", counter)
    for i, bar in enumerate(history[: WARM_UP + 1]):
        clock.set(START + timedelta(seconds=i))
        counter.log = [] if i == WARM_UP else None
        bot.on_bar(BTC, bar)
    for n, statement in enumerate(counter.log or [], 1):
        print(f"{n:3d}  {statement[:160]}")
    if database is not target.owner:
        database.dispose()


@contextmanager
def sqlite_target(path: Path) -> Iterator[Target]:
    url = f"sqlite:///{path}"
    database = open_database(url, require_schema=False)
    upgrade_database(database)
    try:
        yield Target(url, database)
    finally:
        database.dispose()


@contextmanager
def postgresql_schema(base_url: str) -> Iterator[Database]:
    """A fresh schema in the database at `base_url`, migrated; dropped afterwards."""
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(make_url(base_url).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base_url}?options={quote(f'-csearch_path={schema}')}"
    database = open_database(url, require_schema=False)
    try:
        upgrade_database(database)
        yield database
    finally:
        database.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def postgresql_target(base_url: str, *, bot_role: bool) -> Iterator[Target]:
    with postgresql_schema(base_url) as owner:
        url = owner.engine.url.render_as_string(hide_password=False)
        if not bot_role:
            yield Target(url, owner)
            return
        prefix = f"fkbench{secrets.token_hex(3)}_"
        password = secrets.token_hex(16)

        def as_role(bot: str) -> str:
            role = f"{prefix}{bot}"
            ensure_roles(owner.engine, [bot], prefix=prefix, passwords={role: password})
            return make_url(url).set(username=role, password=password).render_as_string(
                hide_password=False)

        try:
            yield Target(url, owner, as_role)
        finally:
            with owner.engine.begin() as conn:
                for (role,) in conn.execute(text(
                        "SELECT rolname FROM pg_roles WHERE starts_with(rolname, :p)"),
                        {"p": prefix}):
                    conn.execute(text(f'DROP OWNED BY "{role}"'))
                    conn.execute(text(f'DROP ROLE "{role}"'))


CASES: dict[str, tuple[str, str]] = {
    # name: (ledger, sandbox book)
    "sqlite ledger, in-memory sandbox book": ("sqlite", "memory"),
    "sqlite ledger, sqlite sandbox book": ("sqlite", "sqlite"),
    "postgresql ledger as owner, in-memory sandbox book": ("pg-owner", "memory"),
    "postgresql ledger as the bot's role, in-memory sandbox book": ("pg-bot", "memory"),
}


@contextmanager
def target_for(ledger: str, tmp: Path, run: int, pg_url: str) -> Iterator[Target]:
    if ledger == "sqlite":
        with sqlite_target(tmp / f"fleet-{run}-{secrets.token_hex(2)}.db") as target:
            yield target
    else:
        with postgresql_target(pg_url, bot_role=ledger == "pg-bot") as target:
            yield target


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over runs of each figure, and every run."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"], "runs": runs}
    keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "statements_per_order")
    return {"orders_per_run": ok[0]["orders"], "runs": len(ok),
            **{f"median_{k}": round(statistics.median(r[k] for r in ok), 3) for k in keys},
            "each_run": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every case, taken in turn; the medians are reported")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--cases", nargs="*", choices=sorted({v[0] for v in CASES.values()}),
                        help="only these ledgers (default: all)")
    parser.add_argument("--show-statements", action="store_true",
                        help="print one order's statements per ledger and exit")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.show_statements:
            for ledger in ("sqlite", "pg-owner", "pg-bot"):
                print(f"--- {ledger}")
                with target_for(ledger, tmp, 0, args.pg) as target:
                    show_statements(target)
            return 0
        results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "orders": args.orders, "repeat": args.repeat}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
        for run in range(args.repeat):
            for name, (ledger, book) in CASES.items():
                if args.cases and ledger not in args.cases:
                    continue
                book_url = "memory" if book == "memory" else f"sqlite:///{tmp}/book-{run}.db"
                try:
                    with target_for(ledger, tmp, run, args.pg) as target:
                        figures = measure(target, book_url, args.orders)
                except Exception as exc:  # e.g. no PostgreSQL here: say so, measure the rest
                    figures = {"error": str(exc).splitlines()[0]}
                runs[name].append(figures)
                print(f"run {run + 1}: {name:60s} {figures}", flush=True)
        for name, done in runs.items():
            if done:
                results[name] = summarise(done)
                shown = {k: v for k, v in results[name].items() if k != "each_run"}
                print(f"{name:60s} {shown}")
    save(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
