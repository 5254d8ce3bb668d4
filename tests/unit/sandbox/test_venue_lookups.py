"""What the venue looks up once per order and what its memory book keeps: an order's
acceptance asks its market's session and last trade once each and uses them for both the
admission and the first fill; an order filled on arrival is stored once, as filled; a failed
write session undoes every step; the book keeps the newest submissions, counting them all."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.book import MEMORY_SUBMISSIONS_KEPT, MemoryBook, Submission
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.market_data import MarketClock, Quote
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest

D = Decimal
BOT = "bot-a"


class CountingPrices(ScriptedPrices):
    """ScriptedPrices that count what they are asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: Counter[str] = Counter()

    def last_trade(self, instrument: str, at: datetime) -> Quote:
        self.asked["last_trade"] += 1
        return super().last_trade(instrument, at)

    def market_clock(self, market: str, at: datetime) -> MarketClock:
        self.asked["market_clock"] += 1
        return super().market_clock(market, at)


def market(cid: str, side: Side, quantity: str, key: str = "NYSE:AAA") -> OrderRequest:
    return OrderRequest(cid, key, side, OrderType.MARKET, D(quantity))


def test_a_market_buy_asks_its_session_and_last_trade_once_and_fills_at_that_price() -> None:
    prices = CountingPrices()
    venue = build_venue(prices, ManualClock(NEW_YORK_MIDDAY), latency_ms=1500,
                        slippage_bps=D(2))
    # The price moves within the latency: admission and fill both see the later one.
    prices.set_price("NYSE:AAA", D("101.00"), since=NEW_YORK_MIDDAY + timedelta(seconds=1))
    prices.asked.clear()

    report = venue.submit(BOT, market("b-1", Side.BUY, "1"))

    assert prices.asked == {"last_trade": 1, "market_clock": 1}
    [fill] = report.fills
    assert fill.price == D("101.03")  # 101.00 x 1.0002, up to the tick
    assert report.status is OrderStatus.FILLED


def test_an_order_rejected_as_malformed_asks_the_market_nothing() -> None:
    prices = CountingPrices()
    venue = build_venue(prices, ManualClock(NEW_YORK_MIDDAY))
    prices.asked.clear()

    report = venue.submit(BOT, market("bad", Side.BUY, "0.5"))  # lots of 1

    assert report.status is OrderStatus.REJECTED
    assert prices.asked == {}


def test_an_order_filled_on_arrival_is_stored_once_filled_and_rests_nowhere() -> None:
    clock = ManualClock(NEW_YORK_MIDDAY)
    venue = build_venue(ScriptedPrices(), clock)

    first = venue.submit(BOT, market("b-1", Side.BUY, "2"))
    second = venue.submit(BOT, market("b-2", Side.BUY, "3"))

    assert [first.broker_order_id, second.broker_order_id] == ["SBX-1", "SBX-2"]
    stored = venue.lookup(BOT, "b-1")
    assert stored is not None
    assert (stored.status, stored.filled_quantity) == (OrderStatus.FILLED, D(2))
    assert venue.open_orders(BOT) == []
    assert [p.quantity for p in venue.positions(BOT)] == [D(5)]


def test_a_resting_limit_order_is_stored_open() -> None:
    venue = build_venue(ScriptedPrices(), ManualClock(NEW_YORK_MIDDAY))

    venue.submit(BOT, OrderRequest("l-1", "NYSE:AAA", Side.BUY, OrderType.LIMIT, D(1),
                                   D("90.00")))

    [resting] = venue.open_orders(BOT)
    assert (resting.client_order_id, resting.status) == ("l-1", OrderStatus.ACKNOWLEDGED)


def test_a_failed_write_session_undoes_every_step_newest_first() -> None:
    book = MemoryBook()
    at = NEW_YORK_MIDDAY
    with book.write() as txn:
        txn.create_account(BOT, at)
        txn.set_balance(BOT, "USD", D(100))

    with pytest.raises(RuntimeError, match="boom"), book.write() as txn:
        txn.set_balance(BOT, "USD", D(5))
        txn.set_balance(BOT, "USD", D(7))  # the same key twice: the first value comes back
        txn.set_balance(BOT, "EUR", D(1))  # a new key: gone again
        txn.insert_submission(Submission(0, BOT, "x", at, False, OrderStatus.FILLED))
        raise RuntimeError("boom")

    with book.read() as txn:
        assert txn.balances(BOT) == {"USD": D(100)}
        assert txn.submissions_after(None, 0, 10) == []
        assert txn.submission_counts() == {}


def test_the_book_keeps_the_newest_submissions_and_counts_every_one() -> None:
    book = MemoryBook()
    at = NEW_YORK_MIDDAY
    total = MEMORY_SUBMISSIONS_KEPT + 5
    for n in range(total):
        with book.write() as txn:
            txn.insert_submission(Submission(0, BOT, f"c-{n}", at, False, OrderStatus.FILLED))

    with book.read() as txn:
        kept = txn.submissions_after(None, 0, MEMORY_SUBMISSIONS_KEPT + 10)
        assert [s.sequence for s in kept] == list(range(6, total + 1))
        assert [s.sequence for s in txn.submissions_after(BOT, total - 2, 10)] == [
            total - 1, total]
        assert txn.submission_counts()[BOT].submissions == total
