"""The SQL book on SQLite and PostgreSQL: a restarted venue carries on exactly where it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fleetkit.brokers.sandbox.book import Book, MemoryBook, StoredPosition
from fleetkit.brokers.sandbox.sqlbook import SqlBook
from fleetkit.brokers.sandbox.testing import ManualClock, ScriptedPrices, build_venue
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.errors import SchemaMismatchError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import FillPage, OrderReport, OrderRequest, PositionReport
from fleetkit.sqlutil.engine import make_engine
from tests.support import empty_database_url

D = Decimal
SATURDAY_NOON = datetime(2024, 1, 6, 12, 0, tzinfo=UTC)
ACCOUNTS = ("alpha", "beta/1")
SETTINGS: dict[str, Any] = {"time_mode": "demo", "partial_fill_probability": 1.0, "seed": 11}


@pytest.fixture
def open_books(database_url: str) -> Iterator[Callable[[], SqlBook]]:
    books: list[SqlBook] = []

    def open_book() -> SqlBook:
        books.append(SqlBook(database_url))
        return books[-1]

    yield open_book
    for book in books:
        book.close()


def order(cid: str, side: Side, quantity: str, instrument: str = "NYSE:AAA",
          limit_price: str | None = None) -> OrderRequest:
    kind = OrderType.MARKET if limit_price is None else OrderType.LIMIT
    return OrderRequest(cid, instrument, side, kind, D(quantity),
                        None if limit_price is None else D(limit_price))


def trade_a_little(venue: SandboxVenue, prices: ScriptedPrices, clock: ManualClock) -> None:
    """Fills, a partial with its remainder pending, a resting limit, a cancel, a rejection."""
    alpha, beta = ACCOUNTS
    venue.submit(alpha, order("a-1", Side.BUY, "10"))                       # partial
    venue.submit(alpha, order("a-2", Side.BUY, "100", "JPX:CCC"))           # demo: JPX open
    venue.submit(alpha, order("a-3", Side.BUY, "1", limit_price="90.00"))   # rests
    venue.submit(beta, order("b-1", Side.SELL, "0.5", "CRYPTO:BTC/USDT"))   # short, partial
    venue.submit(beta, order("b-2", Side.BUY, "3", "NYSE:ZZZ"))             # rejected
    venue.submit(beta, order("b-3", Side.SELL, "4", limit_price="150.00"))  # rests
    venue.cancel(beta, "b-3")
    clock.advance(timedelta(minutes=3))
    prices.set_price("NYSE:AAA", D("101.00"))
    venue.match()
    venue.submit(alpha, order("a-4", Side.SELL, "30"))                      # partial, pending


@dataclass(frozen=True)
class Snapshot:
    offsets: dict[str, timedelta]
    genesis_at: datetime
    balances: dict[str, dict[str, Decimal]]
    positions: dict[str, list[PositionReport]]
    open_orders: dict[str, list[OrderReport]]
    fills: dict[str, FillPage]
    orders: dict[tuple[str, str], OrderReport | None]


def snapshot(venue: SandboxVenue) -> Snapshot:
    cids = ("a-1", "a-2", "a-3", "a-4", "b-1", "b-2", "b-3")
    return Snapshot(
        offsets=dict(venue.offsets), genesis_at=venue.genesis_at,
        balances={a: venue.balances(a) for a in ACCOUNTS},
        positions={a: venue.positions(a) for a in ACCOUNTS},
        open_orders={a: venue.open_orders(a) for a in ACCOUNTS},
        fills={a: venue.fills_since(a, None, 1000) for a in ACCOUNTS},
        orders={(a, c): venue.lookup(a, c) for a in ACCOUNTS for c in cids})


def test_a_restarted_venue_continues_exactly_where_it_stopped(
        open_books: Callable[[], SqlBook]) -> None:
    prices, clock = ScriptedPrices(), ManualClock(SATURDAY_NOON)
    before = build_venue(prices, clock, open_books(), **SETTINGS)
    trade_a_little(before, prices, clock)
    state = snapshot(before)
    assert [o.status for o in state.open_orders["alpha"]] == [
        OrderStatus.ACKNOWLEDGED, OrderStatus.PARTIALLY_FILLED]
    last_fill = max(int(f.broker_fill_id) for page in state.fills.values() for f in page.fills)
    clock.advance(timedelta(seconds=1))

    after = build_venue(prices, clock, open_books(), **SETTINGS)

    assert snapshot(after) == state
    resent = after.submit("alpha", order("a-1", Side.BUY, "10"))
    assert resent == state.orders[("alpha", "a-1")]
    assert after.fills_since("alpha", None, 1000) == state.fills["alpha"]
    [fill] = after.submit("beta/1", order("b-4", Side.BUY, "1")).fills
    assert int(fill.broker_fill_id) > last_fill
    clock.advance(timedelta(minutes=3))
    assert after.match() == 1  # the remainder of a-4, left pending by the first venue
    assert [o.client_order_id for o in after.open_orders("alpha")] == ["a-3"]


def test_the_sql_book_and_the_memory_book_tell_the_same_story(
        open_books: Callable[[], SqlBook]) -> None:
    stories = []
    for book in (MemoryBook(), open_books()):
        prices, clock = ScriptedPrices(), ManualClock(SATURDAY_NOON)
        venue = build_venue(prices, clock, book, **SETTINGS)
        trade_a_little(venue, prices, clock)
        stories.append(snapshot(venue))

    assert stories[0] == stories[1]


def test_a_book_of_another_schema_version_is_refused_with_the_fix(database_url: str) -> None:
    SqlBook(database_url).close()
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE sandbox_meta SET value = '0' WHERE key = 'schema_version'"))
    engine.dispose()

    with pytest.raises(SchemaMismatchError, match="delete its tables"):
        SqlBook(database_url)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_book(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Book]:
    if request.param == "memory":
        yield MemoryBook()
        return
    book = SqlBook(empty_database_url(request.param, request, tmp_path))
    yield book
    book.close()


def test_a_failed_write_session_leaves_the_book_unchanged(any_book: Book) -> None:
    at = SATURDAY_NOON
    with any_book.write() as txn:
        txn.create_account("a", at)
        txn.set_balance("a", "USD", D(5))

    with pytest.raises(RuntimeError, match="boom"), any_book.write() as txn:
        txn.set_balance("a", "USD", D(7))
        txn.set_balance("a", "EUR", D(1))
        txn.set_position("a", StoredPosition("NYSE:AAA", D(1), D(2)))
        txn.set_meta("k", "v")
        raise RuntimeError("boom")

    with any_book.read() as txn:
        assert txn.balances("a") == {"USD": D(5)}
        assert txn.positions("a") == []
        assert txn.meta("k") is None


def test_a_read_session_refuses_to_write(any_book: Book) -> None:
    with pytest.raises(RuntimeError, match="read session"), any_book.read() as txn:
        txn.set_meta("k", "v")
