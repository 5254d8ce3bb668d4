"""Option chains and quotes over loopback HTTP: a real SandboxService on the invented index
prices, asked through SandboxClient (the ChainSource port) and with raw HTTP for the shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.errors import DerivativesUnavailableError, UnknownInstrumentError
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.core.errors import BadBrokerReplyError
from fleetkit.core.options import OptionKind
from fleetkit.data.ports import ChainSource

SEED = 5
# Thursday 10 December 2026, 11:00 IST: SENSEX's weekly expires today.
MORNING = datetime(2026, 12, 10, 5, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture(scope="module")
def service(clock: ManualClock) -> Iterator[SandboxService]:
    calendars = MarketCalendars(load_overrides(None).for_market_calendars())
    venue = SandboxVenue(InventedPrices(SEED, load_catalog(), calendars), MemoryBook(), clock,
                         VenueConfig(seed=SEED), sessions=calendars)
    with SandboxService(venue, match_interval_s=3600) as running:
        yield running


@pytest.fixture
def client(service: SandboxService) -> Iterator[SandboxClient]:
    with SandboxClient(service.url, "options-reader") as connected:
        yield connected


def test_the_client_is_a_chain_source(client: SandboxClient) -> None:
    source: ChainSource = client
    chain = source.chain("NIFTY", strikes_each_side=5)
    assert chain.expiries == (date(2026, 12, 15), date(2026, 12, 29))
    assert chain.expiry == date(2026, 12, 15)  # the nearest
    assert [row.strike for row in chain.rows] == [
        chain.atm_strike + chain.strike_step * i for i in range(-5, 6)]
    assert abs(chain.spot - chain.atm_strike) <= chain.strike_step / 2
    assert chain.rows[0].call.instrument == f"NFO:NIFTY26D15{chain.rows[0].strike}CE"
    assert chain.ts == MORNING
    monthly = source.chain("NIFTY", date(2026, 12, 29), 0)
    assert [r.put.instrument for r in monthly.rows] == [f"NFO:NIFTY26DEC{monthly.atm_strike}PE"]


def test_quotes_for_a_list_of_instruments_match_the_chain(client: SandboxClient) -> None:
    chain = client.chain("SENSEX", strikes_each_side=2)
    keys = [q.instrument for row in chain.rows for q in (row.call, row.put)]
    quotes = client.option_quotes(keys)
    assert list(quotes) == keys
    for row in chain.rows:
        assert quotes[row.call.instrument] == row.call
        assert quotes[row.put.instrument] == row.put
        assert row.put.kind is OptionKind.PUT and row.put.underlying_price == chain.spot


def test_the_answer_is_shaped_like_kites_quote_api(service: SandboxService,
                                                   client: SandboxClient) -> None:
    key = client.chain("BANKNIFTY", strikes_each_side=0).rows[0].call.instrument
    answer = httpx.get(f"{service.url}/v1/quotes", params={"instruments": key}).json()
    quote = answer["data"][key]
    assert {"last_price", "volume", "oi", "timestamp", "depth", "tradingsymbol",
            "instrument_type", "strike", "expiry", "lot_size"} <= set(quote)
    assert quote["tradingsymbol"] == key.split(":")[1] and quote["instrument_type"] == "CE"
    assert float(quote["depth"]["buy"][0]["price"]) < float(quote["depth"]["sell"][0]["price"])
    assert quote["lot_size"] == 35


def test_errors_answer_in_one_line_naming_the_fix(service: SandboxService,
                                                  client: SandboxClient) -> None:
    with pytest.raises(DerivativesUnavailableError, match="no options on 'FINNIFTY'"):
        client.chain("FINNIFTY")
    with pytest.raises(BadBrokerReplyError, match="lists no expiry on 2026-12-11"):
        client.chain("NIFTY", date(2026, 12, 11))
    with pytest.raises(UnknownInstrumentError, match="NFO:NIFTY26D0124000CE"):
        client.option_quotes(["NFO:NIFTY26D0124000CE"])
    answer = httpx.get(f"{service.url}/v1/chain", params={"underlying": "NIFTY",
                                                          "expiry": "15/12/2026"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "bad_request",
                             "message": "expiry='15/12/2026': expected a date, YYYY-MM-DD"}


def test_the_expiring_weekly_leaves_at_the_close_and_the_next_joins(
        client: SandboxClient, clock: ManualClock) -> None:
    expiring = client.chain("SENSEX", strikes_each_side=0)
    assert expiring.expiry == date(2026, 12, 10)
    key = expiring.rows[0].call.instrument
    clock.set(datetime(2026, 12, 10, 10, 0, tzinfo=UTC))  # 15:30 IST
    try:
        assert client.chain("SENSEX").expiries == (date(2026, 12, 17),)
        with pytest.raises(UnknownInstrumentError, match="is not listed now"):
            client.option_quotes([key])
        # The chain as it stood that morning is still there to ask for.
        assert client.chain("SENSEX", date(2026, 12, 10), 0,
                            at=MORNING - timedelta(minutes=1)).expiry == date(2026, 12, 10)
    finally:
        clock.set(MORNING)


def test_index_futures_through_the_client(client: SandboxClient) -> None:
    curve = client.futures("SENSEX")
    assert [q.instrument for q in curve.futures] == [
        "BFO:SENSEX26DECFUT", "BFO:SENSEX27JANFUT", "BFO:SENSEX27FEBFUT"]
    assert curve.front == "BFO:SENSEX26DECFUT" and curve.ts == MORNING
    assert all(q.underlying_price == curve.spot and q.lot_size == 20 for q in curve.futures)


def test_the_perpetual_and_its_funding_through_the_client(client: SandboxClient) -> None:
    quote = client.perpetual("CRYPTO:BTC/USDT:USDT")
    assert quote.next_funding_at == datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
    history = client.funding_history("CRYPTO:BTC/USDT:USDT", MORNING - timedelta(days=1),
                                      MORNING)
    assert [p.at.hour for p in history] == [8, 16, 0]
    assert history[-1] == quote.last_funding
    with pytest.raises(UnknownInstrumentError, match="no perpetual 'CRYPTO:ETH/USDT:USDT'"):
        client.perpetual("CRYPTO:ETH/USDT:USDT")
