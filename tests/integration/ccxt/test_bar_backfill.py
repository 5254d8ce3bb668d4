"""Bar history from an exchange through ccxt, wired from the fleet config as `fleet data
backfill` wires it (a paper bot, no credentials): a day and a half of one-minute candles
from the fake Binance on loopback, paged 1,000 at a time, stored exactly as served; a rerun
stores nothing twice and a resumed run asks for nothing it has."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from fleetkit.config.loader import parse_config
from fleetkit.core.bars import BarRecord
from fleetkit.data.recorder import BarRecorder
from fleetkit.runtime.bar_sources import configured_feeds
from fleetkit.runtime.clock import ManualClock
from fleetkit.store.bars import BarStore
from fleetkit.store.database import Database
from fleetkit.store.schema import bars
from fleetkit.testing.fake_exchange import Bar, FakeExchange, FakeExchangeServer, FakeMarket

T = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)  # the exchange's now
MINUTE = timedelta(minutes=1)
BTC = "CRYPTO:BTC/USDT"
BTCUSDT = FakeMarket("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"),
                     step_size=Decimal("0.00001"), min_qty=Decimal("0.00001"),
                     min_notional=Decimal("5"))


def candle(opened: datetime) -> Bar:
    """A different candle every minute, so a bar stored under the wrong minute shows."""
    n = int((opened - T) / MINUTE)
    close = Decimal(60000) + Decimal(n) / 4
    return (opened, close - 1, close + 2, close - 3, close, Decimal(n % 7 + 1) / 8)


class Klines:
    """The fake's bar source, noting the window of each klines request it answers."""

    def __init__(self) -> None:
        self.asked: list[datetime] = []

    def __call__(self, symbol: str, interval_s: int, start: datetime, end: datetime
                 ) -> list[Bar]:
        assert (symbol, interval_s) == ("BTCUSDT", 60)
        self.asked.append(start)
        found, at = [], start
        while at < end:
            found.append(candle(at))
            at += MINUTE
        return found


@pytest.fixture
def exchange() -> Iterator[tuple[FakeExchangeServer, Klines]]:
    klines = Klines()
    fake = FakeExchange([BTCUSDT], FakeExchange.fixed_prices({"BTCUSDT": Decimal(60000)}),
                        bars=klines, now=lambda: T)
    with FakeExchangeServer(fake) as server:
        yield server, klines
        assert server.api.unrouted == [], "the adapter called endpoints the fake does not serve"
        assert fake.internal_errors == []


def paper_config(url: str) -> str:
    return f"""
exchanges:
  fake:
    ccxt_id: binance
    api_base_url: {url}
    rate_limit: false
    credentials: {{api_key_env: FAKE_KEY, secret_env: FAKE_SECRET}}
bots:
  - {{name: btc, market: CRYPTO, symbols: [BTC/USDT], strategy: buy_and_hold, mode: paper,
     exchange: fake}}
"""


def stored(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(bars)).scalar_one())


def test_a_day_and_a_half_of_candles_is_paged_stored_as_served_and_never_twice(
        fleet_db: Database, exchange: tuple[FakeExchangeServer, Klines]) -> None:
    server, klines = exchange
    store = BarStore(fleet_db.engine)
    # Chunks of a day (the default): 1,440 candles take two pages, the last 720 one.
    recorder = BarRecorder(store, ManualClock(T), lookback=timedelta(days=1))
    start = T - timedelta(hours=36)
    config = parse_config(paper_config(server.url), "fleet.yaml")
    with configured_feeds(config) as feeds:
        [feed] = feeds
        assert (feed.instrument, feed.source.name) == (BTC, "ccxt:binance")
        first = recorder.catch_up(feed, since=start, until=T)
        assert klines.asked == [start, start + 1000 * MINUTE, start + timedelta(days=1)]
        assert (first.fetched, first.inserted, first.rejected) == (2160, 2160, 0)
        assert first.last == T - MINUTE

        again = recorder.catch_up(feed, since=start, until=T)
        assert (again.fetched, again.inserted) == (2160, 0)
        asked = len(klines.asked)
        resumed = recorder.catch_up(feed, until=T)  # from the newest stored bar: nothing due
        assert (resumed.start, resumed.fetched, len(klines.asked)) == (T, 0, asked)

    assert stored(fleet_db) == 2160
    expected = [BarRecord(*candle(start + n * MINUTE)) for n in range(2160)]
    assert store.read(BTC, "1m", start, T) == expected
