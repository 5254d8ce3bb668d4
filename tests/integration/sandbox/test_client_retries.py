"""The sandbox client rides out a blip on requests it may repeat, and never repeats a submit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.api import ApiRequest, ApiResponse, SandboxApi, error_response
from fleetkit.brokers.sandbox.client import RETRIES, SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.errors import TransientBrokerError
from fleetkit.core.orders import OrderType, Side
from fleetkit.engine.ports import OrderRequest


class Flaky:
    """Answers 503 to the next `failures` requests of a kind, then behaves."""

    def __init__(self, api: SandboxApi) -> None:
        self._api = api
        self._lock = threading.Lock()
        self.failures = 0
        self.calls: list[str] = []

    def __call__(self, request: ApiRequest) -> ApiResponse:
        with self._lock:
            self.calls.append(request.method)
            if request.segments[:2] == ("v1", "accounts") and self.failures > 0:
                self.failures -= 1
                return error_response(503, "unavailable", "blip")
        return self._api(request)


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, SandboxClient]]:
    venue = build_venue(ScriptedPrices(), ManualClock(NEW_YORK_MIDDAY))
    handler = Flaky(SandboxApi(venue))
    with SandboxService(venue, port=0, handler=handler) as service, \
            SandboxClient(service.url, "bot") as client:
        yield handler, client


def test_a_read_rides_out_a_blip(flaky: tuple[Flaky, SandboxClient]) -> None:
    handler, client = flaky
    handler.failures = RETRIES
    assert client.positions() == []
    assert handler.calls.count("GET") == RETRIES + 1


def test_a_read_gives_up_after_its_bounded_retries(flaky: tuple[Flaky, SandboxClient]) -> None:
    handler, client = flaky
    handler.failures = RETRIES + 1
    with pytest.raises(TransientBrokerError, match="503"):
        client.positions()
    assert handler.calls.count("GET") == RETRIES + 1


def test_a_submit_is_never_repeated_by_the_client(flaky: tuple[Flaky, SandboxClient]) -> None:
    handler, client = flaky
    handler.failures = 1
    with pytest.raises(TransientBrokerError):
        client.submit(OrderRequest("c-1", "NYSE:AAA", Side.BUY, OrderType.MARKET, Decimal(1)))
    assert handler.calls.count("POST") == 1
    assert client.lookup("c-1") is None  # the 503 was not processed, and nothing resent it
