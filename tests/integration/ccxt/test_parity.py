"""Parity: one strategy, one price tape, two adapters — the sandbox venue in process, and the
live ccxt adapter against a fake Binance on loopback — through the same BotRunner, engine,
rails and ledger. Same signals, same orders, same fills, same final ledger.

Both runs share nothing but the tape and the config; each has its own database and clock.
Fees agree to the sandbox's fee precision (it books fees rounded up to 1e-8; the exchange
reports them exact), which the comparison states explicitly instead of hiding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.backtest.tape import BarTape, TapePrices, generated_tape
from fleetkit.brokers.ccxt.broker import CcxtBroker, venue_instrument
from fleetkit.brokers.ccxt.credentials import CredentialSources
from fleetkit.brokers.ccxt.venue import CcxtVenue, VenueSpec
from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.fleet import FleetStore
from fleetkit.store.schema import fills, orders, signals
from fleetkit.testing.fake_exchange import FakeExchange, FakeExchangeServer, FakeMarket
from fleetkit.testing.fake_exchange.model import to_ms
from tests.support import migrated_database

BTC = "CRYPTO:BTC/USDT"
START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
BARS = 240
FEE_BPS = Decimal(10)  # 0.1% on both venues
CONFIG = """
runtime: {heartbeat_interval_s: 20, stale_after_s: 90}
risk: {max_order_value_usd: 50000, max_position_value_usd: 100000, daily_loss_limit_usd: 5000}
defaults: {bar_interval: 1m, position_size_usd: 2000}
bots:
  - {name: parity, market: CRYPTO, symbols: ["BTC/USDT"], strategy: sma_cross,
     params: {fast: 3, slow: 8}}
"""


@pytest.fixture(scope="module")
def tape() -> BarTape:
    catalog = load_catalog()
    prices = InventedPrices(11, catalog, MarketCalendars())
    return generated_tape(prices, catalog[BTC].instrument, START - timedelta(minutes=60),
                          BARS + 60, 60)


@dataclass
class Run:
    """What one run left in its database: the rows the comparison looks at."""

    signals: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    fills: list[tuple[Any, ...]]
    position: Decimal
    fees: Decimal


def drive(tmp_path: Path, name: str, connect: Callable[[BotSettings], BrokerConnection],
          clock: ManualClock) -> Run:
    database = migrated_database(f"sqlite:///{tmp_path / f'{name}.db'}")
    loaded = LoadedConfig(parse_config(CONFIG, "parity.yaml"), "parity.yaml", tmp_path)

    def sleep(seconds: float) -> bool:
        clock.advance(timedelta(seconds=seconds))
        return False

    runner = BotRunner(loaded, "parity", str(database.engine.url), connect, clock=clock,
                       sleep=sleep)
    runner.boot()
    end = START + timedelta(minutes=BARS)
    while clock.now() < end:
        wake = runner.step()
        if wake > clock.now():
            clock.set(wake)
    runner.shutdown()
    try:
        return _rows(database)
    finally:
        database.dispose()


def _rows(database: Any) -> Run:
    bot_id = FleetStore(database.engine).bot("parity").id
    with database.engine.connect() as conn:
        signal_rows = conn.execute(
            select(signals.c.instrument, signals.c.bar_ts, signals.c.level,
                   signals.c.target_quantity)
            .where(signals.c.bot_id == bot_id).order_by(signals.c.id)).all()
        order_rows = conn.execute(
            select(orders.c.client_order_id, orders.c.instrument, orders.c.side,
                   orders.c.order_type, orders.c.quantity, orders.c.status,
                   orders.c.filled_quantity, orders.c.created_at)
            .where(orders.c.bot_id == bot_id).order_by(orders.c.id)).all()
        fill_rows = conn.execute(
            select(fills.c.instrument, fills.c.side, fills.c.quantity, fills.c.price,
                   fills.c.fee).where(fills.c.bot_id == bot_id).order_by(fills.c.ts,
                                                                           fills.c.id)).all()
    position = sum((Decimal(r.quantity) * (1 if r.side == "buy" else -1) for r in fill_rows),
                   Decimal(0))
    fees = sum((Decimal(r.fee) for r in fill_rows), Decimal(0))
    return Run([tuple(r) for r in signal_rows], [tuple(r) for r in order_rows],
               [tuple(r) for r in fill_rows], position, fees)


def sandbox_run(tmp_path: Path, tape: BarTape) -> Run:
    clock = ManualClock(START)
    venue = SandboxVenue(TapePrices(tape), MemoryBook(), clock,
                         VenueConfig(seed=0, fee_bps=FEE_BPS, slippage_bps=Decimal(0),
                                     partial_fill_probability=0.0, allow_short=False))

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SandboxBroker(venue, settings.name)
        return BrokerConnection(broker, broker)

    return drive(tmp_path, "sandbox", connect, clock)


@pytest.fixture
def live_run(tmp_path: Path, tape: BarTape, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    clock = ManualClock(START)
    prices = TapePrices(tape)

    def price(symbol: str, at: datetime) -> Decimal:
        return prices.last_trade(BTC, at).price

    def bars(symbol: str, interval_s: int, start: datetime, end: datetime) -> list[Any]:
        return [(b.ts, Decimal(repr(b.open)), Decimal(repr(b.high)), Decimal(repr(b.low)),
                 Decimal(repr(b.close)), Decimal(repr(b.volume)))
                for b in prices.bars(BTC, interval_s, start, end, clock.now())]

    market = FakeMarket("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"),
                        step_size=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                        min_notional=Decimal("1"))
    exchange = FakeExchange([market], price, bars=bars, now=clock.now,
                            balances={"USDT": Decimal(1_000_000)},
                            commission_rate=FEE_BPS / 10_000, api_key="parity-key",
                            api_secret="parity-secret")
    monkeypatch.setenv("PARITY_KEY", "parity-key")
    monkeypatch.setenv("PARITY_SECRET", "parity-secret")
    with FakeExchangeServer(exchange) as server:
        spec = VenueSpec(name="fake", ccxt_id="binance", api_base_url=server.url,
                         rate_limit=False,
                         credentials=CredentialSources(api_key_env="PARITY_KEY",
                                                       secret_env="PARITY_SECRET"))

        def connect(settings: BotSettings) -> BrokerConnection:
            venue = CcxtVenue(spec, private=True)
            venue.exchange.nonce = lambda: to_ms(clock.now())  # signs on the simulated clock
            instruments = {BTC: venue_instrument(venue, "CRYPTO", "BTC/USDT")}
            broker = CcxtBroker(venue, instruments, clock)
            return BrokerConnection(broker, broker, instruments=instruments)

        yield drive(tmp_path, "live", connect, clock)
        assert server.api.unrouted == [] and exchange.internal_errors == []
        assert exchange.duplicate_submissions == 0


def test_the_same_tape_gives_the_same_signals_orders_fills_and_ledger(
        tmp_path: Path, tape: BarTape, live_run: Run) -> None:
    paper = sandbox_run(tmp_path, tape)

    assert len(paper.orders) >= 4, "the tape should make the strategy trade both ways"
    assert paper.signals == live_run.signals
    assert [o[1:] for o in paper.orders] == [o[1:] for o in live_run.orders]
    assert [f[:4] for f in paper.fills] == [f[:4] for f in live_run.fills]
    assert paper.position == live_run.position
    for ours, theirs in zip(paper.fills, live_run.fills, strict=True):
        assert abs(Decimal(ours[4]) - Decimal(theirs[4])) < Decimal("1e-8")
