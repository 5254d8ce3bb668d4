"""Sub-minute sandbox bars: they join up exactly with the minute bars they split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.calendars.market_calendars import MarketCalendars

NOW = datetime(2026, 11, 20, 12, 0, 7, tzinfo=UTC)  # a Friday


@pytest.fixture(scope="module")
def prices() -> InventedPrices:
    return InventedPrices(7, load_catalog(), MarketCalendars())


@pytest.mark.parametrize("interval_s", [5, 10, 15, 30])
def test_sub_minute_bars_open_and_close_where_their_minute_does(prices: InventedPrices,
                                                                interval_s: int) -> None:
    minute = prices.bars("CRYPTO:BTC/USDT", 60, NOW - timedelta(minutes=2), NOW, NOW)[-1]
    parts = prices.bars("CRYPTO:BTC/USDT", interval_s, minute.ts,
                        minute.ts + timedelta(minutes=1), NOW)
    assert len(parts) == 60 // interval_s
    assert parts[0].open == minute.open and parts[-1].close == minute.close
    assert all(a.close == b.open for a, b in pairwise(parts))
    assert all(p.low <= min(p.open, p.close) and p.high >= max(p.open, p.close) for p in parts)
    assert sum(p.volume for p in parts) == pytest.approx(minute.volume)


def test_there_are_no_sub_minute_bars_while_a_market_is_closed(prices: InventedPrices) -> None:
    saturday = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    assert prices.bars("NYSE:JPM", 15, saturday, saturday + timedelta(minutes=5),
                       saturday + timedelta(hours=1)) == []


def test_a_bar_interval_that_does_not_divide_a_minute_is_refused(prices: InventedPrices) -> None:
    with pytest.raises(ValueError, match="divide 60 s"):
        prices.bars("CRYPTO:BTC/USDT", 7, NOW - timedelta(minutes=1), NOW, NOW)
