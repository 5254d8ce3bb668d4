"""SandboxBroker: one account of an in-process venue as the engine's Broker and MarketData."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.book import BookSession, MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.errors import DatabaseUnavailableError, OrderRejectedError, TransientBrokerError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import Broker, MarketData, OrderRequest

D = Decimal
SATURDAY_NOON = datetime(2024, 1, 6, 12, 0, tzinfo=UTC)


class SwitchableBook(MemoryBook):
    """A MemoryBook whose database can be "unplugged"."""

    down = False

    @contextmanager
    def write(self) -> Iterator[BookSession]:
        self._check()
        with super().write() as txn:
            yield txn

    @contextmanager
    def read(self) -> Iterator[BookSession]:
        self._check()
        with super().read() as txn:
            yield txn

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailableError("sandbox database unplugged")


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NEW_YORK_MIDDAY)


@pytest.fixture
def broker(prices: ScriptedPrices, clock: ManualClock) -> SandboxBroker:
    return SandboxBroker(build_venue(prices, clock), "bot-a")


def test_the_adapter_is_a_broker_and_market_data(broker: SandboxBroker) -> None:
    as_broker: Broker = broker
    as_market_data: MarketData = broker
    assert as_broker is as_market_data is broker


def test_a_rejected_order_raises_with_the_reason_and_can_still_be_looked_up(
        broker: SandboxBroker) -> None:
    request = OrderRequest("r", "NYSE:AAA", Side.BUY, OrderType.MARKET, D("0.5"))

    with pytest.raises(OrderRejectedError, match="lot size") as raised:
        broker.submit(request)
    with pytest.raises(OrderRejectedError):
        broker.submit(request)  # resending gets the same answer, not a second order

    found = broker.lookup("r")
    assert found is not None and found.status is OrderStatus.REJECTED
    assert found.reason == raised.value.reason


def test_resting_orders_fill_on_the_next_call_without_any_thread(
        broker: SandboxBroker, prices: ScriptedPrices) -> None:
    broker.submit(OrderRequest("l", "NYSE:AAA", Side.BUY, OrderType.LIMIT, D(4), D("99.00")))
    assert [o.client_order_id for o in broker.open_orders()] == ["l"]

    prices.set_price("NYSE:AAA", D("98.00"))

    assert broker.open_orders() == []
    page = broker.fills_since(None)
    assert [(f.client_order_id, f.price) for f in page.fills] == [("l", D("98.02"))]
    assert broker.positions()[0].quantity == D(4)


def test_the_adapter_speaks_for_its_own_account_only(prices: ScriptedPrices,
                                                     clock: ManualClock) -> None:
    venue = build_venue(prices, clock)
    mine, theirs = SandboxBroker(venue, "mine"), SandboxBroker(venue, "theirs")

    mine.submit(OrderRequest("c", "NYSE:AAA", Side.BUY, OrderType.MARKET, D(2)))

    assert theirs.lookup("c") is None
    assert theirs.positions() == [] and theirs.fills_since(None).fills == ()
    assert mine.balances()["USD"] < theirs.balances()["USD"]
    with pytest.raises(Exception, match="no order"):
        theirs.cancel("c")


def test_demo_market_data_comes_on_the_wall_clock_from_the_shifted_session(
        prices: ScriptedPrices) -> None:
    venue = build_venue(prices, ManualClock(SATURDAY_NOON), time_mode="demo")
    broker = SandboxBroker(venue, "bot")

    clock = broker.market_clock("NYSE")
    quote = broker.quote("NYSE:AAA")
    bars = broker.bars("NYSE:AAA", 60, SATURDAY_NOON - timedelta(hours=1), SATURDAY_NOON)

    assert (clock.now, clock.is_open) == (SATURDAY_NOON, True)
    assert (quote.price, quote.ts) == (D("100.00"), SATURDAY_NOON)
    assert bars and bars[-1].ts == SATURDAY_NOON.replace(second=0) - timedelta(minutes=1)
    assert broker.market_offset("NYSE") < timedelta(0)
    assert broker.market_offset("CRYPTO") == timedelta(0)


def test_a_venue_whose_database_is_down_is_a_transient_broker_error(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    book = SwitchableBook()
    broker = SandboxBroker(build_venue(prices, clock, book), "bot")
    book.down = True

    with pytest.raises(TransientBrokerError, match="unplugged"):
        broker.submit(OrderRequest("c", "NYSE:AAA", Side.BUY, OrderType.MARKET, D(1)))
    with pytest.raises(TransientBrokerError):
        broker.quote("NYSE:AAA")
    book.down = False
    assert broker.lookup("c") is None
