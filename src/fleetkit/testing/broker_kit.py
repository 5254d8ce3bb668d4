"""The test kit every Broker adapter must pass: the behaviour the engine relies on, written
once, run against the sandbox service and the ccxt adapter on a local fake exchange — and
against your own adapter (docs/adapters.md).

Use it by subclassing in a test module and providing a `kit` fixture:

    from fleetkit.testing.broker_kit import BrokerContract, BrokerKit

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def kit(self) -> Iterator[BrokerKit]:
            broker = MyBroker(...)            # against a local fake of your venue
            yield BrokerKit(broker=broker, instrument="CRYPTO:BTC/USDT",
                            quantity=Decimal("0.01"), resting_price=Decimal("100"),
                            too_large=Decimal("1000000"))

What it proves, per adapter: our client order id survives the round trip and finds the
order again (crash recovery depends on it); a resent client id never makes a second order;
unknown ids are None, not errors; fills come once each, carry our client id, and a cursor
never replays one; positions move by exactly what filled; a resting order shows up in
open_orders and cancels; refusals are OrderRejectedError with a reason, never a crash.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from fleetkit.core.errors import BrokerError, OrderRejectedError
from fleetkit.core.orders import Fill, OrderStatus, OrderType, Side
from fleetkit.engine.ports import Broker, OrderReport, OrderRequest

ZERO = Decimal(0)


@dataclass
class BrokerKit:
    """An adapter under test and what the kit needs to know about its venue.

    `resting_price`: a limit buy price far enough below the market never to fill.
    `too_large`: a quantity the account cannot afford (the venue must refuse it).
    `settle`: lets the venue progress (advance a manual clock, run a matching pass);
    real venues need nothing. `timeout_s`: how long fills may take to show up.
    """

    broker: Broker
    instrument: str
    quantity: Decimal
    resting_price: Decimal
    too_large: Decimal
    settle: Callable[[], None] = field(default=lambda: None)
    timeout_s: float = 10.0
    prefix: str = field(default_factory=lambda: f"kit{uuid.uuid4().hex[:8]}")

    def client_id(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    def market(self, n: int, side: Side = Side.BUY, quantity: Decimal | None = None
               ) -> OrderRequest:
        return OrderRequest(self.client_id(n), self.instrument, side, OrderType.MARKET,
                            quantity or self.quantity)

    def resting(self, n: int) -> OrderRequest:
        return OrderRequest(self.client_id(n), self.instrument, Side.BUY, OrderType.LIMIT,
                            self.quantity, self.resting_price)

    def eventually(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {self.timeout_s}s: {what}")
            self.settle()
            time.sleep(0.05)

    def all_fills(self) -> list[Fill]:
        fills: list[Fill] = []
        cursor = None
        for _ in range(1000):
            page = self.broker.fills_since(cursor)
            fills.extend(page.fills)
            cursor = page.cursor
            if not page.more:
                break
        return fills

    def position(self) -> Decimal:
        return sum((p.quantity for p in self.broker.positions()
                    if p.instrument == self.instrument), ZERO)


class BrokerContract:
    """Subclass with a `kit` fixture; every test here then runs against your adapter."""

    def test_a_market_order_keeps_our_client_id_and_is_found_again(self, kit: BrokerKit
                                                                    ) -> None:
        report = kit.broker.submit(kit.market(1))
        _is_ours(report, kit.market(1))
        kit.eventually(lambda: _status(kit, 1) is OrderStatus.FILLED, "the order fills")
        found = kit.broker.lookup(kit.client_id(1))
        assert found is not None
        _is_ours(found, kit.market(1))
        assert found.filled_quantity == kit.quantity
        assert found.broker_order_id == report.broker_order_id

    def test_an_unknown_client_id_is_none_not_an_error(self, kit: BrokerKit) -> None:
        assert kit.broker.lookup(kit.client_id(999)) is None

    def test_fills_come_once_each_with_our_client_id_and_move_the_position(
            self, kit: BrokerKit) -> None:
        before = kit.position()
        seen_before = {f.broker_fill_id for f in kit.all_fills()}
        kit.broker.submit(kit.market(1))
        kit.eventually(lambda: sum((f.quantity for f in _fills_of(kit, 1)), ZERO)
                       == kit.quantity, "fills for the whole order")
        fills = _fills_of(kit, 1)
        assert all(f.side is Side.BUY and f.instrument == kit.instrument for f in fills)
        assert all(f.price > 0 and f.fee >= 0 for f in fills)
        assert len({f.broker_fill_id for f in fills}) == len(fills)
        assert not seen_before & {f.broker_fill_id for f in fills}
        kit.eventually(lambda: kit.position() == before + kit.quantity, "position moved")

    def test_a_cursor_never_replays_a_fill(self, kit: BrokerKit) -> None:
        kit.broker.submit(kit.market(1))
        kit.eventually(lambda: bool(_fills_of(kit, 1)), "a fill")
        cursor = None
        ids: list[str] = []
        for _ in range(1000):
            page = kit.broker.fills_since(cursor)
            ids += [f.broker_fill_id for f in page.fills]
            cursor = page.cursor
            if not page.more:
                break
        assert len(ids) == len(set(ids))
        assert kit.broker.fills_since(cursor).fills == ()

    def test_a_resent_client_id_never_makes_a_second_order(self, kit: BrokerKit) -> None:
        first = kit.broker.submit(kit.resting(1))
        try:
            again = kit.broker.submit(kit.resting(1))
        except OrderRejectedError:
            pass  # refusing the repeat is also safe; what matters is one order
        else:
            assert again.broker_order_id == first.broker_order_id
        mine = [o for o in kit.broker.open_orders() if o.client_order_id == kit.client_id(1)]
        assert len(mine) == 1
        kit.broker.cancel(kit.client_id(1))

    def test_a_resting_order_is_open_until_cancelled(self, kit: BrokerKit) -> None:
        report = kit.broker.submit(kit.resting(1))
        assert report.status in (OrderStatus.ACKNOWLEDGED, OrderStatus.PENDING)
        assert kit.client_id(1) in {o.client_order_id for o in kit.broker.open_orders()}
        cancelled = kit.broker.cancel(kit.client_id(1))
        assert cancelled.client_order_id == kit.client_id(1)
        assert cancelled.status is OrderStatus.CANCELLED
        assert kit.client_id(1) not in {o.client_order_id for o in kit.broker.open_orders()}
        found = kit.broker.lookup(kit.client_id(1))
        assert found is not None and found.status is OrderStatus.CANCELLED

    def test_cancelling_an_unknown_order_is_a_broker_error(self, kit: BrokerKit) -> None:
        with pytest.raises(BrokerError):
            kit.broker.cancel(kit.client_id(998))

    def test_an_unaffordable_order_is_refused_with_a_reason(self, kit: BrokerKit) -> None:
        with pytest.raises(OrderRejectedError) as refused:
            kit.broker.submit(kit.market(1, quantity=kit.too_large))
        assert str(refused.value).strip()
        found = kit.broker.lookup(kit.client_id(1))
        assert found is None or found.status is OrderStatus.REJECTED


def _is_ours(report: OrderReport, request: OrderRequest) -> None:
    assert report.client_order_id == request.client_order_id
    assert report.instrument == request.instrument
    assert report.side is request.side
    assert report.quantity == request.quantity
    assert report.broker_order_id


def _status(kit: BrokerKit, n: int) -> OrderStatus | None:
    found = kit.broker.lookup(kit.client_id(n))
    return None if found is None else found.status


def _fills_of(kit: BrokerKit, n: int) -> list[Fill]:
    return [f for f in kit.all_fills() if f.client_order_id == kit.client_id(n)]
