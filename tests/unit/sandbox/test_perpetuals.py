"""The invented BTC/USDT perpetual: a mark around the index, funding every 8 hours
(perpetuals.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.errors import UnknownInstrumentError
from fleetkit.brokers.sandbox.perpetuals import (
    FUNDING_INTERVAL_S,
    SandboxPerpetuals,
    funding_rate,
    premium_at,
)
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars

PERP = "CRYPTO:BTC/USDT:USDT"
NOW = datetime(2026, 12, 7, 13, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def perpetuals() -> SandboxPerpetuals:
    calendars = MarketCalendars()
    venue = SandboxVenue(InventedPrices(9, load_catalog(), calendars), MemoryBook(),
                         ManualClock(NOW), VenueConfig(seed=9), sessions=calendars)
    return SandboxPerpetuals(venue)


def test_the_mark_sits_near_the_index_and_funding_is_every_eight_hours(
        perpetuals: SandboxPerpetuals) -> None:
    quote = perpetuals.quote(PERP)
    assert quote.index_instrument == "CRYPTO:BTC/USDT"
    assert abs(quote.mark_price / quote.index_price - 1) < Decimal("0.002")
    assert quote.bid < quote.mark_price < quote.ask
    assert quote.last_funding.at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert quote.next_funding_at == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    assert quote.funding_interval_s == FUNDING_INTERVAL_S == 8 * 3600


def test_funding_history_lists_each_settlement_once_and_none_in_the_future(
        perpetuals: SandboxPerpetuals) -> None:
    history = perpetuals.funding_history(PERP, NOW - timedelta(days=2), NOW + timedelta(days=1))
    assert [p.at.hour for p in history[:3]] == [16, 0, 8]
    assert len(history) == 6 and history[-1].at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert all(b.at - a.at == timedelta(hours=8) for a, b in pairwise(history))
    rates = [p.rate for p in history]
    assert all(abs(rate) <= Decimal("0.0075") for rate in rates)
    # At rest it is the interest rate, 0.01%; a large premium moves it.
    assert Decimal("0.0001") in rates and len(set(rates)) > 1


def test_the_premium_is_continuous_and_funding_reproducible() -> None:
    start = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    before = premium_at(9, PERP, start - timedelta(microseconds=1))
    assert premium_at(9, PERP, start) == pytest.approx(before, abs=1e-9)
    period = int(start.timestamp()) // FUNDING_INTERVAL_S
    assert funding_rate(9, PERP, period) == funding_rate(9, PERP, period)
    assert [funding_rate(9, PERP, period + k) for k in range(10)] != [
        funding_rate(10, PERP, period + k) for k in range(10)]


def test_an_unknown_perpetual_is_refused_naming_the_known_ones(
        perpetuals: SandboxPerpetuals) -> None:
    with pytest.raises(UnknownInstrumentError, match="lists CRYPTO:BTC/USDT:USDT"):
        perpetuals.quote("CRYPTO:ETH/USDT:USDT")
