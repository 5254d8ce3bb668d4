"""Index futures and the BTC perpetual traded at the sandbox venue: listing, prices, margin,
expiry settlement (listing.py, margin.py, settlement.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.contracts import load_contract_rules
from fleetkit.brokers.sandbox.derivatives import SandboxDerivatives
from fleetkit.brokers.sandbox.matching import fee_for
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.sqlbook import SqlBook
from fleetkit.brokers.sandbox.testing import (
    STANDARD_CALENDARS,
    DailySessions,
    ManualClock,
    ScriptedPrices,
    equity,
    standard_instruments,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.core.instruments import AssetClass
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest

D = Decimal
SPOT = "NSE:NIFTY 50"
JAN, FEB, MAR = "NFO:NIFTY24JANFUT", "NFO:NIFTY24FEBFUT", "NFO:NIFTY24MARFUT"
PERP = "CRYPTO:BTC/USDT:USDT"
LOT = D(65)
# Wednesday 3 January 2024, 10:30 in Mumbai: NSE in session. NIFTY's January contract
# expires on the month's last Tuesday, the 30th, at NSE's close (10:00 UTC here).
MUMBAI_MORNING = datetime(2024, 1, 3, 5, 0, tzinfo=UTC)
JANUARY_EXPIRY = datetime(2024, 1, 30, 10, 0, tzinfo=UTC)
NSE_HOURS = DailySessions(clock_time(3, 45), clock_time(10, 0))


def nifty_prices() -> ScriptedPrices:
    """The standard universe and the NIFTY index, with NSE's hours (no holidays)."""
    instruments = {**standard_instruments(),
                   equity("NSE", "NIFTY 50", "INR", "XNSE", tick="0.05"): D("21000.00")}
    return ScriptedPrices(instruments, {**STANDARD_CALENDARS, "XNSE": NSE_HOURS})


def nifty_venue(prices: ScriptedPrices, clock: ManualClock, **settings: Any) -> SandboxVenue:
    """A venue listing NIFTY futures (lots of 65, 12% margin) and the perpetual; no
    slippage, no partial fills, unless `settings` say otherwise."""
    settings = {"slippage_bps": D(0), "partial_fill_probability": 0.0, **settings}
    rules = load_contract_rules()["NIFTY"].model_copy(update={"lot_size": 65})
    return SandboxVenue(prices, settings.pop("book", None) or MemoryBook(), clock,
                        VenueConfig(**settings), sessions=prices, contract_rules={"NIFTY": rules})


def market(cid: str, side: Side, quantity: Decimal, instrument: str = JAN) -> OrderRequest:
    return OrderRequest(cid, instrument, side, OrderType.MARKET, quantity)


@pytest.fixture
def prices() -> ScriptedPrices:
    return nifty_prices()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MUMBAI_MORNING)


@pytest.fixture
def venue(prices: ScriptedPrices, clock: ManualClock) -> SandboxVenue:
    return nifty_venue(prices, clock)


# --- listing and prices ---------------------------------------------------------------------


def test_listed_futures_and_the_perpetual_are_instruments(venue: SandboxVenue) -> None:
    listed = venue.instruments()
    assert {JAN, FEB, MAR, PERP} <= set(listed)
    assert "NFO:NIFTY24APRFUT" not in listed
    future = listed[JAN]
    assert (future.market, future.asset_class, future.currency, future.tick_size,
            future.lot_size, future.calendar) == ("NFO", AssetClass.DERIVATIVE, "INR",
                                                  D("0.05"), LOT, "XNSE")
    perpetual, index = listed[PERP], listed["CRYPTO:BTC/USDT"]
    assert (perpetual.market, perpetual.asset_class, perpetual.currency) == (
        "CRYPTO", AssetClass.DERIVATIVE, "USDT")
    assert (perpetual.tick_size, perpetual.lot_size) == (index.tick_size, index.lot_size)
    assert venue.offsets["NFO"] == venue.offsets["NSE"]
    assert venue.market_clock("NFO").is_open


def test_an_expired_future_leaves_the_listing_and_the_next_joins(
        venue: SandboxVenue, clock: ManualClock) -> None:
    clock.set(JANUARY_EXPIRY - timedelta(seconds=1))
    assert JAN in venue.instruments()
    clock.set(JANUARY_EXPIRY)
    listed = venue.instruments()
    assert JAN not in listed and {FEB, MAR, "NFO:NIFTY24APRFUT"} <= set(listed)


def test_a_future_is_priced_at_carry_over_the_spot_and_its_bars_follow_the_spot(
        venue: SandboxVenue, clock: ManualClock) -> None:
    spot, near, far = (venue.quote(key).price for key in (SPOT, JAN, MAR))
    assert spot < near < far  # carry: the further the expiry, the dearer
    assert float(near / spot) == pytest.approx(1.0, abs=0.01)
    assert near % D("0.05") == 0
    bars = venue.bars(JAN, 60, clock.now() - timedelta(minutes=3), clock.now())
    spot_bars = venue.bars(SPOT, 60, clock.now() - timedelta(minutes=3), clock.now())
    assert [b.ts for b in bars] == [b.ts for b in spot_bars] and len(bars) == 3
    for bar, spot_bar in zip(bars, spot_bars, strict=True):
        assert bar.volume == 0.0
        assert bar.close / spot_bar.close == pytest.approx(float(near / spot), rel=1e-4)


def test_the_perpetual_trades_at_its_mark(venue: SandboxVenue) -> None:
    mark = venue.quote(PERP).price
    assert mark != venue.quote("CRYPTO:BTC/USDT").price
    assert abs(mark / D("30000.00") - 1) < D("0.002")
    report = venue.submit("a", market("p-1", Side.BUY, D("0.5"), PERP))
    assert report.fills[0].price == mark


# --- orders ---------------------------------------------------------------------------------


def test_a_future_order_fills_at_the_futures_price_with_the_lot_size_enforced(
        venue: SandboxVenue) -> None:
    refused = venue.submit("a", market("f-0", Side.BUY, D(10)))
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason == "quantity 10 is not a positive multiple of the lot size 65"

    future = venue.quote(JAN).price
    report = venue.submit("a", market("f-1", Side.BUY, 2 * LOT))
    assert report.status is OrderStatus.FILLED
    assert report.fills[0].price == future != venue.quote(SPOT).price
    assert venue.positions("a")[0].quantity == 2 * LOT


def test_a_short_future_is_accepted_where_spot_shorting_is_not(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = nifty_venue(prices, clock, allow_short=False)
    spot = venue.submit("a", market("s-1", Side.SELL, D(1), "CRYPTO:BTC/USDT"))
    assert spot.status is OrderStatus.REJECTED and "does not allow shorting" in spot.reason
    for cid, key, quantity in (("s-2", JAN, LOT), ("s-3", PERP, D(1))):
        assert venue.submit("a", market(cid, Side.SELL, quantity, key)).status \
            is OrderStatus.FILLED
    assert {(p.instrument, p.quantity) for p in venue.positions("a")} == {
        (JAN, -LOT), (PERP, D(-1))}


def test_cash_moves_only_by_realized_pnl_and_fees(
        prices: ScriptedPrices, venue: SandboxVenue, clock: ManualClock) -> None:
    start = venue.balances("a")["INR"]
    bought = venue.submit("a", market("r-1", Side.BUY, LOT)).fills[0]
    assert venue.balances("a")["INR"] == start - bought.fee  # no notional changes hands

    clock.advance(timedelta(minutes=5))
    prices.set_price(SPOT, D("21300.00"), since=clock.now())
    sold = venue.submit("a", market("r-2", Side.SELL, LOT)).fills[0]
    assert sold.price > bought.price
    assert venue.balances("a")["INR"] - start == (
        (sold.price - bought.price) * LOT - bought.fee - sold.fee)
    assert bought.fee == fee_for(bought.price * LOT, D(1))
    assert venue.positions("a") == []


def test_a_short_that_loses_pays_the_loss_from_cash(
        prices: ScriptedPrices, venue: SandboxVenue, clock: ManualClock) -> None:
    start = venue.balances("a")["INR"]
    sold = venue.submit("a", market("l-1", Side.SELL, LOT)).fills[0]
    prices.set_price(SPOT, D("21500.00"), since=clock.advance(timedelta(minutes=1)))
    bought = venue.submit("a", market("l-2", Side.BUY, LOT)).fills[0]
    assert venue.balances("a")["INR"] - start == (
        (sold.price - bought.price) * LOT - sold.fee - bought.fee) < 0


def test_insufficient_margin_is_refused_with_the_reason(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = nifty_venue(prices, clock, initial_cash={"INR": D(400_000), "USDT": D(0)})
    price = venue.quote(JAN).price
    first = venue.submit("a", market("m-1", Side.BUY, LOT))
    assert first.status is OrderStatus.FILLED  # 12% of 65 x ~21,000: ~164,000 INR
    cash = venue.balances("a")["INR"]

    # The same again: the position after it would need twice the margin.
    second = venue.submit("a", market("m-2", Side.BUY, 2 * LOT))
    needed = (3 * LOT * price * D("0.12") + fee_for(2 * LOT * price, D(1)))
    assert second.status is OrderStatus.REJECTED
    assert second.reason == (f"insufficient margin: needs {needed.normalize():f} INR, "
                             f"{cash.normalize():f} available")

    # Another month: the January position's margin is held, so it does not fit either.
    held = LOT * price * D("0.12")
    other = venue.submit("a", market("m-3", Side.BUY, 2 * LOT, FEB))
    assert other.status is OrderStatus.REJECTED
    assert other.reason.endswith(f"INR, {(cash - held).normalize():f} available")

    # Closing needs no margin, only the fee.
    assert venue.submit("a", market("m-4", Side.SELL, LOT)).status is OrderStatus.FILLED
    # And the perpetual is margined in USDT, of which this account has none.
    perpetual = venue.submit("a", market("m-5", Side.BUY, D(1), PERP))
    assert perpetual.reason.startswith("insufficient margin: needs ")
    assert perpetual.reason.endswith("USDT, 0 available")


def test_an_open_futures_order_holds_margin(prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = nifty_venue(prices, clock, initial_cash={"INR": D(400_000)})
    price = venue.quote(JAN).price
    resting = OrderRequest("o-1", JAN, Side.BUY, OrderType.LIMIT, LOT, price - 100)
    assert venue.submit("a", resting).status is OrderStatus.ACKNOWLEDGED
    assert venue.submit("a", market("o-2", Side.SELL, 2 * LOT, FEB)).status \
        is OrderStatus.REJECTED


def test_futures_trade_only_in_the_underlyings_hours(
        venue: SandboxVenue, clock: ManualClock) -> None:
    clock.set(datetime(2024, 1, 3, 12, 0, tzinfo=UTC))  # NSE closed
    report = venue.submit("a", market("h-1", Side.BUY, LOT))
    assert report.status is OrderStatus.REJECTED
    assert report.reason == "market closed: NFO is not in session"
    resting = OrderRequest("h-2", JAN, Side.BUY, OrderType.LIMIT, LOT, D("30000.00"))
    assert venue.submit("a", resting).status is OrderStatus.ACKNOWLEDGED
    assert venue.match() == 0
    clock.set(datetime(2024, 1, 4, 3, 45, tzinfo=UTC))  # the next open
    assert venue.match() == 1


# --- expiry ---------------------------------------------------------------------------------


def test_a_held_future_is_settled_once_at_expiry_and_then_refused(
        prices: ScriptedPrices, venue: SandboxVenue, clock: ManualClock) -> None:
    long = venue.submit("long", market("e-1", Side.BUY, 2 * LOT)).fills[0]
    short = venue.submit("short", market("e-2", Side.SELL, LOT)).fills[0]
    venue.submit("short", OrderRequest("e-3", JAN, Side.BUY, OrderType.LIMIT, LOT,
                                       D("100.00")))  # rests until expiry
    cash = {account: venue.balances(account)["INR"] for account in ("long", "short")}
    prices.set_price(SPOT, D("21555.55"), since=JANUARY_EXPIRY - timedelta(hours=1))

    clock.set(JANUARY_EXPIRY + timedelta(minutes=1))
    assert venue.match() == 2
    final = D("21555.55")  # the spot at the close, on the tick grid
    settled = {}
    for account in ("long", "short"):
        fill = venue.fills_since(account, None).fills[-1]
        settled[account] = fill
        assert fill.client_order_id == f"SETTLE-{JAN}"
        assert (fill.price, fill.fee, fill.ts) == (final, 0, JANUARY_EXPIRY)
        assert venue.positions(account) == []
    assert (settled["long"].side, settled["long"].quantity) == (Side.SELL, 2 * LOT)
    assert (settled["short"].side, settled["short"].quantity) == (Side.BUY, LOT)
    assert venue.balances("long")["INR"] - cash["long"] == (final - long.price) * 2 * LOT
    assert venue.balances("short")["INR"] - cash["short"] == (short.price - final) * LOT
    resting = venue.lookup("short", "e-3")
    assert resting is not None and resting.status is OrderStatus.CANCELLED

    clock.advance(timedelta(days=1))
    assert venue.match() == 0, "settled once"
    assert len(venue.fills_since("long", None).fills) == 2
    refused = venue.submit("long", market("e-4", Side.BUY, LOT))
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason.startswith(f"{JAN} is not listed now")


def test_a_venue_down_over_an_expiry_settles_when_it_comes_back(
        prices: ScriptedPrices, clock: ManualClock, database_url: str) -> None:
    books = [SqlBook(database_url)]
    try:
        nifty_venue(prices, clock, book=books[0]).submit("a", market("d-1", Side.BUY, LOT))
        clock.set(JANUARY_EXPIRY + timedelta(days=3))
        books.append(SqlBook(database_url))
        again = nifty_venue(prices, clock, book=books[-1])
        assert again.match() == 1
        fills = again.fills_since("a", None).fills
        assert [f.client_order_id for f in fills] == ["d-1", f"SETTLE-{JAN}"]
        assert fills[-1].ts == JANUARY_EXPIRY
        books.append(SqlBook(database_url))
        assert nifty_venue(prices, clock, book=books[-1]).match() == 0
        assert again.positions("a") == []
    finally:
        for book in books:
            book.close()


# --- against the invented prices and the real calendars ---------------------------------


def test_the_venue_trades_futures_at_the_price_the_futures_curve_quotes() -> None:
    calendars = MarketCalendars(load_overrides(None).for_market_calendars())
    clock = ManualClock(datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    venue = SandboxVenue(InventedPrices(3, load_catalog(), calendars), MemoryBook(), clock,
                         VenueConfig(seed=3, slippage_bps=D(0), partial_fill_probability=0.0),
                         sessions=calendars)
    curve = SandboxDerivatives(venue).futures("BANKNIFTY")
    listed = venue.instruments()
    for quote in curve.futures:
        assert quote.instrument in listed
        assert venue.quote(quote.instrument).price == quote.last
    report = venue.submit("a", market("c-1", Side.SELL, D(35), curve.front))
    assert report.fills[0].price == curve.futures[0].last
