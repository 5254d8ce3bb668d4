"""SandboxClient against a venue that answers badly (httpx.MockTransport): every odd answer
becomes the error the engine knows how to handle, and garbage is never believed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetkit.brokers.sandbox import wire
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.errors import OrderNotFoundError
from fleetkit.core.errors import BadBrokerReplyError, TransientBrokerError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderReport, OrderRequest

NOW = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
REQUEST = OrderRequest("cid/1", "NYSE:AAA", Side.BUY, OrderType.MARKET, Decimal(1))
REPORT = OrderReport("cid/1", "SBX-1", "NYSE:AAA", Side.BUY, OrderType.MARKET, Decimal(1), None,
                     OrderStatus.ACKNOWLEDGED, Decimal(0), None)


def client_answering(status: int, body: bytes | object) -> SandboxClient:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    return SandboxClient("http://sandbox.test", "bot", transport=httpx.MockTransport(answer))


CALLS: list[tuple[str, Callable[[SandboxClient], object]]] = [
    ("submit", lambda c: c.submit(REQUEST)),
    ("cancel", lambda c: c.cancel("cid/1")),
    ("lookup", lambda c: c.lookup("cid/1")),
    ("open_orders", lambda c: c.open_orders()),
    ("fills_since", lambda c: c.fills_since("3")),
    ("funding_since", lambda c: c.funding_since("3")),
    ("positions", lambda c: c.positions()),
    ("balances", lambda c: c.balances()),
    ("market_clock", lambda c: c.market_clock("NYSE")),
    ("quote", lambda c: c.quote("NYSE:AAA")),
    ("bars", lambda c: c.bars("NYSE:AAA", 60, NOW, NOW)),
    ("instruments", lambda c: c.instruments()),
]
CALL_IDS = [name for name, _ in CALLS]


@pytest.mark.parametrize("call", [call for _, call in CALLS], ids=CALL_IDS)
@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_is_transient_for_every_call(call: Callable[[SandboxClient], object],
                                           status: int) -> None:
    with client_answering(status, b"<html>gateway</html>") as client, \
            pytest.raises(TransientBrokerError, match=f"HTTP {status}"):
        call(client)


@pytest.mark.parametrize("call", [call for _, call in CALLS], ids=CALL_IDS)
def test_a_non_json_200_is_a_bad_reply_for_every_call(
        call: Callable[[SandboxClient], object]) -> None:
    with client_answering(200, b"OK") as client, \
            pytest.raises(BadBrokerReplyError, match="not valid JSON"):
        call(client)


def test_only_an_order_not_found_404_means_the_order_was_never_received() -> None:
    not_found = {"error": "order_not_found", "message": "no order 'cid/1'"}
    with client_answering(404, not_found) as client:
        assert client.lookup("cid/1") is None
        with pytest.raises(OrderNotFoundError):
            client.cancel("cid/1")

    wrong_route = {"error": "not_found", "message": "no such route"}
    with client_answering(404, wrong_route) as client, \
            pytest.raises(BadBrokerReplyError, match="HTTP 404 not_found"):
        client.lookup("cid/1")  # a misrouted URL must not pass for "never received"
    with client_answering(404, b"plain text") as client, \
            pytest.raises(BadBrokerReplyError, match="HTTP 404 unknown"):
        client.lookup("cid/1")


def test_an_answer_about_another_order_is_refused() -> None:
    other = wire.order_report_to_dict(OrderReport(
        "someone-else", "SBX-9", "NYSE:AAA", Side.BUY, OrderType.MARKET, Decimal(1), None,
        OrderStatus.ACKNOWLEDGED, Decimal(0), None))
    with client_answering(200, other) as client, \
            pytest.raises(BadBrokerReplyError, match="answered for 'someone-else'"):
        client.submit(REQUEST)


def test_an_unexpected_status_is_a_bad_reply() -> None:
    with client_answering(204, b"") as client, \
            pytest.raises(BadBrokerReplyError, match="unexpected HTTP 204"):
        client.positions()


def test_a_well_formed_answer_is_parsed() -> None:
    with client_answering(200, wire.order_report_to_dict(REPORT)) as client:
        assert client.submit(REQUEST) == REPORT
        assert client.lookup("cid/1") == REPORT


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["fills", "orders", "positions", "bars", "balances",
                                       "instruments", "status", "cursor", "more", "price",
                                       "quantity", "x"]), children, max_size=4),
    max_leaves=10)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(st.sampled_from(CALLS), json_values)
def test_a_garbage_200_only_ever_raises_bad_broker_reply(
        named_call: tuple[str, Callable[[SandboxClient], Any]], body: object) -> None:
    _, call = named_call
    with client_answering(200, body) as client, contextlib.suppress(BadBrokerReplyError):
        call(client)
