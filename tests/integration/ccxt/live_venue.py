"""A fake Binance on loopback and the ccxt adapter pointed at it, with credentials from the
environment exactly as a user would provide them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fleetkit.brokers.ccxt.broker import CcxtBroker, venue_instrument
from fleetkit.brokers.ccxt.credentials import CredentialSources
from fleetkit.brokers.ccxt.venue import CcxtVenue, VenueSpec
from fleetkit.core.instruments import instrument_key
from fleetkit.testing.fake_exchange import (
    FakeExchange,
    FakeExchangeServer,
    FakeMarket,
    FixedPrices,
)

BTCUSDT = FakeMarket("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"),
                     step_size=Decimal("0.00001"), min_qty=Decimal("0.0001"),
                     min_notional=Decimal("5"))
ETHUSDT = FakeMarket("ETHUSDT", "ETH", "USDT", tick_size=Decimal("0.01"),
                     step_size=Decimal("0.0001"), min_qty=Decimal("0.0001"),
                     min_notional=Decimal("5"))
API_KEY = "kit-api-key-0123456789"
API_SECRET = "kit-secret-SHOULD-NEVER-APPEAR-9f8e7d"
BTC = instrument_key("CRYPTO", "BTC/USDT")
ETH = instrument_key("CRYPTO", "ETH/USDT")


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Live:
    exchange: FakeExchange
    server: FakeExchangeServer
    prices: FixedPrices
    venue: CcxtVenue
    broker: CcxtBroker


def venue_spec(url: str, **overrides: object) -> VenueSpec:
    settings: dict[str, object] = {
        "name": "fake-binance", "ccxt_id": "binance", "api_base_url": url, "timeout_s": 2.0,
        "rate_limit": False,
        "credentials": CredentialSources(api_key_env="KIT_API_KEY", secret_env="KIT_SECRET")}
    settings.update(overrides)
    return VenueSpec(**settings)  # type: ignore[arg-type]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    monkeypatch.setenv("KIT_API_KEY", API_KEY)
    monkeypatch.setenv("KIT_SECRET", API_SECRET)
    prices = FakeExchange.fixed_prices({"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000")})
    exchange = FakeExchange([BTCUSDT, ETHUSDT], prices, api_key=API_KEY, api_secret=API_SECRET,
                            balances={"USDT": Decimal("10000")})
    with FakeExchangeServer(exchange) as server:
        venue = CcxtVenue(venue_spec(server.url), private=True)
        instruments = {key: venue_instrument(venue, "CRYPTO", key.split(":", 1)[1])
                       for key in (BTC, ETH)}
        yield Live(exchange, server, prices, venue, CcxtBroker(venue, instruments, WallClock()))
        assert server.api.unrouted == [], "the adapter called endpoints the fake does not serve"
        assert exchange.internal_errors == []
