"""The recorder refuses what is not a good bar (never stored, counted) and the follow loop
writes each closed minute once, resuming from the newest stored bar."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from fleetkit.core.market_data import Bar
from fleetkit.data.recorder import BarRecorder, Catchup, Feed, to_records
from fleetkit.runtime.clock import ManualClock
from fleetkit.store.bars import BarStore
from fleetkit.store.schema import bars

T0 = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def good(at: datetime) -> Bar:
    return Bar(at, 100.0, 101.0, 99.5, 100.5, 3.0)


def test_bad_bars_are_refused_and_counted() -> None:
    sent = [good(T0), good(T0),  # repeated
            Bar(T0 + MINUTE, float("nan"), 1.0, 1.0, 1.0, 1.0),
            Bar(T0 + 2 * MINUTE, 10.0, 9.0, 8.0, 10.0, 1.0),  # close above the high
            good(T0 + 3 * MINUTE + timedelta(seconds=7)),  # off the minute
            good(T0 + 10 * MINUTE),  # outside the window asked for
            good(T0 + 4 * MINUTE)]
    records, refused = to_records("CRYPTO:BTC/USDT", sent, T0, T0 + 5 * MINUTE)
    assert [r.open_time for r in records] == [T0, T0 + 4 * MINUTE]
    assert refused == 5


class Minutes:
    """A venue whose every minute up to the clock's is a bar."""

    name = "fake"

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def now(self, market: str) -> datetime:
        return self.clock.now()

    def minute_bars(self, instrument: str, start: datetime, end: datetime) -> list[Bar]:
        found, at = [], start
        while at < end and at + MINUTE <= self.clock.now():
            found.append(good(at))
            at += MINUTE
        return found


def test_follow_writes_each_closed_minute_once_until_stopped() -> None:
    engine = create_engine("sqlite://")
    bars.create(engine)
    clock = ManualClock(T0)
    recorder = BarRecorder(BarStore(engine), clock, lookback=timedelta(minutes=30))
    stop = threading.Event()
    passes: list[Catchup] = []

    def on_pass(done: Catchup) -> None:
        passes.append(done)
        clock.advance(MINUTE)  # the next minute closes while the loop waits
        if len(passes) == 3:
            stop.set()

    recorder.follow([Feed("CRYPTO:BTC/USDT", Minutes(clock))], stop, on_pass,
                    wait=lambda _seconds: None)
    assert [p.inserted for p in passes] == [30, 1, 1]
    assert passes[-1].last == T0 + MINUTE
    engine.dispose()
