"""Bar history on SQLite and PostgreSQL, recorded from the sandbox service on loopback:
backfilling twice stores nothing twice, a backfill killed mid-way continues where it
stopped, each closed minute is written once, and demo time's bars land in their session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.bar_gaps import find_gaps
from fleetkit.core.bars import BarRecord
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.data.recorder import BarRecorder, Feed
from fleetkit.runtime.bar_sources import RECORDER_ACCOUNT, SandboxBars
from fleetkit.store import migrate
from fleetkit.store.bars import BarStore
from fleetkit.store.database import Database, open_database, upgrade_database
from fleetkit.store.schema import bars
from tests.support import Killed

BTC, AAA = "CRYPTO:BTC/USDT", "NYSE:AAA"
MINUTE = timedelta(minutes=1)


@pytest.fixture
def market_db(database_url: str) -> Iterator[Database]:
    """A market-data database of its own: only the market_data branch, migrated."""
    database = open_database(database_url, require_schema=False)
    upgrade_database(database, (migrate.MARKET_DATA,))
    database.dispose()
    checked = open_database(database_url, branches=migrate.COLLECTOR_BRANCHES)
    yield checked
    checked.dispose()


@pytest.fixture
def store(market_db: Database) -> BarStore:
    return BarStore(market_db.engine)


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


def serve(prices: ScriptedPrices, clock: ManualClock, **settings: Any) -> Any:
    return SandboxService(build_venue(prices, clock, **settings), match_interval_s=3600)


def count(store_db: Database, instrument: str) -> int:
    with store_db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(bars)
                                .where(bars.c.instrument == instrument)).scalar_one())


class DiesOnCall:
    """A bar source that dies (kill -9) on its `n`th request for bars."""

    def __init__(self, source: SandboxBars, n: int) -> None:
        self.source, self.n, self.calls = source, n, 0
        self.name = source.name

    def now(self, market: str) -> datetime:
        return self.source.now(market)

    def minute_bars(self, instrument: str, start: datetime, end: datetime) -> list[Bar]:
        self.calls += 1
        if self.calls == self.n:
            raise Killed
        return self.source.minute_bars(instrument, start, end)


def test_bars_round_trip_exactly_and_a_second_write_inserts_nothing(
        store: BarStore, market_db: Database) -> None:
    at = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
    written = [BarRecord(at + n * MINUTE, Decimal("30000.01"), Decimal("30000.5"),
                         Decimal("29999.99"), Decimal("30000.2"), Decimal("0.00012345"))
               for n in range(3)]
    assert store.write(BTC, "1m", written, source="test", recorded_at=at) == 3
    assert store.write(BTC, "1m", written, source="test", recorded_at=at) == 0
    assert store.read(BTC, "1m", at, at + 3 * MINUTE) == written
    assert store.last_open_time(BTC, "1m") == at + 2 * MINUTE
    assert count(market_db, BTC) == 3


def test_backfilling_twice_stores_no_bar_twice_and_then_each_closed_minute_once(
        store: BarStore, market_db: Database, prices: ScriptedPrices) -> None:
    clock = ManualClock(NEW_YORK_MIDDAY)
    recorder = BarRecorder(store, clock, lookback=timedelta(hours=3), chunk=timedelta(hours=1))
    with serve(prices, clock) as service, SandboxClient(service.url, RECORDER_ACCOUNT) as c:
        feed = Feed(BTC, SandboxBars(c))
        first = recorder.catch_up(feed)
        assert (first.fetched, first.inserted) == (180, 180)
        again = recorder.catch_up(feed, since=NEW_YORK_MIDDAY - timedelta(hours=3))
        assert (again.fetched, again.inserted) == (180, 0)
        assert count(market_db, BTC) == 180
        clock.advance(timedelta(minutes=5, seconds=30))
        later = recorder.catch_up(feed)
        assert (later.start, later.inserted) == (NEW_YORK_MIDDAY, 5)
        assert later.last == NEW_YORK_MIDDAY + 4 * MINUTE
    assert count(market_db, BTC) == 185


def test_a_backfill_killed_midway_continues_from_the_last_stored_bar(
        store: BarStore, market_db: Database, prices: ScriptedPrices) -> None:
    clock = ManualClock(NEW_YORK_MIDDAY)
    recorder = BarRecorder(store, clock, lookback=timedelta(hours=3), chunk=timedelta(hours=1))
    with serve(prices, clock) as service, SandboxClient(service.url, RECORDER_ACCOUNT) as c:
        source = SandboxBars(c)
        with pytest.raises(Killed):
            recorder.catch_up(Feed(BTC, DiesOnCall(source, n=3)))
        assert count(market_db, BTC) == 120  # two chunks committed, the third lost
        resumed = recorder.catch_up(Feed(BTC, source))
    start = NEW_YORK_MIDDAY - timedelta(hours=3)
    assert resumed.start == start + timedelta(hours=2)
    assert (resumed.fetched, resumed.inserted) == (60, 60)
    present = store.open_times(BTC, "1m", start, NEW_YORK_MIDDAY)
    assert len(present) == 180
    utc_day = start.replace(hour=0)
    assert find_gaps(present, [Session(utc_day, utc_day + timedelta(days=1))], start,
                     NEW_YORK_MIDDAY) == []


def test_demo_time_bars_land_in_the_session_they_were_traded_in(
        store: BarStore, prices: ScriptedPrices) -> None:
    night = datetime(2024, 1, 3, 3, 0, tzinfo=UTC)  # New York closed: demo time goes back
    clock = ManualClock(night)
    recorder = BarRecorder(store, clock, lookback=timedelta(days=1))
    with serve(prices, clock, time_mode="demo") as service, \
            SandboxClient(service.url, RECORDER_ACCOUNT) as c:
        done = recorder.catch_up(Feed(AAA, SandboxBars(c)))
    assert done.inserted > 0
    sessions = prices.sessions("XNYS", done.start.date(), done.end.date())
    present = store.open_times(AAA, "1m", done.start, done.end)
    # Every bar inside a session of venue time, and every minute of it there.
    assert all(any(s.open <= t < s.close for s in sessions) for t in present)
    newest = max(present) + MINUTE
    assert find_gaps(present, sessions, done.start, newest) == []
