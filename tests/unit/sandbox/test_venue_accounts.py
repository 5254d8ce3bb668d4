"""SandboxVenue accounts: cash, average-cost positions, and paging fills after a cursor."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.config import DEFAULT_INITIAL_CASH
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.orders import OrderType, Side
from fleetkit.engine.ports import OrderRequest, PositionReport

D = Decimal
BOT = "bot-a"


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


@pytest.fixture
def venue(prices: ScriptedPrices) -> SandboxVenue:
    return build_venue(prices, ManualClock(NEW_YORK_MIDDAY))


def trade(venue: SandboxVenue, cid: str, side: Side, quantity: str,
          instrument: str = "NYSE:AAA", account: str = BOT) -> None:
    venue.submit(account, OrderRequest(cid, instrument, side, OrderType.MARKET, D(quantity)))


def test_a_new_account_starts_with_the_configured_cash_in_every_currency(
        venue: SandboxVenue) -> None:
    assert venue.balances("never-traded") == dict(DEFAULT_INITIAL_CASH)
    trade(venue, "c", Side.BUY, "1")

    balances = venue.balances(BOT)
    assert set(balances) == set(DEFAULT_INITIAL_CASH)
    assert balances["JPY"] == D(150_000_000)


def test_initial_cash_comes_from_the_config(prices: ScriptedPrices) -> None:
    venue = build_venue(prices, ManualClock(NEW_YORK_MIDDAY), initial_cash={"USD": D(5000)})
    trade(venue, "c", Side.BUY, "1", "CRYPTO:BTC/USDT")  # 30,006: more than the account has

    assert "insufficient cash" in (venue.lookup(BOT, "c") or pytest.fail()).reason
    trade(venue, "d", Side.BUY, "10")
    assert venue.balances(BOT) == {"USD": D(5000) - D("1000.20") - D("0.10002")}


def test_positions_use_average_cost_and_cash_follows_every_fill(
        venue: SandboxVenue, prices: ScriptedPrices) -> None:
    trade(venue, "b1", Side.BUY, "10")                     # 10 @ 100.02
    prices.set_price("NYSE:AAA", D("110.00"))
    trade(venue, "b2", Side.BUY, "10")                     # 10 @ 110.03 (110.022 up)
    assert venue.positions(BOT) == [PositionReport("NYSE:AAA", D(20), D("105.025"))]

    prices.set_price("NYSE:AAA", D("120.00"))
    trade(venue, "s1", Side.SELL, "5")                     # 5 @ 119.97 (119.976 down)
    assert venue.positions(BOT) == [PositionReport("NYSE:AAA", D(15), D("105.025"))]

    spent = D("1000.20") + D("0.10002") + D("1100.30") + D("0.11003")
    received = D("599.85") - D("0.059985")
    assert venue.balances(BOT)["USD"] == D(1_000_000) - spent + received


def test_flat_positions_are_not_reported_and_a_flip_reopens_at_the_fill_price(
        venue: SandboxVenue) -> None:
    trade(venue, "b", Side.BUY, "3")
    trade(venue, "s", Side.SELL, "3")
    assert venue.positions(BOT) == []

    trade(venue, "s2", Side.SELL, "2")
    trade(venue, "b2", Side.BUY, "5")
    assert venue.positions(BOT) == [PositionReport("NYSE:AAA", D(3), D("100.02"))]


def test_positions_are_per_account_and_per_instrument(venue: SandboxVenue) -> None:
    trade(venue, "a", Side.BUY, "1", account="bot-a")
    trade(venue, "b", Side.BUY, "0.25", "CRYPTO:BTC/USDT", account="bot-a")
    trade(venue, "c", Side.SELL, "2", account="bot-b")

    assert [(p.instrument, p.quantity) for p in venue.positions("bot-a")] == [
        ("CRYPTO:BTC/USDT", D("0.25")), ("NYSE:AAA", D(1))]
    assert [(p.instrument, p.quantity) for p in venue.positions("bot-b")] == [
        ("NYSE:AAA", D(-2))]


def test_fills_page_after_a_cursor_oldest_first(venue: SandboxVenue) -> None:
    for n in range(5):
        trade(venue, f"mine-{n}", Side.BUY, "1")
        trade(venue, f"theirs-{n}", Side.BUY, "1", account="other")

    first = venue.fills_since(BOT, None, 2)
    second = venue.fills_since(BOT, first.cursor, 2)
    third = venue.fills_since(BOT, second.cursor, 2)
    after = venue.fills_since(BOT, third.cursor, 2)

    seen = [f.client_order_id for page in (first, second, third) for f in page.fills]
    assert seen == [f"mine-{n}" for n in range(5)]
    assert (first.more, second.more, third.more) == (True, True, False)
    assert third.cursor == third.fills[-1].broker_fill_id
    assert after.fills == () and after.cursor == third.cursor and not after.more


def test_an_empty_fill_page_keeps_the_cursor_it_was_given(venue: SandboxVenue) -> None:
    assert venue.fills_since(BOT, None).cursor is None
    assert venue.fills_since(BOT, "42").cursor == "42"


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "", "²"])
def test_a_cursor_the_venue_never_gave_out_is_a_bad_request(venue: SandboxVenue,
                                                            cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        venue.fills_since(BOT, cursor)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_a_fill_page_size_out_of_range_is_a_bad_request(venue: SandboxVenue, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        venue.fills_since(BOT, None, limit)


@pytest.mark.parametrize("account", ["", " x", "x" * 101, "new\nline"])
def test_an_unusable_account_name_is_a_bad_request(venue: SandboxVenue, account: str) -> None:
    with pytest.raises(ValueError, match="account"):
        venue.balances(account)
