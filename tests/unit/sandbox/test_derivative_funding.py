"""Perpetual funding at the sandbox venue: who pays whom at each 8-hourly settlement, once,
on both books, across restarts and sleeps (settlement.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from fleetkit.brokers.sandbox.book import Book, MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.perpetuals import funding_rate, mark_price, settlement
from fleetkit.brokers.sandbox.sqlbook import SqlBook
from fleetkit.brokers.sandbox.testing import ManualClock, ScriptedPrices, build_venue
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.orders import OrderType, Side
from fleetkit.engine.ports import FundingEntry, OrderRequest
from fleetkit.sqlutil.engine import make_engine
from tests.support import empty_database_url

D = Decimal
PERP = "CRYPTO:BTC/USDT:USDT"
INDEX = D("30000.00")
START = datetime(2024, 1, 3, 1, 0, tzinfo=UTC)
FIRST = datetime(2024, 1, 3, 8, 0, tzinfo=UTC)  # rate +0.01% with seed 0: longs pay
SECOND = FIRST + timedelta(hours=8)  # rate negative: shorts pay
THIRD = SECOND + timedelta(hours=8)
PERIOD_OF_FIRST = int(FIRST.timestamp()) // (8 * 3600) - 1
BookOpener = Callable[[], Book]


def expected(at: datetime, quantity: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(rate, mark, amount) of the settlement at `at` on a signed `quantity`."""
    period = int(at.timestamp()) // (8 * 3600) - 1
    assert settlement(period) == at
    rate = funding_rate(0, PERP, period)
    mark = mark_price(0, PERP, INDEX, at, D("0.01"))
    amount = (-rate * quantity * mark).quantize(D("1e-8"), rounding=ROUND_FLOOR)
    return rate, mark, amount


def trade(venue: SandboxVenue, account: str, cid: str, side: Side, quantity: str) -> None:
    venue.submit(account, OrderRequest(cid, PERP, side, OrderType.MARKET, D(quantity)))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def open_book(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BookOpener]:
    """Opens the same book again on each call (the memory book: the same object)."""
    if request.param == "memory":
        memory = MemoryBook()
        yield lambda: memory
        return
    url = empty_database_url(request.param, request, tmp_path)
    opened: list[SqlBook] = []

    def reopen() -> Book:
        opened.append(SqlBook(url))
        return opened[-1]

    yield reopen
    for book in opened:
        book.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


def venue_on(open_book: BookOpener, prices: ScriptedPrices, clock: ManualClock) -> SandboxVenue:
    return build_venue(prices, clock, open_book())


def test_a_long_pays_a_short_receives_and_a_flat_account_pays_nothing(
        open_book: BookOpener, prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = venue_on(open_book, prices, clock)
    trade(venue, "long", "l-1", Side.BUY, "2")
    trade(venue, "short", "s-1", Side.SELL, "0.5")
    trade(venue, "flat", "f-1", Side.BUY, "1")
    trade(venue, "flat", "f-2", Side.SELL, "1")
    before = {account: venue.balances(account)["USDT"] for account in ("long", "short", "flat")}

    clock.set(FIRST + timedelta(minutes=1))
    venue.match()

    rate, mark, paid = expected(FIRST, D(2))
    assert rate > 0 and paid < 0
    assert venue.funding_since("long", None).entries == (
        FundingEntry("1", PERP, FIRST, rate, D(2), mark, paid),)
    assert paid == -(rate * 2 * mark)  # exact here: nothing to round
    _, _, received = expected(FIRST, D("-0.5"))
    assert received > 0
    assert [e.amount for e in venue.funding_since("short", None).entries] == [received]
    assert venue.funding_since("flat", None).entries == ()
    assert venue.balances("long")["USDT"] == before["long"] + paid
    assert venue.balances("short")["USDT"] == before["short"] + received
    assert venue.balances("flat")["USDT"] == before["flat"]


def test_a_position_opened_after_a_settlement_pays_nothing_for_it(
        open_book: BookOpener, prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = venue_on(open_book, prices, clock)
    clock.set(FIRST + timedelta(seconds=1))  # nobody ran a matching pass at FIRST
    trade(venue, "late", "l-1", Side.BUY, "1")
    venue.match()
    assert venue.funding_since("late", None).entries == ()


def test_funding_is_settled_once_by_passes_and_by_restarts(
        open_book: BookOpener, prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = venue_on(open_book, prices, clock)
    trade(venue, "a", "a-1", Side.BUY, "1")
    clock.set(FIRST)
    venue.match()
    cash = venue.balances("a")["USDT"]
    assert len(venue.funding_since("a", None).entries) == 1

    venue.match()
    clock.advance(timedelta(hours=1))
    venue.match()
    assert len(venue.funding_since("a", None).entries) == 1, "a second pass pays nothing"

    restarted = venue_on(open_book, prices, clock)
    restarted.match()
    assert len(restarted.funding_since("a", None).entries) == 1, "a restart pays nothing"
    assert restarted.balances("a")["USDT"] == cash


def test_a_venue_that_slept_over_three_settlements_settles_each_on_what_was_held(
        open_book: BookOpener, prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = venue_on(open_book, prices, clock)
    # No matching pass runs while the position changes: only the fills' times tell what
    # each settlement saw (1 at the first, 3 at the second, -1 at the third).
    trade(venue, "a", "a-1", Side.BUY, "1")
    clock.set(FIRST + timedelta(hours=1))
    trade(venue, "a", "a-2", Side.BUY, "2")
    clock.set(SECOND + timedelta(hours=1))
    trade(venue, "a", "a-3", Side.SELL, "4")
    clock.set(THIRD + timedelta(hours=1))
    cash = venue.balances("a")["USDT"]

    restarted = venue_on(open_book, prices, clock)  # it was down, too
    restarted.match()

    entries = restarted.funding_since("a", None).entries
    assert [(e.at, e.quantity) for e in entries] == [
        (FIRST, D(1)), (SECOND, D(3)), (THIRD, D(-1))]
    amounts = [expected(e.at, e.quantity)[2] for e in entries]
    assert [e.amount for e in entries] == amounts
    assert [e.rate > 0 for e in entries] == [True, False, False]
    assert restarted.balances("a")["USDT"] == cash + sum(amounts)
    assert [int(e.payment_id) for e in entries] == sorted(int(e.payment_id) for e in entries)


def test_funding_pages_like_fills(
        open_book: BookOpener, prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = venue_on(open_book, prices, clock)
    trade(venue, "a", "a-1", Side.BUY, "1")
    trade(venue, "b", "b-1", Side.SELL, "1")
    clock.set(THIRD)
    venue.match()

    first = venue.funding_since("a", None, limit=2)
    assert [e.at for e in first.entries] == [FIRST, SECOND] and first.more
    rest = venue.funding_since("a", first.cursor, limit=2)
    assert [e.at for e in rest.entries] == [THIRD] and not rest.more
    empty = venue.funding_since("a", rest.cursor)
    assert empty.entries == () and empty.cursor == rest.cursor
    assert len(venue.funding_since("b", None).entries) == 3
    with pytest.raises(ValueError, match="funding cursor"):
        venue.funding_since("a", "x")
    with pytest.raises(ValueError, match="limit"):
        venue.funding_since("a", None, limit=0)


def test_the_in_process_broker_reports_funding(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock)
    broker = SandboxBroker(venue, "bot")
    trade(venue, "bot", "b-1", Side.BUY, "1")
    clock.set(FIRST)
    page = broker.funding_since(None)  # its matching pass settles first
    assert [e.at for e in page.entries] == [FIRST] and page.cursor == "1"
    assert broker.funding_since(page.cursor).entries == ()


def test_a_venue_without_calendars_lists_no_derivatives(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = SandboxVenue(prices, MemoryBook(), clock, VenueConfig())
    assert PERP not in venue.instruments()
    assert venue.instruments() == prices.instruments()
    clock.set(THIRD)
    assert venue.match() == 0


def test_a_version_2_sql_book_gains_the_funding_table_on_open(database_url: str) -> None:
    SqlBook(database_url).close()
    engine = make_engine(database_url)
    with engine.begin() as conn:  # as fleetkit before funding left it
        conn.execute(text("DROP INDEX ix_sandbox_fills_instrument_ts"))
        conn.execute(text("DROP TABLE sandbox_funding"))
        conn.execute(text("UPDATE sandbox_meta SET value = '2' WHERE key = 'schema_version'"))

    SqlBook(database_url).close()

    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM sandbox_meta WHERE key = "
                                 "'schema_version'")).scalar_one() == "3"
        assert conn.execute(text("SELECT count(*) FROM sandbox_funding")).scalar_one() == 0
        indexes = {index["name"] for index in inspect(conn).get_indexes("sandbox_fills")}
    engine.dispose()
    assert "ix_sandbox_fills_instrument_ts" in indexes
