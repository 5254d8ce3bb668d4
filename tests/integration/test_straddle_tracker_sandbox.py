"""The straddle tracker against the real sandbox service on loopback (REST chains and the
WebSocket quote stream) into SQLite and PostgreSQL: snapshots persisted, a dropped
connection healed (resubscribed) and its gap filled from REST and recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.stream import StreamConfig
from fleetkit.brokers.sandbox.stream_client import SandboxQuoteStream
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.data.straddle_tracker import StraddleTracker, TrackerOptions
from fleetkit.store.collector_stats import CollectorStats
from fleetkit.store.schema import straddle_snapshots
from fleetkit.store.straddle_snapshots import StraddleSnapshotStore
from fleetkit.testing.loopback import free_port
from tests.support import eventually

SEED = 5
# Tuesday 8 December 2026, 11:00 IST: NSE in session; NIFTY's weekly expires today, at 15:30.
MORNING = datetime(2026, 12, 8, 5, 30, tzinfo=UTC)
TICKS = StreamConfig(tick_interval_s=0.05, heartbeat_interval_s=0.2)


class RunningClock:
    """The venue's clock: real seconds passing from a fixed moment in NSE hours, so ticks
    carry distinct times and the test runs at any wall-clock hour."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._began = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._began)


class Sandbox:
    """A sandbox service whose REST and stream ports survive a restart (a dropped stream)."""

    def __init__(self, clock: RunningClock) -> None:
        calendars = MarketCalendars(load_overrides(None).for_market_calendars())
        self.venue = SandboxVenue(InventedPrices(SEED, load_catalog(), calendars), MemoryBook(),
                                  clock, VenueConfig(seed=SEED), sessions=calendars)
        self.port = free_port()
        self.stream = StreamConfig(free_port(), TICKS.tick_interval_s,
                                   TICKS.heartbeat_interval_s)
        self.service = self._serve()

    def _serve(self) -> SandboxService:
        service = SandboxService(self.venue, port=self.port, stream=self.stream,
                                 match_interval_s=3600)
        service.start()
        return service

    def restart(self) -> None:
        """Drop every connection and serve again: what the QuoteStream kit's restart does."""
        self.service.stop()
        self.service = self._serve()


@pytest.fixture
def clock() -> RunningClock:
    return RunningClock(MORNING)


@pytest.fixture
def sandbox(clock: RunningClock) -> Iterator[Sandbox]:
    running = Sandbox(clock)
    yield running
    running.service.stop()


class Running:
    def __init__(self, tracker: StraddleTracker, stream: SandboxQuoteStream) -> None:
        self.tracker = tracker
        self.stream = stream
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.tracker.run(self.stop)
        except BaseException as exc:  # the test reports it
            self.failure = exc

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.stream.close()
        assert not self.thread.is_alive() and self.failure is None, self.failure


@pytest.fixture
def tracking(fleet_db: Any, sandbox: Sandbox, clock: RunningClock) -> Iterator[Running]:
    stream = SandboxQuoteStream.discover(sandbox.service.url, now=clock.now,
                                         backoff_initial_s=0.05, backoff_max_s=0.2)
    client = SandboxClient(sandbox.service.url, "straddle-tracker")
    tracker = StraddleTracker(
        TrackerOptions("straddles", ("NIFTY",), (1,), flush_interval_s=0.05,
                       counters_interval_s=0.2),
        client, stream, StraddleSnapshotStore(fleet_db.engine), CollectorStats(fleet_db.engine),
        now=clock.now, trading_day=lambda at: at.date())
    running = Running(tracker, stream)
    try:
        yield running
    finally:
        running.finish()
        client.close()


def rows(database: Any, source: str, after: datetime | None = None) -> int:
    s = straddle_snapshots.c
    query = select(func.count()).select_from(straddle_snapshots).where(s.source == source)
    if after is not None:
        query = query.where(s.at > after)
    with database.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_stream_ticks_become_persisted_snapshots(fleet_db: Any, tracking: Running) -> None:
    eventually(lambda: rows(fleet_db, "stream") >= 10, 10, "ten stream snapshots",
               interval_s=0.05)
    tracking.finish()
    store = StraddleSnapshotStore(fleet_db.engine)
    series = store.series("NIFTY", MORNING.date())
    assert series and series[0].source == "rest"  # the start's chain
    assert [s.at for s in series] == sorted(s.at for s in series)
    stream = [s for s in series if s.source == "stream"]
    assert stream, "the ATM legs ticked"
    for snapshot in stream:
        assert snapshot.expiry == date(2026, 12, 8)
        assert snapshot.premium is not None and snapshot.premium > 0
        assert snapshot.call.strike == snapshot.put.strike == snapshot.atm_strike
        assert snapshot.call_iv is not None and snapshot.put_iv is not None
    strangle = store.series("NIFTY", MORNING.date(), width=1)
    assert strangle and strangle[-1].call.strike - strangle[-1].put.strike == 100
    assert store.latest()["NIFTY"].width == 0
    counters = CollectorStats(fleet_db.engine).counters("straddles", MORNING.date())
    assert counters["snapshots"] == rows(fleet_db, "stream") + rows(fleet_db, "rest")
    assert counters["write_count"] >= 1


def test_a_dropped_connection_is_healed_and_its_gap_filled_from_rest(
        fleet_db: Any, sandbox: Sandbox, tracking: Running) -> None:
    eventually(lambda: rows(fleet_db, "stream") >= 5, 10, "stream snapshots", interval_s=0.05)
    before = rows(fleet_db, "rest")
    sandbox.restart()
    stats = CollectorStats(fleet_db.engine)
    eventually(lambda: stats.gaps("straddles"), 10, "the outage recorded", interval_s=0.05)
    gap = stats.gaps("straddles")[0]
    assert gap.scope == "NIFTY" and gap.reason == "quote stream dropped"
    assert gap.filled == 2 and gap.started_at <= gap.ended_at  # a REST snapshot per structure
    # Healed: resubscribed by the stream client, ticks flow into snapshots again.
    eventually(lambda: rows(fleet_db, "stream", after=gap.ended_at) >= 3, 10,
               "stream snapshots after the gap", interval_s=0.05)
    assert rows(fleet_db, "rest") >= before + 2
    tracking.finish()
    filled = [s for s in StraddleSnapshotStore(fleet_db.engine).series("NIFTY", MORNING.date())
              if s.at == gap.ended_at]
    assert [s.source for s in filled] == ["rest"]
    assert CollectorStats(fleet_db.engine).counters("straddles", MORNING.date())["gaps"] == 1
    assert tracking.stream.reconnects == 1
