"""Chaos runs: a real fleet on PostgreSQL, SIGKILLs at random moments, then the invariants.

A run starts `fleet up` (the sandbox broker as a service, one process per bot, the
supervisor) with bots that trade on every 5-second bar, then for N rounds kills a random
bot — sometimes the broker — with SIGKILL, and now and then halts a bot for a few seconds
from the CLI. The supervisor restarts what was killed. At the end the fleet is stopped and
every invariant is checked against the broker's own book:

- no client order id was submitted twice to the broker (a bot never resends);
- no fill was lost or applied twice (ledger fills = broker fills, by fill id);
- every bot's ledger positions equal its broker positions;
- no order the rails accepted broke max order value or max position;
- nothing was admitted while its bot was halted;
- no bot ever refused a broker fill or halted on a reconciliation mismatch (kills alone
  must never make ledger and broker disagree).

Before checking, each bot's ledger gets the recovery a restart would give it (pending
orders settled by lookup, fills after its cursor applied): the fleet stops bots before the
broker, and a partial fill's remainder may fill in between — that is not a lost fill unless
recovery misses it.

Used by tests/chaos (a short seeded run in CI) and bench/chaos_soak.py (long soaks).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fleetkit.testing.loopback import free_port

STRATEGY_MODULE = '''
"""A chaos-run strategy: long on even 5-second bars, flat on odd ones — an order every bar,
decided by the bar's time alone so a restarted bot decides exactly as it would have."""

from typing import ClassVar

from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.strategy.base import StrategyParams, register


class FlipParams(StrategyParams):
    pass


class Flipper:
    name: ClassVar[str] = "chaos_flipper"

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar, ctx):
        even = int(bar.ts.timestamp()) // 5 % 2 == 0
        return Signal.at(SignalLevel.STRONG_BUY if even else SignalLevel.STRONG_SELL)


register("chaos_flipper", "trades every bar (chaos runs)", FlipParams)(lambda params: Flipper())
'''

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "BNB/USDT", "ADA/USDT", "LTC/USDT",
           "LINK/USDT", "DOGE/USDT")
MAX_ORDER_VALUE_USD = Decimal(20_000)
MAX_POSITION_VALUE_USD = Decimal(40_000)
HALT_TOLERANCE = timedelta(seconds=1)


# Fault mixes for chaos runs. Delayed fill reports are left out on purpose: they make the
# broker's positions disagree with its fill feed, which (correctly) halts bots on mismatch;
# they are exercised by tests/integration/sandbox/test_faults_service.py instead.
STANDARD_FAULTS: tuple[tuple[str, float], ...] = (
    ("drop_ack_probability", 0.05), ("reject_probability", 0.03),
    ("error_5xx_probability", 0.03), ("refuse_probability", 0.03),
    ("latency_spike_probability", 0.05), ("latency_spike_ms", 400),
    ("duplicate_fill_probability", 0.15), ("fill_after_cancel_probability", 0.5),
)
GARBAGE_FAULTS: tuple[tuple[str, float], ...] = (*STANDARD_FAULTS,
                                                  ("garbage_probability", 0.03))
FAULT_PRESETS = {"none": (), "standard": STANDARD_FAULTS, "garbage": GARBAGE_FAULTS}


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    rounds: int = 20
    bots: int = 6
    seed: int = 1
    broker_kill_probability: float = 0.15
    halt_probability: float = 0.15
    pause_s: tuple[float, float] = (1.0, 4.0)
    settle_s: float = 20.0
    partial_fill_probability: float = 0.3
    # sandbox.faults to run under (see fleetkit.brokers.sandbox.faults): acks dropped,
    # rejects, 5xx, refused connections, latency spikes, duplicate fills, garbage ...
    faults: tuple[tuple[str, float], ...] = ()

    @property
    def garbage(self) -> bool:
        return any(name == "garbage_probability" and value > 0 for name, value in self.faults)


@dataclass(slots=True)
class ChaosReport:
    rounds: int = 0
    skipped: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    halts: int = 0
    orders: int = 0
    fills: int = 0
    broker_submissions: int = 0
    duplicate_submissions: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    fills_refused: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kills"] = dict(self.kills)
        data["faults_injected"] = {k: v for k, v in self.faults_injected.items() if v}
        return data


def write_config(home: Path, plan: ChaosPlan, port: int) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "chaos_strategies.py").write_text(STRATEGY_MODULE, encoding="utf-8")
    bots = "\n".join(
        f'  - {{name: chaos-{i}, market: CRYPTO, symbols: ["{SYMBOLS[i % len(SYMBOLS)]}"], '
        f"strategy: chaos_flipper}}" for i in range(plan.bots))
    config = home / "fleet.yaml"
    faults = ", ".join(f"{name}: {value}" for name, value in plan.faults)
    faults = f", faults: {{seed: {plan.seed}, {faults}}}" if faults else ""
    config.write_text(f"""
plugins: [chaos_strategies]
sandbox: {{port: {port}, seed: {plan.seed}, time_mode: real,
          partial_fill_probability: {plan.partial_fill_probability}{faults}}}
risk: {{max_order_value_usd: {MAX_ORDER_VALUE_USD},
        max_position_value_usd: {MAX_POSITION_VALUE_USD},
        price_collar_pct: 5, max_price_age_s: 60, daily_loss_limit_usd: 1000000}}
fleet_risk: {{daily_loss_limit_usd: 10000000}}
runtime: {{heartbeat_interval_s: 1, stale_after_s: 15, reconcile_interval_s: 15,
           restart_backoff_initial_s: 0.2, restart_backoff_max_s: 2, unknown_order_grace_s: 3,
           broker_timeout_s: 2,
           hang_timeout_s: 60, bar_settle_s: 0.3}}
defaults: {{bar_interval: 5s, position_size_usd: 5000}}
bots:
{bots}
""", encoding="utf-8")
    return config


class ChaosRun:
    """One chaos run in `home` against the fleet database at `db_url` (PostgreSQL)."""

    def __init__(self, plan: ChaosPlan, home: Path, db_url: str,
                 say: Callable[[str], None] = lambda message: None) -> None:
        self.plan = plan
        self.home = home
        self.db_url = db_url
        self.say = say
        self.port = free_port()
        self.config = write_config(home, plan, self.port)
        self.env = {**os.environ, "FLEET_HOME": str(home / "var"), "FLEET_DB_URL": db_url,
                    "FLEET_LOG_FORMAT": "json"}
        self.env.pop("FLEET_CONFIG", None)
        self.rng = random.Random(plan.seed)  # noqa: S311 - reproducible chaos, not security
        self.report = ChaosReport()
        # The broker counts faults in memory; each kill of it starts a new count.
        self._faults_this_broker: dict[str, int] = {}
        self.halt_windows: list[tuple[str, datetime, datetime]] = []

    # --- driving the fleet ----------------------------------------------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetkit", *args,  # noqa: S603
                               "--config", str(self.config)], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=120, check=False)

    def run(self) -> ChaosReport:
        started = time.monotonic()
        fleet = subprocess.Popen([sys.executable, "-m", "fleetkit", "up", "--no-live",  # noqa: S603
                                  "--config", str(self.config)], env=self.env, cwd=self.home,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_for(lambda: self._cycled() >= self.plan.bots, 120, "every bot's first cycle")
            for round_number in range(self.plan.rounds):
                time.sleep(self.rng.uniform(*self.plan.pause_s))
                self._round(round_number)
            self._resume_all()
            time.sleep(self.plan.settle_s)  # let restarted bots reconcile and trade on
            if self.plan.faults:
                self._sample_faults()
                self._bank_faults()
        finally:
            fleet.send_signal(signal.SIGTERM)
            fleet.wait(timeout=60)
        self.report.seconds = round(time.monotonic() - started, 1)
        self.check()
        return self.report

    def _sample_faults(self) -> None:
        from fleetkit.brokers.sandbox.client import SandboxClient
        from fleetkit.core.errors import FleetError

        try:
            with SandboxClient(f"http://127.0.0.1:{self.port}", "chaos-admin",
                               timeout_s=2.0) as client:
                self._faults_this_broker = dict(client.stats().faults)
        except FleetError:
            pass  # the broker is restarting; the last sample stands

    def _bank_faults(self) -> None:
        self.report.faults_injected.update(
            {k: v for k, v in self._faults_this_broker.items() if k != "requests"})
        self._faults_this_broker = {}

    def _round(self, round_number: int) -> None:
        self.report.rounds += 1
        if self.plan.faults:
            self._sample_faults()
        if self.rng.random() < self.plan.halt_probability:
            self._halt_briefly()
        # A target still restarting from the last kill has no live process yet (its heartbeat
        # still names the dead pid): pick again until something is alive. A restart takes a
        # few seconds on a loaded machine, so the wait is generous.
        deadline = time.monotonic() + 30.0
        while True:
            target = ("broker" if self.rng.random() < self.plan.broker_kill_probability
                      else f"bot:chaos-{self.rng.randrange(self.plan.bots)}")
            pid = self._pid(target)
            if pid is not None:
                break
            if time.monotonic() > deadline:
                self.say(f"round {round_number}: nothing alive to kill for 30 s; skipped")
                self.report.skipped += 1
                return
            time.sleep(0.25)
        if target == "broker" and self.plan.faults:
            self._sample_faults()
            self._bank_faults()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it died between the check and the signal
            self.report.skipped += 1
            return
        self.report.kills[target.split(":")[0]] += 1
        self.say(f"round {round_number}: SIGKILL {target} (pid {pid})")

    def _halt_briefly(self) -> None:
        name = f"chaos-{self.rng.randrange(self.plan.bots)}"
        if self.cli("halt", name, "--reason", "chaos halt").returncode != 0:
            return
        time.sleep(self.rng.uniform(1.0, 3.0))
        self.cli("resume", name)
        self.report.halts += 1

    def _resume_all(self) -> None:
        for i in range(self.plan.bots):
            self.cli("resume", f"chaos-{i}")

    def _wait_for(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise RuntimeError(f"chaos run: timed out waiting for {what}")

    def _status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        return dict(json.loads(result.stdout)) if result.returncode == 0 else {"bots": []}

    def _cycled(self) -> int:
        return sum(1 for b in self._status()["bots"] if b["cycles"] >= 1)

    def _pid(self, component: str) -> int | None:
        from fleetkit.store.database import open_database
        from fleetkit.store.fleet import FleetStore

        database = open_database(self.db_url)
        try:
            beat = next((b for b in FleetStore(database.engine).heartbeats()
                         if b.component == component), None)
        finally:
            database.dispose()
        if beat is None or beat.status == "stopped" or beat.pid is None:
            return None
        return beat.pid if _alive(beat.pid) else None

    # --- the invariants -------------------------------------------------------------------

    def check(self) -> None:
        from fleetkit.store.database import open_database

        database = open_database(self.db_url)
        venue = self._venue()
        try:
            self.halt_windows = _halt_windows(database)
            for i in range(self.plan.bots):
                settle_like_next_boot(database, venue, f"chaos-{i}")
                self._check_bot(database, venue, f"chaos-{i}")
            self._check_submissions()
            self._check_audit(database)
        finally:
            database.dispose()

    def _check_audit(self, database: Any) -> None:
        from sqlalchemy import func, select

        from fleetkit.store.schema import events

        with database.engine.connect() as conn:
            counts = dict(conn.execute(select(events.c.kind, func.count()).where(
                events.c.kind.in_(("fill.refused", "reconcile.mismatch"))
            ).group_by(events.c.kind)).all())
        self.report.fills_refused = counts.get("fill.refused", 0)
        for kind, count in counts.items():
            if kind == "fill.refused" and self.plan.garbage:
                continue  # made-up fills from the garbage fault must be refused, not applied
            self._expect(count == 0, f"{count} {kind} event(s) during the run")

    def _venue(self) -> Any:
        from fleetkit.brokers.sandbox.catalog import load_catalog
        from fleetkit.brokers.sandbox.config import VenueConfig
        from fleetkit.brokers.sandbox.prices import InventedPrices
        from fleetkit.brokers.sandbox.sqlbook import SqlBook
        from fleetkit.brokers.sandbox.venue import SandboxVenue
        from fleetkit.calendars.market_calendars import MarketCalendars
        from fleetkit.calendars.overrides import load_overrides
        from fleetkit.runtime.clock import WallClock

        # The same calendars the fleet's broker used: the shipped holiday overrides.
        calendars = MarketCalendars(load_overrides(None).for_market_calendars())
        book = SqlBook(f"sqlite:///{self.home / 'var' / 'sandbox.db'}")
        return SandboxVenue(InventedPrices(self.plan.seed, load_catalog(), calendars),
                            book, WallClock(), VenueConfig(seed=self.plan.seed))

    def _check_bot(self, database: Any, venue: Any, name: str) -> None:
        from sqlalchemy import select

        from fleetkit.store.fleet import FleetStore
        from fleetkit.store.ledger import SqlLedger
        from fleetkit.store.schema import fills, orders

        bot_id = FleetStore(database.engine).bot(name).id
        ledger = SqlLedger(database.engine, database.fleet_tag())
        with database.engine.connect() as conn:
            fill_rows = list(conn.execute(select(fills).where(fills.c.bot_id == bot_id)
                                          .order_by(fills.c.ts, fills.c.id)))
            ledger_orders = list(conn.execute(select(orders).where(orders.c.bot_id == bot_id)))
        ledger_fills = [r.broker_fill_id for r in fill_rows]
        self._check_position_limit(name, fill_rows)
        broker_fills = _all_fills(venue, name)
        self.report.orders += len(ledger_orders)
        self.report.fills += len(ledger_fills)
        self._expect(len(ledger_fills) == len(set(ledger_fills)),
                     f"{name}: a fill was applied twice")
        missing = set(broker_fills) - set(ledger_fills)
        extra = set(ledger_fills) - set(broker_fills)
        self._expect(not missing, f"{name}: {len(missing)} broker fill(s) never applied")
        self._expect(not extra, f"{name}: {len(extra)} ledger fill(s) the broker never reported")
        ours = {k: p.quantity for k, p in ledger.positions(bot_id).items() if p.quantity}
        theirs = {p.instrument: p.quantity for p in venue.positions(name)}
        self._expect(ours == theirs, f"{name}: ledger {ours} != broker {theirs}")
        for order in ledger_orders:
            self._check_order(name, order)

    def _check_position_limit(self, name: str, fill_rows: list[Any]) -> None:
        """Replay the fills: the position never exceeded the limit (5% slack for the price
        moving within the collar between the decision and the fill)."""
        held: dict[str, Decimal] = {}
        for row in fill_rows:
            signed = row.quantity if row.side == "buy" else -row.quantity
            held[row.instrument] = held.get(row.instrument, Decimal(0)) + signed
            value = abs(held[row.instrument]) * row.price
            self._expect(value <= MAX_POSITION_VALUE_USD * Decimal("1.05"),
                         f"{name}: position in {row.instrument} reached {value} USD")

    def _check_order(self, name: str, order: Any) -> None:
        value = order.quantity * order.reference_price
        self._expect(value <= MAX_ORDER_VALUE_USD,
                     f"{name}: order {order.client_order_id} worth {value} passed the rails")
        # An order admitted within a second of the halt read its kill switch before the
        # halt committed (the admission reads it in the same transaction it writes in).
        for bot, started, ended in self.halt_windows:
            inside = started + HALT_TOLERANCE < order.created_at < ended
            self._expect(not (bot == name and inside),
                         f"{name}: order {order.client_order_id} admitted at "
                         f"{order.created_at.isoformat()} while halted")

    def _check_submissions(self) -> None:
        """Counts from the broker's own record of every submission, duplicates included."""
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{self.home / 'var' / 'sandbox.db'}")
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT duplicate, COUNT(*) FROM sandbox_submissions "
                                         "GROUP BY duplicate")).all()
        finally:
            engine.dispose()
        counts = {bool(duplicate): int(count) for duplicate, count in rows}
        self.report.broker_submissions = sum(counts.values())
        self.report.duplicate_submissions = counts.get(True, 0)
        self._expect(self.report.duplicate_submissions == 0,
                     f"{self.report.duplicate_submissions} client order id(s) were submitted "
                     "to the broker more than once")

    def _expect(self, condition: bool, violation: str) -> None:
        if not condition:
            self.report.violations.append(violation)


def settle_like_next_boot(database: Any, venue: Any, name: str) -> None:
    """Do what bot `name`'s next boot would do against a stopped fleet's sandbox book:
    settle its pending orders and apply the fills it missed.

    A stopped fleet's ledgers may lag the broker by fills that happened after a bot
    stopped (the venue keeps matching until the service stops); comparing ledger and
    broker is only meaningful after this."""
    from fleetkit.brokers.sandbox.broker import SandboxBroker
    from fleetkit.engine.execution import BotIdentity
    from fleetkit.engine.sync import OrderSync, SyncReport
    from fleetkit.runtime.clock import WallClock
    from fleetkit.store.fleet import FleetStore
    from fleetkit.store.ledger import SqlLedger

    bot = FleetStore(database.engine).bot(name)
    sync = OrderSync(BotIdentity(bot.id, name, bot.market, bot.currency),
                     SqlLedger(database.engine, database.fleet_tag()),
                     SandboxBroker(venue, name, match_on_call=False), WallClock(), {},
                     unknown_after_s=0.0)
    sync.resolve_pending(SyncReport())
    sync.sync_fills(SyncReport())
    sync.refresh_open_orders()
    sync.sync_fills(SyncReport())


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie awaiting its parent's wait()."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _halt_windows(database: Any) -> list[tuple[str, datetime, datetime]]:
    """Operator halt-to-resume windows per bot, from the audit trail (commit-time truth)."""
    from sqlalchemy import select

    from fleetkit.store.schema import bots, events

    with database.engine.connect() as conn:
        rows = conn.execute(select(bots.c.name, events.c.kind, events.c.created_at)
                            .join(bots, bots.c.id == events.c.bot_id)
                            .where(events.c.kind.in_(("control.halted", "control.active")))
                            .order_by(events.c.id)).all()
    windows: list[tuple[str, datetime, datetime]] = []
    open_since: dict[str, datetime] = {}
    for name, kind, at in rows:
        if kind == "control.halted":
            open_since.setdefault(name, at)
        elif name in open_since:
            windows.append((name, open_since.pop(name), at))
    now = datetime.now(UTC)
    windows += [(name, since, now) for name, since in open_since.items()]
    return windows


def _all_fills(venue: Any, account: str) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        page = venue.fills_since(account, cursor, 1000)
        found.extend(f.broker_fill_id for f in page.fills)
        if not page.more:
            return found
        cursor = page.cursor

