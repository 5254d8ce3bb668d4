"""The fake Binance spot exchange, driven by a real ccxt.binance over loopback.

Every test talks HTTP to a FakeExchangeServer on 127.0.0.1 through an unmodified ccxt
client (only its URLs and options set), so what passes here is what a ccxt broker adapter
will see: the requests ccxt really sends and the exceptions it really raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from fleetkit.testing.fake_exchange import (
    Bar,
    FakeExchange,
    FakeExchangeServer,
    FakeMarket,
    Fault,
    FixedPrices,
    OrderStatus,
    binance_client,
    ccxt_urls,
)
from tests.support import eventually

SYMBOL = "BTC/USDT"
BTCUSDT = FakeMarket("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"),
                     step_size=Decimal("0.00001"), min_qty=Decimal("0.0001"),
                     min_notional=Decimal("5"))
ETHUSDT = FakeMarket("ETHUSDT", "ETH", "USDT", tick_size=Decimal("0.01"),
                     step_size=Decimal("0.0001"), min_qty=Decimal("0.0001"),
                     min_notional=Decimal("5"))
START = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


class ManualClock:
    """The exchange's (and the client's signing) clock, moved only by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Venue:
    exchange: FakeExchange
    server: FakeExchangeServer
    client: Any  # ccxt.binance
    prices: FixedPrices


VenueFactory = Callable[..., Venue]


@pytest.fixture
def open_venue() -> Iterator[VenueFactory]:
    """Start fakes (stopped after the test) with a ccxt client each."""
    opened: list[Venue] = []

    def factory(*, clock: ManualClock | None = None, client_config: dict[str, Any] | None = None,
                **exchange_kwargs: Any) -> Venue:
        prices = FakeExchange.fixed_prices({"BTCUSDT": Decimal("60000"),
                                            "ETHUSDT": Decimal("3000")})
        exchange_kwargs.setdefault("balances", {"USDT": Decimal("10000"), "BTC": Decimal("0.1")})
        exchange = FakeExchange([BTCUSDT, ETHUSDT], prices, now=clock, **exchange_kwargs)
        server = FakeExchangeServer(exchange).start()
        client = binance_client(server.url, exchange.api_key, exchange.api_secret, clock=clock,
                                **{"timeout": 3000, **(client_config or {})})
        venue = Venue(exchange, server, client, prices)
        opened.append(venue)
        return venue

    yield factory
    for venue in opened:
        venue.client.session.close()
        venue.server.stop()
        assert venue.exchange.internal_errors == []
        assert venue.server.api.unrouted == []


@pytest.fixture
def venue(open_venue: VenueFactory) -> Venue:
    return open_venue()


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# --- market data -------------------------------------------------------------------------

def test_load_markets_brings_filters_as_ccxt_precision_and_limits(venue: Venue) -> None:
    markets = venue.client.load_markets()

    assert set(markets) == {"BTC/USDT", "ETH/USDT"}
    btc = markets[SYMBOL]
    assert (btc["id"], btc["spot"], btc["active"]) == ("BTCUSDT", True, True)
    assert btc["limits"]["amount"]["min"] == 0.0001
    assert btc["limits"]["cost"]["min"] == 5
    assert btc["precision"]["amount"] == 0.00001
    assert btc["precision"]["price"] == 0.01
    assert venue.server.api.unrouted == []  # no sapi/futures call: spot-only options hold


def test_every_ccxt_url_points_at_the_fake(venue: Venue) -> None:
    urls = ccxt_urls(venue.server.url)

    assert urls["public"] == venue.server.url + "/api/v3"
    assert all(url.startswith(venue.server.url + "/") for url in urls.values())
    assert venue.client.urls["api"] == urls


def test_fetch_ticker_book_and_price_follow_the_price_source(venue: Venue) -> None:
    venue.prices.set("BTCUSDT", Decimal("61234.5"))

    ticker = venue.client.fetch_ticker(SYMBOL)
    book = venue.client.fetch_order_book(SYMBOL, limit=5)

    assert ticker["last"] == 61234.5
    assert ticker["bid"] < ticker["last"] < ticker["ask"]
    assert book["bids"][0][0] == 61234.49
    assert book["asks"][0][0] == 61234.51
    assert int(venue.client.last_response_headers["X-MBX-USED-WEIGHT-1M"]) > 0


def test_fetch_ohlcv_serves_the_bars_callable_for_the_window_asked(
        open_venue: VenueFactory) -> None:
    asked: list[tuple[str, int, datetime, datetime]] = []

    def bars(symbol: str, interval_s: int, start: datetime, end: datetime) -> list[Bar]:
        asked.append((symbol, interval_s, start, end))
        out: list[Bar] = []
        opened = start
        while opened < end:
            base = Decimal(60000 + opened.minute)
            out.append((opened, base, base + 5, base - 5, base + 1, Decimal("2.5")))
            opened += timedelta(seconds=interval_s)
        return out

    venue = open_venue(clock=ManualClock(START + timedelta(minutes=10, seconds=30)), bars=bars)

    candles = venue.client.fetch_ohlcv(SYMBOL, "1m", since=_ms(START), limit=3)
    newest = venue.client.fetch_ohlcv(SYMBOL, "5m", limit=2)

    assert candles == [[_ms(START) + 60_000 * i, 60000 + i, 60005 + i, 59995 + i, 60001 + i, 2.5]
                       for i in range(3)]
    assert asked[0] == ("BTCUSDT", 60, START, START + timedelta(minutes=3))
    # the bar still in progress (12:10-12:15) is never sent: only complete bars
    assert [c[0] for c in newest] == [_ms(START), _ms(START) + 300_000]


def test_fetch_ohlcv_without_bars_is_flat_at_the_price(open_venue: VenueFactory) -> None:
    venue = open_venue(clock=ManualClock(START))

    candles = venue.client.fetch_ohlcv(SYMBOL, "1h", limit=2)

    assert candles == [[_ms(START) - 7_200_000, 60000, 60000, 60000, 60000, 0],
                       [_ms(START) - 3_600_000, 60000, 60000, 60000, 60000, 0]]


# --- orders and balances -----------------------------------------------------------------

def test_market_buy_fills_at_once_and_carries_the_client_order_id(venue: Venue) -> None:
    order = venue.client.create_order(SYMBOL, "market", "buy", 0.01,
                                      params={"clientOrderId": "abc-1"})

    assert (order["id"], order["clientOrderId"], order["status"]) == ("1", "abc-1", "closed")
    assert (order["filled"], order["cost"]) == (0.01, 600)
    assert order["fee"] == {"currency": "USDT", "cost": 0.6}
    assert "newClientOrderId=abc-1" in venue.client.last_request_body
    assert "newOrderRespType=FULL" in venue.client.last_request_body
    assert [s.client_order_id for s in venue.exchange.submissions] == ["abc-1"]
    balance = venue.client.fetch_balance()
    assert balance["BTC"]["free"] == pytest.approx(0.11)
    assert balance["USDT"]["free"] == pytest.approx(10000 - 600 - 0.6)
    assert venue.exchange.balances()["USDT"].free == Decimal("9399.4")


def test_resting_limit_locks_funds_then_fills_at_its_limit_when_the_price_crosses(
        venue: Venue) -> None:
    client = venue.client
    order = client.create_order(SYMBOL, "limit", "buy", 0.01, 59000,
                                params={"clientOrderId": "rest-1"})

    assert order["status"] == "open"
    assert [o["clientOrderId"] for o in client.fetch_open_orders(SYMBOL)] == ["rest-1"]
    assert client.fetch_balance()["USDT"]["used"] == pytest.approx(590.59)

    venue.prices.set("BTCUSDT", Decimal("58500"))
    found = client.fetch_order(None, SYMBOL, params={"clientOrderId": "rest-1"})

    assert (found["id"], found["status"], found["price"]) == (order["id"], "closed", 59000)
    trade, = client.fetch_my_trades(SYMBOL)
    assert (trade["price"], trade["takerOrMaker"], trade["order"]) == (59000, "maker", "1")
    assert client.fetch_open_orders(SYMBOL) == []
    assert venue.exchange.balances()["USDT"].locked == 0


def test_match_fills_resting_orders_without_any_request(venue: Venue) -> None:
    venue.client.create_order(SYMBOL, "limit", "sell", 0.05, 61000)
    venue.prices.set("BTCUSDT", Decimal("61000"))

    fills = venue.exchange.match()

    assert [(t.order_id, t.price, t.is_maker) for t in fills] == [(1, Decimal("61000"), True)]
    assert venue.exchange.orders()[0].status is OrderStatus.FILLED


def test_cancel_order_releases_the_locked_balance(venue: Venue) -> None:
    order = venue.client.create_order(SYMBOL, "limit", "sell", 0.05, 65000,
                                      params={"clientOrderId": "sell-1"})

    canceled = venue.client.cancel_order(order["id"], SYMBOL)

    assert canceled["status"] == "canceled"
    assert canceled["info"]["origClientOrderId"] == "sell-1"
    assert venue.exchange.balances()["BTC"].free == Decimal("0.1")
    with pytest.raises(ccxt.OrderNotFound):  # Binance: a closed order cannot be canceled
        venue.client.cancel_order(order["id"], SYMBOL)


def test_fetch_my_trades_pages_by_from_id_and_by_a_one_day_window(
        open_venue: VenueFactory) -> None:
    clock = ManualClock(START)
    venue = open_venue(clock=clock)
    for _ in range(3):
        venue.client.create_order(SYMBOL, "market", "buy", 0.001)
        clock.advance(hours=12)

    def ids(trades: list[dict[str, Any]]) -> list[str]:
        return [t["id"] for t in trades]

    assert ids(venue.client.fetch_my_trades(SYMBOL)) == ["1", "2", "3"]
    assert ids(venue.client.fetch_my_trades(SYMBOL, limit=2)) == ["2", "3"]  # the newest
    assert ids(venue.client.fetch_my_trades(SYMBOL, params={"fromId": 2}, limit=1)) == ["2"]
    assert ids(venue.client.fetch_my_trades(SYMBOL, since=_ms(START) + 1)) == ["2", "3"]
    # since asks Binance for one day from there, no more: trade 3 is 24 h after trade 1
    assert ids(venue.client.fetch_my_trades(SYMBOL, since=_ms(START))) == ["1", "2", "3"]
    assert ids(venue.client.fetch_my_trades(
        SYMBOL, since=_ms(START - timedelta(hours=1)))) == ["1", "2"]


def test_signing_with_a_simulated_clock_needs_the_client_on_that_clock(
        open_venue: VenueFactory) -> None:
    clock = ManualClock(START)
    venue = open_venue(clock=clock)
    wall_clock_client = binance_client(venue.server.url, venue.exchange.api_key,
                                       venue.exchange.api_secret)

    assert venue.client.fetch_balance()["USDT"]["free"] == 10000
    with pytest.raises(ccxt.InvalidNonce):
        wall_clock_client.fetch_balance()
    wall_clock_client.session.close()


# --- refusals ----------------------------------------------------------------------------

def test_duplicate_client_order_id_is_refused_while_the_first_is_open(venue: Venue) -> None:
    venue.client.create_order(SYMBOL, "limit", "buy", 0.01, 50000, params={"clientOrderId": "d"})

    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        venue.client.create_order(SYMBOL, "limit", "buy", 0.01, 50000,
                                  params={"clientOrderId": "d"})

    assert len(venue.exchange.orders()) == 1
    assert venue.exchange.duplicate_submissions == 1


def test_reused_client_order_id_of_a_filled_order_is_accepted_but_counted(venue: Venue) -> None:
    venue.client.create_order(SYMBOL, "market", "buy", 0.001, params={"clientOrderId": "m"})
    venue.client.create_order(SYMBOL, "market", "buy", 0.001, params={"clientOrderId": "m"})

    assert len(venue.exchange.trades()) == 2  # as on Binance: only open ids are unique
    assert [s.duplicate for s in venue.exchange.submissions] == [False, True]


def test_insufficient_balance_raises_insufficient_funds(venue: Venue) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        venue.client.create_order(SYMBOL, "market", "buy", 1)
    with pytest.raises(ccxt.InsufficientFunds):
        venue.client.create_order(SYMBOL, "limit", "sell", 0.2, 70000)

    assert venue.exchange.orders() == []


def test_filter_failures_are_refused_with_binance_filter_names(venue: Venue) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: LOT_SIZE"):
        venue.client.create_order(SYMBOL, "market", "buy", 0.00005)  # below minQty
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        venue.client.create_order(SYMBOL, "limit", "buy", 0.0001, 40000)  # 4 USDT < 5
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: PRICE_FILTER"):
        # ccxt rounds prices to the tick itself, so send the raw request to reach the filter
        venue.client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "0.001",
                                         "price": "50000.005"})

    assert venue.exchange.orders() == []


def test_market_order_with_a_price_is_refused_as_quote_quantity(venue: Venue) -> None:
    # ccxt turns (amount, price) on a market buy into quoteOrderQty, which the fake refuses
    with pytest.raises(ccxt.BadRequest, match="Quote order qty"):
        venue.client.create_order(SYMBOL, "market", "buy", 0.01, 60000)


def test_unknown_orders_raise_order_not_found(venue: Venue) -> None:
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        venue.client.fetch_order("42", SYMBOL)
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        venue.client.fetch_order(None, SYMBOL, params={"clientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        venue.client.cancel_order("42", SYMBOL)


def test_bad_credentials_raise_authentication_error(venue: Venue) -> None:
    url, key = venue.server.url, venue.exchange.api_key
    bad_secret = binance_client(url, key, "not-the-secret")
    bad_key = binance_client(url, "not-the-key", venue.exchange.api_secret)

    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad_secret.fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        bad_key.fetch_balance()
    assert venue.client.fetch_balance()["USDT"]["free"] == 10000
    bad_secret.session.close()
    bad_key.session.close()


def test_bad_key_after_a_good_call_is_reported_by_ccxt_as_ddos_protection(venue: Venue) -> None:
    venue.client.fetch_balance()
    venue.client.apiKey = "revoked-key"

    with pytest.raises(ccxt.DDoSProtection, match="-2015"):  # ccxt's guess: a temporary ban
        venue.client.fetch_balance()


def test_open_orders_of_every_symbol_need_ccxts_warning_switched_off(venue: Venue) -> None:
    venue.client.create_order(SYMBOL, "limit", "buy", 0.01, 50000)
    venue.client.create_order("ETH/USDT", "limit", "buy", 0.01, 2000)

    with pytest.raises(ccxt.ExchangeError, match="warnWithoutSymbol"):
        venue.client.fetch_open_orders()
    venue.client.options["fetchOpenOrders"] = {"warnWithoutSymbol": False}

    assert sorted(o["symbol"] for o in venue.client.fetch_open_orders()) == [
        "BTC/USDT", "ETH/USDT"]


def test_unknown_symbol_is_invalid(venue: Venue) -> None:
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        venue.client.public_get_ticker_price({"symbol": "DOGEUSDT"})


# --- faults ------------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "raised"), [
    (Fault("error_500"), ccxt.ExchangeNotAvailable),
    (Fault("error_500", status=502), ccxt.ExchangeNotAvailable),
    (Fault("error_500", status=503), ccxt.ExchangeNotAvailable),
    (Fault("rate_limit"), ccxt.DDoSProtection),
    (Fault("refuse"), ccxt.NetworkError),
])
def test_faults_before_processing_raise_and_place_nothing(
        venue: Venue, fault: Fault, raised: type[Exception]) -> None:
    venue.exchange.faults.add(fault)

    with pytest.raises(raised) as caught:
        venue.client.create_order(SYMBOL, "market", "buy", 0.001, params={"clientOrderId": "f"})

    assert caught.type is raised  # exactly: these are all NetworkError subclasses
    assert venue.exchange.orders() == []
    assert venue.exchange.faults.fired == {fault.kind: 1}
    assert [(s.client_order_id, s.fault) for s in venue.exchange.submissions] == [
        ("f", fault.kind)]
    # spent: the retry goes through
    assert venue.client.create_order(SYMBOL, "market", "buy", 0.001)["status"] == "closed"


def test_rate_limit_fault_is_a_429_with_retry_after(venue: Venue) -> None:
    venue.exchange.faults.add(Fault("rate_limit", path="/api/v3/ticker/24hr", method="GET",
                                    retry_after_s=7))

    with pytest.raises(ccxt.DDoSProtection, match="429"):
        venue.client.fetch_ticker(SYMBOL)

    assert venue.client.last_response_headers["Retry-After"] == "7"
    assert venue.client.last_http_response is not None
    assert '"code":-1003' in venue.client.last_http_response


@pytest.mark.parametrize(("status", "raised"), [
    (None, ccxt.NetworkError), (503, ccxt.ExchangeNotAvailable)])
def test_ack_lost_places_the_order_and_a_lookup_by_client_id_finds_it(
        venue: Venue, status: int | None, raised: type[Exception]) -> None:
    venue.exchange.faults.add(Fault("ack_lost", status=status))

    with pytest.raises(raised) as caught:
        venue.client.create_order(SYMBOL, "market", "buy", 0.001,
                                  params={"clientOrderId": "lost-1"})

    assert caught.type is raised

    found = venue.client.fetch_order(None, SYMBOL, params={"clientOrderId": "lost-1"})
    assert (found["status"], found["filled"]) == ("closed", 0.001)
    assert venue.exchange.faults.fired == {"ack_lost": 1}


def test_timeout_fault_answers_too_late_and_the_order_still_lands(venue: Venue) -> None:
    venue.client.load_markets()  # at the normal timeout: only the faulted call is short
    venue.client.timeout = 250
    venue.exchange.faults.add(Fault("timeout", delay_s=1.0))

    with pytest.raises(ccxt.RequestTimeout):
        venue.client.create_order(SYMBOL, "market", "buy", 0.001,
                                  params={"clientOrderId": "slow-1"})
    assert venue.exchange.orders() == []  # not yet: the fake is still "thinking"

    eventually(lambda: len(venue.exchange.orders()) == 1, timeout_s=5, what="the slow order",
               interval_s=0.05)
    assert venue.exchange.orders()[0].client_order_id == "slow-1"


def test_fault_fires_the_given_number_of_times_on_its_route_only(venue: Venue) -> None:
    venue.exchange.faults.add(Fault("error_500", path="/api/v3/ticker/24hr", method="GET",
                                    times=2))

    venue.client.fetch_balance()  # another route: untouched
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            venue.client.fetch_ticker(SYMBOL)

    assert venue.client.fetch_ticker(SYMBOL)["last"] == 60000
    assert venue.exchange.faults.fired == {"error_500": 2}
    assert venue.exchange.faults.pending == []


def test_fault_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("meteor")  # type: ignore[arg-type]


# --- concurrency -------------------------------------------------------------------------

def test_concurrent_clients_get_unique_ids_and_consistent_balances(venue: Venue) -> None:
    errors: list[BaseException] = []

    def trade(worker: int) -> None:
        client = binance_client(venue.server.url, venue.exchange.api_key,
                                venue.exchange.api_secret)
        try:
            for n in range(5):
                client.create_order(SYMBOL, "market", "buy", 0.001,
                                    params={"clientOrderId": f"w{worker}-{n}"})
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            client.session.close()

    threads = [threading.Thread(target=trade, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(o.order_id for o in venue.exchange.orders()) == list(range(1, 21))
    assert sorted(t.trade_id for t in venue.exchange.trades()) == list(range(1, 21))
    balances = venue.exchange.balances()
    assert balances["BTC"].free == Decimal("0.1") + Decimal("0.020")
    assert balances["USDT"].free == Decimal("10000") - 20 * Decimal("60.06")
