"""The sandbox service on loopback with the HTTP client: the whole Broker and MarketData
surface, background matching, restarts on a SQL book, and many bots at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from fleetkit.brokers.sandbox.api import ApiRequest, ApiResponse, SandboxApi
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.errors import (
    OrderNotFoundError,
    UnknownInstrumentError,
    UnknownMarketError,
)
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.sqlbook import SqlBook
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
    eventually,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.errors import BadBrokerReplyError, OrderRejectedError, TransientBrokerError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest
from fleetkit.testing.loopback import free_port

D = Decimal
BOT = "bot/1:demo"  # '/' and ':' must survive the URL
MATCH_EVERY_S = 0.02


def market(cid: str, side: Side, quantity: str, instrument: str = "NYSE:AAA") -> OrderRequest:
    return OrderRequest(cid, instrument, side, OrderType.MARKET, D(quantity))


def limit(cid: str, side: Side, quantity: str, price: str) -> OrderRequest:
    return OrderRequest(cid, "NYSE:AAA", side, OrderType.LIMIT, D(quantity), D(price))


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NEW_YORK_MIDDAY)


@pytest.fixture
def venue(prices: ScriptedPrices, clock: ManualClock) -> SandboxVenue:
    return build_venue(prices, clock)


@pytest.fixture
def service(venue: SandboxVenue) -> Iterator[SandboxService]:
    with SandboxService(venue, match_interval_s=MATCH_EVERY_S) as running:
        yield running


@pytest.fixture
def client(service: SandboxService) -> Iterator[SandboxClient]:
    with SandboxClient(service.url, BOT) as connected:
        yield connected


# --- the Broker surface -----------------------------------------------------------------


def test_submit_lookup_and_fills_over_http_match_the_venue(client: SandboxClient,
                                                            venue: SandboxVenue) -> None:
    report = client.submit(market("a:b/c", Side.BUY, "10"))

    assert report.status is OrderStatus.FILLED
    assert [(f.quantity, f.price, f.fee) for f in report.fills] == [
        (D(10), D("100.02"), D("0.10002"))]
    assert client.lookup("a:b/c") == venue.lookup(BOT, "a:b/c")
    assert client.fills_since(None) == venue.fills_since(BOT, None)
    assert client.positions() == venue.positions(BOT)
    assert client.balances() == venue.balances(BOT)


def test_resubmitting_a_client_order_id_over_http_returns_the_first_order(
        client: SandboxClient) -> None:
    first = client.submit(market("once", Side.BUY, "1"))
    again = client.submit(market("once", Side.BUY, "1"))

    assert again.broker_order_id == first.broker_order_id
    assert len(client.fills_since(None).fills) == 1


def test_an_unknown_order_looks_up_as_none_and_cannot_be_cancelled(
        client: SandboxClient) -> None:
    assert client.lookup("never/sent") is None
    with pytest.raises(OrderNotFoundError, match="never/sent"):
        client.cancel("never/sent")


def test_a_rejection_raises_over_http_and_is_stored(client: SandboxClient) -> None:
    with pytest.raises(OrderRejectedError, match="below the minimum quantity"):
        client.submit(market("small", Side.BUY, "1", "NYSE:BBB"))

    found = client.lookup("small")
    assert found is not None and found.status is OrderStatus.REJECTED


def test_open_orders_and_cancel_over_http(client: SandboxClient) -> None:
    client.submit(limit("rest/1", Side.BUY, "2", "90.00"))
    client.submit(limit("rest/2", Side.SELL, "2", "110.00"))

    assert [o.client_order_id for o in client.open_orders()] == ["rest/1", "rest/2"]
    cancelled = client.cancel("rest/1")
    assert cancelled.status is OrderStatus.CANCELLED
    assert client.cancel("rest/1") == cancelled
    assert [o.client_order_id for o in client.open_orders()] == ["rest/2"]


def test_fill_pages_follow_the_cursor_over_http(client: SandboxClient) -> None:
    for n in range(5):
        client.submit(market(f"m-{n}", Side.BUY, "1"))

    first = client.fills_since(None, limit=3)
    rest = client.fills_since(first.cursor, limit=3)

    assert first.more and not rest.more
    assert [f.client_order_id for f in first.fills + rest.fills] == [f"m-{n}" for n in range(5)]


def test_the_background_pass_fills_a_resting_order_once_the_price_crosses(
        client: SandboxClient, prices: ScriptedPrices) -> None:
    client.submit(limit("dip", Side.BUY, "5", "99.00"))
    prices.set_price("NYSE:AAA", D("98.00"))

    page = eventually(lambda: client.fills_since(None).fills, what="the resting buy filling")

    assert [(f.client_order_id, f.price) for f in page] == [("dip", D("98.02"))]
    assert client.open_orders() == []


def test_the_background_pass_completes_a_partial_fill_when_its_delay_is_over(
        prices: ScriptedPrices, clock: ManualClock) -> None:
    venue = build_venue(prices, clock, partial_fill_probability=1.0)
    with SandboxService(venue, match_interval_s=MATCH_EVERY_S) as service, \
            SandboxClient(service.url, BOT) as client:
        partial = client.submit(market("p", Side.BUY, "10"))
        assert partial.status is OrderStatus.PARTIALLY_FILLED

        clock.advance(timedelta(minutes=3))

        def filled() -> bool:
            found = client.lookup("p")
            return found is not None and found.status is OrderStatus.FILLED

        eventually(filled, what="the remainder filling")
        assert client.positions()[0].quantity == D(10)


# --- the MarketData surface -------------------------------------------------------------


def test_market_data_over_http_matches_the_venue(client: SandboxClient,
                                                 venue: SandboxVenue) -> None:
    start = NEW_YORK_MIDDAY - timedelta(minutes=10)

    assert client.market_clock("NYSE") == venue.market_clock("NYSE")
    assert client.market_clock("JPX") == venue.market_clock("JPX")
    assert client.quote("CRYPTO:BTC/USDT") == venue.quote("CRYPTO:BTC/USDT")
    bars = client.bars("NYSE:AAA", 60, start, NEW_YORK_MIDDAY)
    assert bars == venue.bars("NYSE:AAA", 60, start, NEW_YORK_MIDDAY)
    assert len(bars) == 10
    assert client.instruments() == dict(venue.instruments())
    assert client.health()["time_mode"] == "real"


def test_the_client_reports_each_markets_demo_offset(prices: ScriptedPrices) -> None:
    saturday = NEW_YORK_MIDDAY + timedelta(days=3)
    venue = build_venue(prices, ManualClock(saturday), time_mode="demo")
    with SandboxService(venue) as service, SandboxClient(service.url, BOT) as client:
        assert client.market_offset("NYSE") == venue.offset("NYSE") < timedelta(0)
        assert client.market_offset("CRYPTO") == timedelta(0)
        with pytest.raises(UnknownMarketError):
            client.market_offset("LSE")


def test_unknown_instruments_and_markets_are_named_errors(client: SandboxClient) -> None:
    with pytest.raises(UnknownInstrumentError, match="NYSE:NOPE"):
        client.quote("NYSE:NOPE")
    with pytest.raises(UnknownInstrumentError):
        client.bars("NYSE:NOPE", 60, NEW_YORK_MIDDAY, NEW_YORK_MIDDAY)
    with pytest.raises(UnknownMarketError, match="LSE"):
        client.market_clock("LSE")


# --- transport failures -----------------------------------------------------------------


def test_a_client_pointed_at_a_closed_port_raises_transient(clock: ManualClock) -> None:
    with SandboxClient(f"http://127.0.0.1:{free_port()}", BOT, timeout_s=1.0) as client:
        with pytest.raises(TransientBrokerError, match="ConnectError"):
            client.submit(market("c", Side.BUY, "1"))
        with pytest.raises(TransientBrokerError):
            client.lookup("c")


def test_a_slow_venue_is_a_transient_timeout(venue: SandboxVenue) -> None:
    release = threading.Event()
    api = SandboxApi(venue)

    def stalls(request: ApiRequest) -> ApiResponse:
        release.wait(5)
        return api(request)

    with SandboxService(venue, handler=stalls) as service, \
            SandboxClient(service.url, BOT, timeout_s=0.2) as client:
        try:
            with pytest.raises(TransientBrokerError, match="Timeout"):
                client.positions()
        finally:
            release.set()


def test_an_internal_error_is_a_500_that_leaves_the_service_running(
        clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenBars(ScriptedPrices):
        def bars(self, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
            raise RuntimeError("bar store corrupted")

    venue = build_venue(BrokenBars(), clock)
    with SandboxService(venue) as service, SandboxClient(service.url, BOT) as client:
        with pytest.raises(TransientBrokerError, match="HTTP 500 internal"):
            client.bars("NYSE:AAA", 60, NEW_YORK_MIDDAY, NEW_YORK_MIDDAY)
        assert client.health()["status"] == "ok"
    assert "bar store corrupted" in caplog.text


def test_a_stopped_service_drops_its_keep_alive_connections(service: SandboxService,
                                                            client: SandboxClient) -> None:
    assert client.positions() == []  # opens a pooled connection

    service.stop()

    with pytest.raises(TransientBrokerError):
        client.positions()


def test_requests_are_not_logged_to_stderr(client: SandboxClient,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    client.submit(market("quiet", Side.BUY, "1"))
    client.lookup("nothing")

    assert capfd.readouterr().err == ""


# --- raw HTTP ---------------------------------------------------------------------------


def test_the_api_answers_json_errors_for_bad_requests(service: SandboxService) -> None:
    with httpx.Client(base_url=service.url) as http:
        route = http.get("/v1/nowhere")
        method = http.put("/v1/accounts/a/orders")
        garbage = http.post("/v1/accounts/a/orders", content=b"{not json")
        missing = http.post("/v1/accounts/a/orders", json={"client_order_id": "c"})
        bad_param = http.get("/v1/bars", params={"instrument": "NYSE:AAA", "interval_s": "x",
                                                 "start": "t", "end": "t"})
        bad_status = http.get("/v1/accounts/a/orders", params={"status": "filled"})

    assert (route.status_code, route.json()["error"]) == (404, "not_found")
    assert (method.status_code, method.json()["error"]) == (405, "method_not_allowed")
    assert (garbage.status_code, garbage.json()["error"]) == (400, "bad_request")
    assert missing.status_code == 400 and "order.instrument: missing" in missing.json()["message"]
    assert bad_param.status_code == 400 and "interval_s" in bad_param.json()["message"]
    assert bad_status.status_code == 400


def test_a_4xx_the_client_did_not_expect_is_a_bad_broker_reply(client: SandboxClient) -> None:
    with pytest.raises(BadBrokerReplyError, match="HTTP 400 bad_request"):
        client.fills_since("not-a-cursor")


def test_latency_delays_the_answer_and_the_fill(prices: ScriptedPrices,
                                                clock: ManualClock) -> None:
    venue = build_venue(prices, clock, latency_ms=200)
    with SandboxService(venue) as service, SandboxClient(service.url, BOT) as client:
        started = time.monotonic()
        report = client.submit(market("slow", Side.BUY, "1"))
        elapsed = time.monotonic() - started

    assert elapsed >= 0.2
    assert report.fills[0].ts == NEW_YORK_MIDDAY + timedelta(milliseconds=200)


# --- restarts and concurrency -----------------------------------------------------------


def test_a_restarted_service_on_the_same_book_carries_on(database_url: str,
                                                         prices: ScriptedPrices,
                                                         clock: ManualClock) -> None:
    book = SqlBook(database_url)
    try:
        first = SandboxService(build_venue(prices, clock, book))
        first.start()
        with SandboxClient(first.url, BOT) as client:
            client.submit(market("before", Side.BUY, "3"))
            client.submit(limit("resting", Side.BUY, "2", "90.00"))
            fills = client.fills_since(None)
        first.stop()
    finally:
        book.close()

    book = SqlBook(database_url)
    try:
        with SandboxService(build_venue(prices, clock, book)) as second, \
                SandboxClient(second.url, BOT) as client:
            assert client.fills_since(None) == fills
            assert [o.client_order_id for o in client.open_orders()] == ["resting"]
            assert client.positions()[0].quantity == D(3)
            again = client.submit(market("before", Side.BUY, "3"))
            assert again.fills == () and client.fills_since(fills.cursor).fills == ()
            [fill] = client.submit(market("after", Side.BUY, "1")).fills
            assert int(fill.broker_fill_id) > int(fills.cursor or 0)
    finally:
        book.close()


def run_bots_concurrently(url: str, accounts: list[str], orders_per_account: int) -> None:
    """Every bot runs twice at once, so each of its orders is also sent twice concurrently."""
    def run_bot(account: str) -> None:
        with SandboxClient(url, account) as client:
            for n in range(orders_per_account):
                side = Side.BUY if n % 3 else Side.SELL
                client.submit(market(f"{account}/{n}", side, "1"))

    with ThreadPoolExecutor(max_workers=2 * len(accounts)) as pool:
        list(pool.map(run_bot, accounts + accounts))


def assert_books_balance(venue: SandboxVenue, accounts: list[str],
                         orders_per_account: int) -> None:
    all_ids: list[int] = []
    for account in accounts:
        fills = venue.fills_since(account, None, 1000).fills
        assert sorted(f.client_order_id for f in fills) == sorted(
            f"{account}/{n}" for n in range(orders_per_account))
        bought = sum(1 for n in range(orders_per_account) if n % 3)
        assert venue.positions(account)[0].quantity == D(2 * bought - orders_per_account)
        cash_flow = sum(-(f.notional + f.fee) if f.side is Side.BUY else f.notional - f.fee
                        for f in fills)
        assert venue.balances(account)["USD"] == D(1_000_000) + cash_flow
        all_ids.extend(int(f.broker_fill_id) for f in fills)
    assert len(all_ids) == len(set(all_ids)) == len(accounts) * orders_per_account


def test_concurrent_bots_and_resent_orders_stay_consistent(
        service: SandboxService, venue: SandboxVenue) -> None:
    accounts = [f"bot-{n}" for n in range(5)]

    run_bots_concurrently(service.url, accounts, 20)

    assert_books_balance(venue, accounts, 20)


def test_concurrent_bots_stay_consistent_on_a_sql_book(database_url: str,
                                                       prices: ScriptedPrices,
                                                       clock: ManualClock) -> None:
    accounts = [f"bot-{n}" for n in range(4)]
    book = SqlBook(database_url)
    try:
        venue = build_venue(prices, clock, book)
        with SandboxService(venue, match_interval_s=MATCH_EVERY_S) as service:
            run_bots_concurrently(service.url, accounts, 10)
        assert_books_balance(venue, accounts, 10)
    finally:
        book.close()


def test_a_service_serves_forever_until_stopped_from_another_thread(
        venue: SandboxVenue) -> None:
    port = free_port()
    service = SandboxService(venue, port=port)
    runner = threading.Thread(target=service.serve_forever)
    runner.start()
    with SandboxClient(f"http://127.0.0.1:{port}", BOT) as client:
        eventually(lambda: _healthy(client), what="the service answering")

    service.stop()
    runner.join(5)

    assert not runner.is_alive()


def _healthy(client: SandboxClient) -> bool:
    try:
        return client.health()["status"] == "ok"
    except TransientBrokerError:
        return False
