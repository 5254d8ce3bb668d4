"""SandboxVenue order handling: dedup, rejections, fill prices and fees, partial fills,
resting limits and cancels, on a MemoryBook with scripted prices and a hand-moved clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.errors import OrderNotFoundError
from fleetkit.brokers.sandbox.matching import plan_first_fill
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest

D = Decimal
BOT = "bot-a"
USD_START = D(1_000_000)


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NEW_YORK_MIDDAY)


@pytest.fixture
def venue(prices: ScriptedPrices, clock: ManualClock) -> SandboxVenue:
    return build_venue(prices, clock)


def market(cid: str, side: Side, quantity: str, instrument: str = "NYSE:AAA") -> OrderRequest:
    return OrderRequest(cid, instrument, side, OrderType.MARKET, D(quantity))


def limit(cid: str, side: Side, quantity: str, price: str | None,
          instrument: str = "NYSE:AAA") -> OrderRequest:
    return OrderRequest(cid, instrument, side, OrderType.LIMIT, D(quantity),
                        None if price is None else D(price))


def all_fills(venue: SandboxVenue, account: str = BOT) -> list[tuple[str, Decimal, Decimal]]:
    page = venue.fills_since(account, None, 1000)
    return [(f.client_order_id, f.quantity, f.price) for f in page.fills]


# --- dedup ------------------------------------------------------------------------------


def test_same_client_order_id_twice_makes_one_order_with_one_set_of_fills(
        venue: SandboxVenue) -> None:
    first = venue.submit(BOT, market("c-1", Side.BUY, "10"))
    again = venue.submit(BOT, market("c-1", Side.BUY, "10"))

    assert again.broker_order_id == first.broker_order_id
    assert again.status is OrderStatus.FILLED
    assert again.fills == ()  # the fills went out with the first answer
    assert all_fills(venue) == [("c-1", D(10), D("100.02"))]
    assert venue.positions(BOT)[0].quantity == D(10)


def test_resent_order_with_different_terms_returns_the_original_unchanged(
        venue: SandboxVenue) -> None:
    venue.submit(BOT, limit("c-1", Side.BUY, "5", "90.00"))

    again = venue.submit(BOT, market("c-1", Side.SELL, "7"))

    assert (again.side, again.order_type, again.quantity) == (Side.BUY, OrderType.LIMIT, D(5))
    assert again.status is OrderStatus.ACKNOWLEDGED
    assert all_fills(venue) == []


def test_the_same_client_order_id_in_two_accounts_is_two_orders(venue: SandboxVenue) -> None:
    a = venue.submit("bot-a", market("c-1", Side.BUY, "1"))
    b = venue.submit("bot-b", market("c-1", Side.BUY, "1"))

    assert a.broker_order_id != b.broker_order_id
    assert a.status is b.status is OrderStatus.FILLED


# --- rejections -------------------------------------------------------------------------

REJECTIONS = [
    pytest.param(market("r", Side.BUY, "1", "NYSE:ZZZ"), "unknown instrument", id="unknown"),
    pytest.param(market("r", Side.BUY, "1.5"), "positive multiple of the lot size", id="lot"),
    pytest.param(market("r", Side.BUY, "0"), "positive multiple of the lot size", id="zero"),
    pytest.param(market("r", Side.BUY, "-3"), "positive multiple of the lot size", id="negative"),
    pytest.param(market("r", Side.BUY, "150", "JPX:CCC"), "lot size 100", id="jpx-lot"),
    pytest.param(market("r", Side.BUY, "5", "NYSE:BBB"), "below the minimum quantity 10",
                 id="min-quantity"),
    pytest.param(limit("r", Side.BUY, "1", None), "needs a limit price", id="limit-missing"),
    pytest.param(limit("r", Side.BUY, "1", "0"), "not positive", id="limit-zero"),
    pytest.param(limit("r", Side.BUY, "1", "-1.00"), "not positive", id="limit-negative"),
    pytest.param(limit("r", Side.BUY, "1", "100.005"), "not a multiple of the tick size",
                 id="limit-tick"),
    pytest.param(OrderRequest("r", "NYSE:AAA", Side.BUY, OrderType.MARKET, D(1), D("100.00")),
                 "market order takes no limit price", id="market-with-limit"),
    pytest.param(market("r", Side.BUY, "100", "JPX:CCC"), "market closed", id="market-closed"),
    pytest.param(market("r", Side.BUY, "10000"), "insufficient cash", id="cash"),
]


@pytest.mark.parametrize(("request_", "reason"), REJECTIONS)
def test_invalid_order_is_rejected_with_its_reason_and_stored(
        venue: SandboxVenue, request_: OrderRequest, reason: str) -> None:
    report = venue.submit(BOT, request_)

    assert report.status is OrderStatus.REJECTED
    assert reason in report.reason
    assert report.fills == ()
    assert venue.lookup(BOT, "r") == report
    assert venue.open_orders(BOT) == []
    assert venue.balances(BOT)["USD"] == USD_START


def test_buy_is_rejected_when_open_buys_already_hold_the_cash(venue: SandboxVenue) -> None:
    resting = venue.submit(BOT, limit("big", Side.BUY, "9900", "99.00"))  # 980,100 + fee
    assert resting.status is OrderStatus.ACKNOWLEDGED

    report = venue.submit(BOT, limit("more", Side.BUY, "300", "99.00"))

    assert report.status is OrderStatus.REJECTED
    assert "insufficient cash" in report.reason
    venue.cancel(BOT, "big")
    assert venue.submit(BOT, limit("after", Side.BUY, "300", "99.00")).status is (
        OrderStatus.ACKNOWLEDGED)


def test_sell_beyond_the_position_is_rejected_when_shorting_is_not_allowed(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock, allow_short=False)

    assert "insufficient position" in venue.submit(BOT, market("s-0", Side.SELL, "1")).reason
    venue.submit(BOT, market("b-1", Side.BUY, "10"))
    assert venue.submit(BOT, limit("s-1", Side.SELL, "6", "150.00")).status is (
        OrderStatus.ACKNOWLEDGED)
    over = venue.submit(BOT, market("s-2", Side.SELL, "5"))  # 10 held, 6 already offered

    assert over.status is OrderStatus.REJECTED
    assert "4 available" in over.reason
    assert venue.submit(BOT, market("s-3", Side.SELL, "4")).status is OrderStatus.FILLED


def test_sell_without_a_position_opens_a_short_when_shorting_is_allowed(
        venue: SandboxVenue) -> None:
    report = venue.submit(BOT, market("s-1", Side.SELL, "5"))

    assert report.status is OrderStatus.FILLED
    [position] = venue.positions(BOT)
    assert (position.quantity, position.average_price) == (D(-5), D("99.98"))


@pytest.mark.parametrize("bad", ["", " padded ", "x" * 201, "tab\there"])
def test_unusable_client_order_id_is_refused_as_a_bad_request(
        venue: SandboxVenue, bad: str) -> None:
    with pytest.raises(ValueError, match="client_order_id"):
        venue.submit(BOT, market(bad, Side.BUY, "1"))


def test_non_finite_quantity_is_refused_as_a_bad_request(venue: SandboxVenue) -> None:
    with pytest.raises(ValueError, match="finite"):
        venue.submit(BOT, OrderRequest("c", "NYSE:AAA", Side.BUY, OrderType.MARKET, D("NaN")))


# --- market orders: price, slippage, fees -----------------------------------------------


def test_market_buy_pays_slippage_rounded_up_to_the_tick_plus_fee(
        venue: SandboxVenue, prices: ScriptedPrices) -> None:
    prices.set_price("NYSE:AAA", D("100.03"))  # x 1.0002 = 100.050006 -> 100.06

    report = venue.submit(BOT, market("b", Side.BUY, "10"))

    [fill] = report.fills
    assert (fill.price, fill.quantity) == (D("100.06"), D(10))
    assert fill.fee == D("0.100060")  # 1 bp of 1000.60
    assert fill.ts == NEW_YORK_MIDDAY
    assert (report.filled_quantity, report.average_fill_price) == (D(10), D("100.06"))
    assert venue.balances(BOT)["USD"] == USD_START - D("1000.60") - D("0.10006")


def test_market_sell_receives_slippage_rounded_down_to_the_tick_less_fee(
        venue: SandboxVenue, prices: ScriptedPrices) -> None:
    prices.set_price("NYSE:AAA", D("100.03"))  # x 0.9998 = 100.009994 -> 100.00

    [fill] = venue.submit(BOT, market("s", Side.SELL, "10")).fills

    assert fill.price == D("100.00")
    assert fill.fee == D("0.1")
    assert venue.balances(BOT)["USD"] == USD_START + D("1000.00") - D("0.1")


def test_fees_and_slippage_follow_the_config(prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock, fee_bps=D(10), slippage_bps=D(0))

    [fill] = venue.submit(BOT, market("b", Side.BUY, "3")).fills

    assert (fill.price, fill.fee) == (D("100.00"), D("0.3"))


def test_fee_is_in_the_instruments_quote_currency(venue: SandboxVenue) -> None:
    [fill] = venue.submit(BOT, market("b", Side.BUY, "0.5", "CRYPTO:BTC/USDT")).fills

    assert fill.price == D("30006.00")
    balances = venue.balances(BOT)
    assert balances["USDT"] == D(1_000_000) - D("15003.00") - D("1.500300")
    assert balances["USD"] == USD_START


def test_market_order_fills_at_the_price_after_the_venue_latency(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock, latency_ms=1500)
    prices.set_price("NYSE:AAA", D("101.00"), since=NEW_YORK_MIDDAY + timedelta(seconds=1))

    [fill] = venue.submit(BOT, market("b", Side.BUY, "1")).fills

    assert fill.price == D("101.03")  # 101.00 x 1.0002 = 101.0202, up to the tick
    assert fill.ts == NEW_YORK_MIDDAY + timedelta(milliseconds=1500)


def test_fill_ids_increase_across_accounts(venue: SandboxVenue) -> None:
    ids = []
    for n, account in enumerate(["a", "b", "a", "c"]):
        [fill] = venue.submit(account, market(f"c-{n}", Side.BUY, "1")).fills
        ids.append(int(fill.broker_fill_id))

    assert ids == sorted(ids)
    assert len(set(ids)) == 4


# --- partial fills ----------------------------------------------------------------------


def test_partial_fill_leaves_a_remainder_that_fills_on_a_later_pass(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock, partial_fill_probability=1.0)

    report = venue.submit(BOT, market("p", Side.BUY, "10"))

    assert report.status is OrderStatus.PARTIALLY_FILLED
    assert D(2) <= report.filled_quantity <= D(8)
    assert venue.match() == 0  # the rest waits a little first
    prices.set_price("NYSE:AAA", D("101.00"))
    clock.advance(timedelta(minutes=2))
    assert venue.match() == 1

    done = venue.lookup(BOT, "p")
    assert done is not None and done.status is OrderStatus.FILLED
    rest = D(10) - report.filled_quantity
    assert all_fills(venue)[1] == ("p", rest, D("101.03"))  # at the then-current price
    assert done.average_fill_price == (report.filled_quantity * D("100.02")
                                       + rest * D("101.03")) / D(10)
    assert venue.positions(BOT)[0].quantity == D(10)


def test_partial_fills_are_the_same_for_the_same_seed(prices: ScriptedPrices,
                                                      clock: ManualClock) -> None:
    def first_fill(seed: int) -> Decimal:
        venue = build_venue(prices, clock, seed=seed, partial_fill_probability=0.5)
        return venue.submit(BOT, market("same-id", Side.BUY, "100")).filled_quantity

    assert first_fill(7) == first_fill(7)
    assert len({first_fill(seed) for seed in range(20)}) > 2


def test_partial_fill_plan_takes_twenty_to_eighty_percent_in_whole_lots() -> None:
    for n in range(300):
        plan = plan_first_fill(1, "bot", f"c-{n}", D(1000), D(10), 1.0)
        assert D(200) <= plan.quantity <= D(800)
        assert plan.quantity % 10 == 0
        assert plan.rest_delay_s is not None and 5 <= plan.rest_delay_s <= 120


def test_a_single_lot_or_a_zero_probability_never_fills_partially() -> None:
    assert plan_first_fill(1, "bot", "c", D(1), D(1), 1.0).rest_delay_s is None
    assert plan_first_fill(1, "bot", "c", D(500), D(1), 0.0).quantity == D(500)


def test_remainder_of_a_market_order_waits_for_the_market_to_reopen(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    clock.set(NEW_YORK_MIDDAY.replace(hour=20, minute=59, second=30))
    venue = build_venue(prices, clock, partial_fill_probability=1.0)
    venue.submit(BOT, market("late", Side.BUY, "10"))

    clock.advance(timedelta(minutes=5))  # after the close
    assert venue.match() == 0
    clock.set(NEW_YORK_MIDDAY + timedelta(days=1))
    assert venue.match() == 1
    report = venue.lookup(BOT, "late")
    assert report is not None and report.status is OrderStatus.FILLED


# --- limit orders -----------------------------------------------------------------------


def test_limit_buy_rests_until_the_price_crosses_then_fills_at_the_slipped_price(
        venue: SandboxVenue, prices: ScriptedPrices) -> None:
    report = venue.submit(BOT, limit("l", Side.BUY, "10", "99.00"))
    assert report.status is OrderStatus.ACKNOWLEDGED
    assert venue.match() == 0
    assert [o.client_order_id for o in venue.open_orders(BOT)] == ["l"]

    prices.set_price("NYSE:AAA", D("98.50"))
    assert venue.match() == 1

    assert all_fills(venue) == [("l", D(10), D("98.52"))]
    assert venue.open_orders(BOT) == []


def test_limit_buy_never_fills_above_its_limit(venue: SandboxVenue,
                                               prices: ScriptedPrices) -> None:
    venue.submit(BOT, limit("l", Side.BUY, "10", "99.00"))
    prices.set_price("NYSE:AAA", D("98.99"))  # slipped: 99.01, above the limit

    venue.match()

    assert all_fills(venue) == [("l", D(10), D("99.00"))]


def test_limit_sell_rests_then_fills_at_no_less_than_its_limit(venue: SandboxVenue,
                                                                prices: ScriptedPrices) -> None:
    venue.submit(BOT, limit("up", Side.SELL, "2", "101.00"))
    venue.submit(BOT, limit("edge", Side.SELL, "2", "101.00"))
    prices.set_price("NYSE:AAA", D("101.50"))
    venue.match()
    assert [p for _, _, p in all_fills(venue)] == [D("101.47"), D("101.47")]

    venue.submit(BOT, limit("at", Side.SELL, "2", "102.00"))
    prices.set_price("NYSE:AAA", D("102.00"))  # slipped: 101.97, below the limit
    venue.match()
    assert all_fills(venue)[-1] == ("at", D(2), D("102.00"))


def test_marketable_limit_fills_at_once_at_the_better_price(venue: SandboxVenue) -> None:
    report = venue.submit(BOT, limit("l", Side.BUY, "10", "101.00"))

    assert report.status is OrderStatus.FILLED
    assert [f.price for f in report.fills] == [D("100.02")]


def test_limit_order_on_a_closed_market_rests_and_fills_once_it_opens(
        venue: SandboxVenue, clock: ManualClock) -> None:
    report = venue.submit(BOT, limit("jp", Side.BUY, "100", "2500", "JPX:CCC"))
    assert report.status is OrderStatus.ACKNOWLEDGED
    assert venue.match() == 0

    clock.set(NEW_YORK_MIDDAY.replace(day=4, hour=0, minute=5))
    assert venue.match() == 1

    assert all_fills(venue) == [("jp", D(100), D(2500))]
    assert venue.balances(BOT)["JPY"] == D(150_000_000) - D(250_000) - D(25)


# --- cancel -----------------------------------------------------------------------------


def test_cancel_is_idempotent_and_leaves_finished_orders_alone(venue: SandboxVenue) -> None:
    venue.submit(BOT, limit("rest", Side.BUY, "1", "90.00"))
    venue.submit(BOT, market("done", Side.BUY, "1"))

    first = venue.cancel(BOT, "rest")
    second = venue.cancel(BOT, "rest")
    filled = venue.cancel(BOT, "done")

    assert first.status is second.status is OrderStatus.CANCELLED
    assert first == second
    assert filled.status is OrderStatus.FILLED
    assert venue.open_orders(BOT) == []


def test_cancelling_an_unknown_order_raises_not_found(venue: SandboxVenue) -> None:
    with pytest.raises(OrderNotFoundError, match="nope"):
        venue.cancel(BOT, "nope")


def test_cancel_after_a_partial_fill_keeps_the_filled_part(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock, partial_fill_probability=1.0)
    partial = venue.submit(BOT, market("p", Side.BUY, "10"))

    cancelled = venue.cancel(BOT, "p")
    clock.advance(timedelta(minutes=5))

    assert venue.match() == 0
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.filled_quantity == partial.filled_quantity
    assert venue.positions(BOT)[0].quantity == partial.filled_quantity


def test_a_cancelled_resting_order_never_fills(venue: SandboxVenue,
                                               prices: ScriptedPrices) -> None:
    venue.submit(BOT, limit("l", Side.BUY, "1", "99.00"))
    venue.cancel(BOT, "l")
    prices.set_price("NYSE:AAA", D("90.00"))

    assert venue.match() == 0
    assert all_fills(venue) == []


def test_lookup_of_an_order_never_sent_is_none(venue: SandboxVenue) -> None:
    assert venue.lookup(BOT, "never") is None
