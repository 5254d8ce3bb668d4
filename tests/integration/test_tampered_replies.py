"""A real bot against a broker that lies: every kind of bad reply, through TamperingProxy.

A SandboxService on loopback, a TamperingProxy in front of it, and a BotRunner trading
through the proxy on SQLite and PostgreSQL, on a simulated clock (every wait moves it). The
bot's strategy wants an order at every bar close and always holds a position (a full one on
even minutes, a third on odd ones). The story of every test, in clock time:

    15:01:30  boot, reconcile (cash baseline taken), buy (honest)
    15:01:50  reconcile: the fills cursor is past the buy
    15:01:55  the case's tampers are switched on
    15:02:01  bar close: sell two thirds (its answers may lie)
    15:02:11  reconcile (fills, open orders, positions, average prices, cash)
    15:03:01  bar close: buy back, unless halted ... until 15:03:30

For each kind (CASES, one table) the test asserts: the outcome (refused and halted with the
right source, paused and recovered, or settled), the event that says why, the ledger holding
no number the honest broker did not say (its positions those of the broker's own book, or
those before the lie), no order after a halt, no order sent twice, and no exception out of
the runner.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import create_engine, select, text

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.market_data import Bar
from fleetkit.core.orders import OrderStatus
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.database import Database
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import events, fills, heartbeats, orders
from fleetkit.strategy.base import StrategyContext, StrategyParams, register, unregister
from fleetkit.testing import Route, Tamper, TamperingProxy
from fleetkit.testing.tampers import (
    cash_plus,
    doubled,
    fill_beyond_limit,
    fill_fee_times,
    fill_field,
    fill_price_times,
    fill_without,
    fills_held_back,
    ghost_open_order,
    halved,
    order_field,
    other_order,
    other_side,
    plus_one_percent,
    position_times,
    replayed_fill,
    stranger_fill,
)
from tests.support import migrated_database, pg_schema_url

BACKENDS = ("sqlite", "postgresql")  # as tests/conftest.py's `backend` fixture
T0 = datetime(2026, 12, 1, 15, 1, 30, tzinfo=UTC)
SWITCH_ON = T0 + timedelta(seconds=25)
END = T0 + timedelta(minutes=2)
MAX_STEPS = 60  # ~15 are needed; more means the runner stopped moving the clock forward
BTC = "CRYPTO:BTC/USDT"
TICK = Decimal("0.01")  # BTC/USDT's in the sandbox catalog


def just_over(quantity: str) -> str:
    """A hair over the quantity: the smallest overfill a ledger must refuse."""
    return str(Decimal(quantity) + Decimal("0.00000001"))


# --- every kind of bad reply, and what the bot must do about it -----------------------------

Ledger = Literal["as broker", "as before"]


@dataclass(frozen=True)
class Case:
    """`event`: the kind of event that must say why (`says` in its message); `halt`: the
    source the bot must be halted by (None: it must still be trading); `ledger`: what its
    positions must equal at the end — the honest broker's book, or what they were before
    the tampers were switched on (a refused fill the broker did book)."""

    tampers: tuple[Tamper, ...]
    event: str | None
    says: str
    halt: HaltSource | None
    ledger: Ledger = "as broker"
    order_type: str = "market"


# A fill first met in a submit answer and met again with other numbers is a rewrite, not a
# refusal: to lie about a fill in the fills page the bot has not seen, the submit answer
# carries none (as at many venues, whose fills come only in the fills stream).
HELD_BACK = fills_held_back()
REFUSED, REWRITTEN, MISMATCH = "fill.refused", "fill.rewritten", "reconcile.mismatch"
PAUSED, UNKNOWN = "broker.unavailable", "order.outcome_unknown"
BROKER, RECONCILIATION = HaltSource.BROKER_REPLY, HaltSource.RECONCILIATION

CASES: dict[str, Case] = {
    # implausible fills: refused, recorded, the bot halted (broker_reply)
    "fill price x1000 in the fills page": Case(
        (HELD_BACK, fill_price_times(1000)), REFUSED, "from the reference price", BROKER,
        "as before"),
    "fill price x1000 in the submit answer": Case(
        (fill_price_times(1000, Route.SUBMIT),), REFUSED, "from the reference price", BROKER),
    "a limit fill one tick worse than its limit": Case(
        (fill_beyond_limit(TICK),), REFUSED, "worse than the sell limit", BROKER,
        order_type="limit"),
    "a market fill 20% off its reference price": Case(
        (HELD_BACK, fill_price_times("1.2")), REFUSED, "% from the reference price",
        BROKER, "as before"),
    "a fee x10^6": Case(
        (fill_fee_times(10**6, Route.SUBMIT),), REFUSED, "charges a fee of", BROKER),
    "a fill for the other side": Case(
        (fill_field("side", other_side, Route.SUBMIT),), REFUSED, "differs from the order's",
        BROKER),
    "a fill for another instrument": Case(
        (HELD_BACK, fill_field("instrument", "CRYPTO:ETH/USDT")), REFUSED,
        "is for CRYPTO:ETH/USDT", BROKER, "as before"),
    "a fill quantity just over the remainder": Case(
        (HELD_BACK, fill_field("quantity", just_over)), REFUSED, "would overfill", BROKER,
        "as before"),
    # history rewritten: a fill id seen before, with other numbers
    "a fill id reported again with a new price": Case(
        (fill_field("price", plus_one_percent),), REWRITTEN, "other contents (price", BROKER),
    "an old fill id replayed with a new quantity": Case(
        (replayed_fill("the first fill, halved", quantity=halved),), REWRITTEN,
        "other contents (quantity", BROKER),
    # someone else's trade in the account: refused, recorded, left to reconciliation
    "a fill for an unknown client order id": Case(
        (stranger_fill("desk-1").only_first(1),), REFUSED, "no order with client id 'desk-1'",
        None),
    # garbage the wire refuses: the bot pauses as in an outage, recovers, resolves by lookup
    "a NaN fill price": Case(
        (fill_field("price", "NaN").only_first(1),), PAUSED, "'NaN' is not a finite number",
        None),
    "a zero fill price": Case(
        (fill_field("price", "0", Route.SUBMIT).only_first(1),), UNKNOWN,
        "price: must be positive", None),
    "a negative fill price": Case(
        (fill_field("price", "-5").only_first(1),), PAUSED, "price: must be positive", None),
    "a negative fee": Case(
        (fill_field("fee", "-1", Route.SUBMIT).only_first(1),), UNKNOWN,
        "fee: must not be negative", None),
    "a fill with a field missing": Case(
        (fill_without("fee").only_first(1),), PAUSED, "fee: missing", None),
    "an order answer for another client order id": Case(
        (order_field(Route.SUBMIT, "client_order_id", other_order).only_first(1),), UNKNOWN,
        "is not this order's", None),
    "an order answer for the other side": Case(
        (order_field(Route.SUBMIT, "side", other_side).only_first(1),), PAUSED,
        "when asked about", None),
    "a lookup answer for another quantity": Case(
        (order_field(Route.SUBMIT, "client_order_id", other_order).only_first(1),
         order_field(Route.LOOKUP, "quantity", doubled).only_first(1)), PAUSED,
        "when asked about", None),
    # answers that only look odd: settled, nothing halted
    "a FILLED status with no fills": Case((HELD_BACK,), None, "", None),
    "a plain duplicate of a fill": Case((replayed_fill(),), None, "", None),
    # the broker's account disagrees with the ledger: reconciliation halts
    "positions with the quantity doubled": Case(
        (position_times("quantity", 2),), MISMATCH, "broker holds", RECONCILIATION),
    "positions with the average price x1000": Case(
        (position_times("average_price", 1000),), MISMATCH, "ledger average price",
        RECONCILIATION),
    "balances with cash minus 10^6": Case(
        (cash_plus(-10**6),), MISMATCH, "USDT cash: the ledger's fills imply", RECONCILIATION),
    "an open order only the broker claims": Case(
        (ghost_open_order("ghost-1"),), MISMATCH, "open order ghost-1 exists only at the broker",
        RECONCILIATION),
}


def test_the_table_covers_at_least_twenty_kinds_on_every_account_route() -> None:
    assert len(CASES) >= 20
    routes = {t.route for case in CASES.values() for t in case.tampers}
    # A cancel answer is tampered in tests/integration/sandbox/test_tampering_proxy.py: these
    # bots never have an order resting when they halt.
    assert routes >= set(Route) - {Route.CANCEL}


# --- the bot -------------------------------------------------------------------------------


class _SwingParams(StrategyParams):
    pass


class _Swing:
    """A full position on even minutes, a third of one on odd ones: an order at every bar,
    and a position held throughout (so positions and average prices can be compared)."""

    name = "swings_in_tests"

    def warmup_bars(self) -> int:
        return 0

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        if ctx.warming_up:
            return None
        even = int(bar.ts.timestamp()) // 60 % 2 == 0
        return Signal.at(SignalLevel.STRONG_BUY if even else SignalLevel.WEAK_BUY, "swing")


def config(bot: str, order_type: str) -> str:
    return f"""
runtime: {{reconcile_interval_s: 20}}
risk: {{max_order_value_usd: 1000000, max_position_value_usd: 1000000,
        daily_loss_limit_usd: 100000}}
bots:
  - {{name: {bot}, market: CRYPTO, symbols: ["BTC/USDT"], strategy: swings_in_tests,
      order_type: {order_type}}}
"""


@dataclass
class Rig:
    clock: ManualClock
    venue: SandboxVenue
    proxy: TamperingProxy


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """One venue, service and proxy for the module; each test trades its own account and
    starts the clock again at T0 (prices are a pure function of time: the same every test)."""
    register("swings_in_tests", "swings between a full and a third", _SwingParams)(
        lambda _params: _Swing())
    clock = ManualClock(T0)
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), MemoryBook(),
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))
    try:
        # Matching is never needed (every order here fills when it arrives): no timer pass.
        with SandboxService(venue, match_interval_s=3600) as service, \
                TamperingProxy(service.url) as proxy:
            yield Rig(clock, venue, proxy)
    finally:
        unregister("swings_in_tests")


@dataclass
class Fleet:
    backend: str
    url: str
    database: Database


@pytest.fixture(scope="module", params=BACKENDS)
def fleet(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One migrated fleet database per backend for the module, each test trading a bot of
    its own in it: migrating a database per test would be most of this file's time."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('tampered') / 'fleet.db'}"
        database = migrated_database(url)
        yield Fleet("sqlite", url, database)
        database.dispose()
        return
    base = str(request.getfixturevalue("pg_base_url"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        database = migrated_database(pg_schema_url(base, schema))
        yield Fleet("postgresql", pg_schema_url(base, schema), database)
        database.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Drive:
    """The bot, stepped by hand on the simulated clock, and what it did."""

    def __init__(self, rig: Rig, loaded: LoadedConfig, bot: str, url: str,
                 account: str) -> None:
        self.rig, self.bot, self.account = rig, bot, account
        rig.clock.set(T0)

        def connect(_settings: BotSettings) -> BrokerConnection:
            client = SandboxClient(rig.proxy.url, account, retries=0)  # no real-time retries
            return BrokerConnection(client, client, client.close)

        def sleep(seconds: float) -> bool:
            # In whole seconds: the runner's backoff is jittered (on purpose, unseeded), and
            # its first pauses all round up to one second, so every run keeps one timetable.
            rig.clock.advance(timedelta(seconds=math.ceil(seconds)))
            return False

        self.runner = BotRunner(loaded, bot, url, connect, clock=rig.clock, sleep=sleep)
        self.steps = 0
        self.sent_when_halted: int | None = None
        self.last_heartbeat = ""
        self.changed_before: dict[str, int] = {}

    def until(self, moment: datetime, ledger: SqlLedger) -> None:
        clock = self.rig.clock
        while clock.now() < moment:
            self.steps += 1
            assert self.steps <= MAX_STEPS, "the runner stopped moving forward"
            wake = self.runner.step()  # an exception out of here fails the test: a crash
            if self.sent_when_halted is None and ledger.controls(
                    self.runner.bot_id).bot.state is TradingState.HALTED:
                self.sent_when_halted = self.sent()
            clock.set(max(wake, clock.now()))

    def sent(self) -> int:
        return self.rig.venue.submission_counts()[self.account].submissions


# --- looking at the result ------------------------------------------------------------------


def broker_fills(venue: SandboxVenue, account: str) -> set[tuple[Any, ...]]:
    page = venue.fills_since(account, None, 1000)
    return {(f.broker_fill_id, f.client_order_id, f.side.value, f.quantity, f.price, f.fee)
            for f in page.fills}


def ledger_fills(database: Database, bot_id: int) -> set[tuple[Any, ...]]:
    query = (select(fills.c.broker_fill_id, orders.c.client_order_id, fills.c.side,
                    fills.c.quantity, fills.c.price, fills.c.fee)
             .join(orders, orders.c.id == fills.c.order_id).where(fills.c.bot_id == bot_id))
    with database.engine.connect() as conn:
        return {(r[0], r[1], r[2], Decimal(r[3]), Decimal(r[4]), Decimal(r[5]))
                for r in conn.execute(query)}


def events_of(database: Database, bot_id: int) -> list[tuple[str, str, str]]:
    with database.engine.connect() as conn:
        return [(r.kind, r.severity, r.message) for r in conn.execute(
            select(events.c.kind, events.c.severity, events.c.message)
            .where(events.c.bot_id == bot_id).order_by(events.c.id))]


def heartbeat(database: Database, bot: str) -> str:
    with database.engine.connect() as conn:
        return str(conn.execute(select(heartbeats.c.status).where(
            heartbeats.c.component == f"bot:{bot}")).scalar_one())


def quantities(positions: dict[str, Any]) -> dict[str, Decimal]:
    return {k: Decimal(p.quantity) for k, p in positions.items() if p.quantity != 0}


# --- the test --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CASES))
def test_a_bot_neither_believes_nor_crashes_on_a_bad_broker_reply(
        kind: str, rig: Rig, fleet: Fleet, tmp_path: Path) -> None:
    case = CASES[kind]
    bot = f"bot{list(CASES).index(kind)}"
    loaded = LoadedConfig(parse_config(config(bot, case.order_type), "tamper.yaml"),
                          "tamper.yaml", tmp_path)
    database = fleet.database
    ledger = SqlLedger(database.engine, database.fleet_tag())
    drive = Drive(rig, loaded, bot, fleet.url, f"{fleet.backend}:{kind}")
    drive.runner.boot()  # shuts itself down if it fails
    bot_id = drive.runner.bot_id
    try:
        drive.until(SWITCH_ON, ledger)
        assert drive.sent() == 1 and ledger.controls(bot_id).bot.state is TradingState.ACTIVE
        before = quantities(ledger.positions(bot_id))
        drive.changed_before = rig.proxy.changed
        rig.proxy.set(*case.tampers)
        drive.until(END, ledger)
        drive.last_heartbeat = heartbeat(database, bot)
    finally:
        rig.proxy.clear()
        drive.runner.shutdown()
    assert_outcome(case, drive, database, ledger, bot_id, before)


def assert_outcome(case: Case, drive: Drive, database: Database, ledger: SqlLedger,
                   bot_id: int, before: dict[str, Decimal]) -> None:
    venue, account = drive.rig.venue, drive.account
    changed = drive.rig.proxy.changed
    fired = {t.name: changed.get(t.name, 0) - drive.changed_before.get(t.name, 0)
             for t in case.tampers}
    assert all(fired.values()), f"a tamper never changed an answer: {fired}"

    # Recorded, with the reason.
    recorded = events_of(database, bot_id)
    if case.event is not None:
        said = [message for kind, _, message in recorded if kind == case.event]
        assert any(case.says in message for message in said), (case.event, said, recorded)
    else:
        assert not [e for e in recorded if e[0] in (REFUSED, REWRITTEN, MISMATCH, PAUSED)]

    # Halted where it must be, by the right source; nothing sent after.
    control = ledger.controls(bot_id).bot
    if case.halt is not None:
        assert (control.state, control.source) == (TradingState.HALTED, case.halt), control
        assert drive.sent() == drive.sent_when_halted, "an order sent while halted"
        assert drive.last_heartbeat == "halted"
    else:
        assert control.state is TradingState.ACTIVE, control
        assert drive.sent() == 3, "the bot should have traded on after the bad reply"
        assert drive.last_heartbeat == "trading"
        if case.event == PAUSED:
            assert any(kind == "broker.recovered" for kind, _, _ in recorded)

    # The ledger holds no number the honest broker did not say.
    assert ledger_fills(database, bot_id) <= broker_fills(venue, account)
    held = quantities(ledger.positions(bot_id))
    at_broker = {p.instrument: p.quantity for p in venue.positions(account)}
    assert held == (at_broker if case.ledger == "as broker" else before)
    assert [o.client_order_id for o in ledger.open_orders(bot_id)
            if o.status is OrderStatus.PENDING] == [], "an order left with an unknown outcome"
    assert venue.submission_counts()[account].duplicates == 0, "an order sent twice"
    assert drive.runner.cycles >= 3
