"""TamperingProxy between SandboxClient and a real SandboxService: honest unless told, a tamper
changes only its route, first-N runs out, changed answers are counted, earlier answers are
remembered per account, and nothing is forwarded anywhere but loopback."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.errors import BadBrokerReplyError, TransientBrokerError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest
from fleetkit.testing import Route, Seen, Tamper, TamperingProxy
from fleetkit.testing.loopback import free_port
from fleetkit.testing.tamper import route_of
from fleetkit.testing.tampers import (
    cash_plus,
    fill_field,
    fill_price_times,
    order_field,
    position_times,
    replayed_fill,
)

AAA = "NYSE:AAA"  # 100.00 in ScriptedPrices


def market(cid: str, side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest(cid, AAA, side, OrderType.MARKET, Decimal(1))


@pytest.fixture(scope="module")
def service() -> Iterator[SandboxService]:
    venue = build_venue(ScriptedPrices(), ManualClock(NEW_YORK_MIDDAY))
    with SandboxService(venue, match_interval_s=3600) as running:
        yield running


@pytest.fixture
def proxy(service: SandboxService) -> Iterator[TamperingProxy]:
    with TamperingProxy(service.url) as running:
        yield running


@pytest.fixture
def through(proxy: TamperingProxy, request: pytest.FixtureRequest) -> Iterator[SandboxClient]:
    with SandboxClient(proxy.url, request.node.name, retries=0) as client:
        yield client


@pytest.fixture
def direct(service: SandboxService, request: pytest.FixtureRequest) -> Iterator[SandboxClient]:
    with SandboxClient(service.url, request.node.name, retries=0) as client:
        yield client


def test_everything_passes_through_unchanged_while_no_tamper_is_set(
        proxy: TamperingProxy, through: SandboxClient, direct: SandboxClient) -> None:
    answer = through.submit(market("a-1"))
    assert answer.status is OrderStatus.FILLED and len(answer.fills) == 1
    assert through.lookup("a-1") == direct.lookup("a-1")
    assert through.lookup("never-sent") is None  # a 404 passes through as it is
    assert through.fills_since(None) == direct.fills_since(None)
    assert through.positions() == direct.positions()
    assert through.balances() == direct.balances()
    assert through.open_orders() == direct.open_orders() == []
    assert through.quote(AAA) == direct.quote(AAA)
    assert through.instruments() == direct.instruments()
    assert proxy.changed == {}


def test_a_tamper_changes_its_route_only_and_is_counted(
        proxy: TamperingProxy, through: SandboxClient, direct: SandboxClient) -> None:
    proxy.set(fill_price_times(1000))
    answer = through.submit(market("b-1"))
    honest = direct.fills_since(None)
    assert answer.fills == honest.fills  # a submit answer is another route
    page = through.fills_since(None)
    assert page.fills[0].price == honest.fills[0].price * 1000
    assert page.cursor == honest.cursor  # only the fills were touched
    assert through.positions() == direct.positions()
    assert proxy.changed == {"fills: fill price x1000": 1}
    assert proxy.active == ["fills: fill price x1000"]

    proxy.clear()
    assert through.fills_since(None) == direct.fills_since(None)
    assert proxy.active == [] and proxy.changed == {"fills: fill price x1000": 1}


def test_a_first_n_tamper_changes_n_answers_then_lets_the_truth_through(
        proxy: TamperingProxy, through: SandboxClient, direct: SandboxClient) -> None:
    proxy.set(fill_field("price", "NaN").only_first(1))
    assert through.fills_since(None).fills == ()  # nothing to change: not one of the N
    through.submit(market("c-1"))
    with pytest.raises(BadBrokerReplyError, match="'NaN' is not a finite number"):
        through.fills_since(None)
    assert proxy.active == []
    assert through.fills_since(None) == direct.fills_since(None)
    assert proxy.changed == {"fills: fill price NaN": 1}


def test_tampers_on_one_route_apply_in_order_and_others_wait_for_theirs(
        proxy: TamperingProxy, through: SandboxClient, direct: SandboxClient) -> None:
    through.submit(market("d-1"))
    proxy.set(position_times("quantity", 2), position_times("average_price", 10),
              cash_plus(-5))
    (position,) = through.positions()
    (honest,) = direct.positions()
    assert (position.quantity, position.average_price) == (honest.quantity * 2,
                                                           honest.average_price * 10)
    assert through.balances()["USD"] == direct.balances()["USD"] - 5
    assert set(proxy.changed) == {"positions: quantity x2", "positions: average_price x10",
                                  "balances: cash -5"}


def test_a_tamper_can_replay_what_the_account_saw_before(
        proxy: TamperingProxy, through: SandboxClient, request: pytest.FixtureRequest) -> None:
    first = through.submit(market("e-1")).fills[0]
    through.fills_since(None)
    proxy.set(replayed_fill("first fill at a new price", price="1.00"))
    page = through.fills_since(first.broker_fill_id)  # honestly empty: nothing since
    assert [(f.broker_fill_id, f.price) for f in page.fills] == [(first.broker_fill_id,
                                                                   Decimal("1.00"))]
    seen = proxy.seen(request.node.name)
    assert [f["broker_fill_id"] for f in seen.fills()] == [first.broker_fill_id]
    assert seen.order("e-1") is not None and len(seen.answers(Route.FILLS)) == 2
    assert proxy.seen("someone else").answers() == []  # memory is per account


def test_a_cancel_answer_can_be_tampered_too(proxy: TamperingProxy, through: SandboxClient,
                                             direct: SandboxClient) -> None:
    resting = OrderRequest("f-1", AAA, Side.BUY, OrderType.LIMIT, Decimal(1), Decimal(50))
    assert through.submit(resting).status is OrderStatus.ACKNOWLEDGED
    proxy.set(order_field(Route.CANCEL, "status", "filled"))
    assert through.cancel("f-1").status is OrderStatus.FILLED
    assert direct.lookup("f-1").status is OrderStatus.CANCELLED  # type: ignore[union-attr]


def test_a_tamper_is_a_plain_function_of_the_answer_and_the_past() -> None:
    def one_dollar_at_first(body: dict[str, object], seen: Seen) -> dict[str, object]:
        return {"balances": {"USD": "1"}} if not seen.answers() else body

    tamper = Tamper("balances: one dollar", Route.BALANCES, one_dollar_at_first).only_first(2)
    assert tamper.first == 2
    assert tamper.change({"balances": {"USD": "9"}}, Seen(())) == {"balances": {"USD": "1"}}
    with pytest.raises(ValueError, match="first must be 1 or more"):
        tamper.only_first(0)


@pytest.mark.parametrize(("method", "target", "expected"), [
    ("POST", "/v1/accounts/a%2F1/orders", (Route.SUBMIT, "a/1")),
    ("GET", "/v1/accounts/a/orders?status=open", (Route.OPEN_ORDERS, "a")),
    ("GET", "/v1/accounts/a/orders/c%3A1", (Route.LOOKUP, "a")),
    ("DELETE", "/v1/accounts/a/orders/c", (Route.CANCEL, "a")),
    ("GET", "/v1/accounts/a/fills?after=3&limit=500", (Route.FILLS, "a")),
    ("GET", "/v1/accounts/a/positions", (Route.POSITIONS, "a")),
    ("GET", "/v1/accounts/a/balances", (Route.BALANCES, "a")),
    ("GET", "/v1/quote?instrument=NYSE%3AAAA", None),
    ("GET", "/v1/admin/stats", None),
    ("PUT", "/v1/accounts/a/orders", None),
])
def test_routes_are_told_apart_by_method_and_path(method: str, target: str,
                                                  expected: tuple[Route, str] | None) -> None:
    assert route_of(method, target) == expected


def test_names_must_differ_and_the_upstream_must_be_loopback(proxy: TamperingProxy) -> None:
    with pytest.raises(ValueError, match="unique"):
        proxy.set(fill_price_times(2), fill_price_times(2))
    for elsewhere in ("http://example.com:8080", "http://10.0.0.1:80", "http://[2001:db8::1]"):
        with pytest.raises(ValueError, match="loopback only"):
            TamperingProxy(elsewhere)


def test_a_dead_upstream_is_a_502_the_bot_takes_for_an_outage() -> None:
    with TamperingProxy(f"http://127.0.0.1:{free_port()}") as proxy, \
            SandboxClient(proxy.url, "x", retries=0) as client, \
            pytest.raises(TransientBrokerError, match="HTTP 502 bad_gateway"):
        client.positions()


def test_a_stopped_proxy_starts_again_on_a_fresh_port(service: SandboxService) -> None:
    proxy = TamperingProxy(service.url)
    for _ in range(2):
        with proxy, SandboxClient(proxy.url, "restarted", retries=0) as client:
            assert client.positions() == []
