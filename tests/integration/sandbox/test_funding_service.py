"""Perpetual funding over the sandbox service: the account's funding endpoint paged by the
HTTP client as a bot's Broker pages it, after the service's own matching thread settled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import ManualClock, ScriptedPrices, build_venue, eventually
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.errors import BadBrokerReplyError
from fleetkit.core.orders import OrderType, Side
from fleetkit.engine.ports import OrderRequest

PERP = "CRYPTO:BTC/USDT:USDT"
BOT = "bot/1:perp"  # '/' and ':' must survive the URL
START = datetime(2024, 1, 3, 1, 0, tzinfo=UTC)
FIRST = datetime(2024, 1, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def venue(clock: ManualClock) -> SandboxVenue:
    return build_venue(ScriptedPrices(), clock)


@pytest.fixture
def client(venue: SandboxVenue) -> Iterator[SandboxClient]:
    with SandboxService(venue, match_interval_s=0.02) as service, \
            SandboxClient(service.url, BOT) as connected:
        yield connected


def test_funding_pages_over_http_as_the_venue_books_it(
        venue: SandboxVenue, clock: ManualClock, client: SandboxClient) -> None:
    assert PERP in client.instruments()
    client.submit(OrderRequest("p-1", PERP, Side.SELL, OrderType.MARKET, Decimal("0.5")))
    assert client.funding_since(None).entries == ()
    clock.set(FIRST + timedelta(hours=16))  # three settlements due

    first = eventually(lambda: page if (page := client.funding_since(None, limit=2)).entries
                       else None, what="funding booked")
    assert len(first.entries) == 2 and first.more and first.cursor == "2"
    rest = client.funding_since(first.cursor, limit=2)
    assert [e.payment_id for e in rest.entries] == ["3"] and not rest.more
    assert client.funding_since(rest.cursor).entries == ()
    entries = first.entries + rest.entries
    assert entries == venue.funding_since(BOT, None).entries
    assert entries[0].at == FIRST and entries[0].quantity == Decimal("-0.5")
    assert entries[0].amount > 0  # a short receives a positive rate
    with pytest.raises(BadBrokerReplyError, match="funding cursor"):
        client.funding_since("nope")
