"""A recorder that finds minutes missing inside a session says so, once per gap: a `data.gap`
warning event and its notification to the data concern, on SQLite and PostgreSQL, however
many passes (or restarted recorders) see the same gap; minutes still due at the end of a
pass are not a gap until the venue is late with them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from fleetkit.core.bar_gaps import Gap
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.data.recorder import BarRecorder, Catchup, Feed
from fleetkit.runtime.clock import ManualClock
from fleetkit.store.bars import BarStore
from fleetkit.store.data_alerts import GapAlertStore
from fleetkit.store.schema import events, outbox

T0 = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
BTC = "CRYPTO:BTC/USDT"


class SilentAt:
    """A venue that serves every closed minute but those in `silent` (an outage)."""

    name = "fake"

    def __init__(self, clock: ManualClock, silent: set[datetime]) -> None:
        self.clock, self.silent = clock, silent

    def now(self, market: str) -> datetime:
        return self.clock.now()

    def minute_bars(self, instrument: str, start: datetime, end: datetime) -> list[Bar]:
        found, at = [], start
        while at < end and at + MINUTE <= self.clock.now():
            if at not in self.silent:
                found.append(Bar(at, 100.0, 101.0, 99.5, 100.5, 3.0))
            at += MINUTE
        return found


def around_the_clock(market: str, start: datetime, end: datetime) -> Sequence[Session]:
    """A 24/7 market: one session per UTC day."""
    day = start.replace(hour=0, minute=0)
    return [Session(day + timedelta(days=n), day + timedelta(days=n + 1))
            for n in range((end - day).days + 1)]


def alerts(fleet_db: Any) -> tuple[list[Any], list[Any]]:
    with fleet_db.engine.connect() as conn:
        found = conn.execute(select(events.c.kind, events.c.severity, events.c.code,
                                    events.c.data).order_by(events.c.id)).all()
        sent = conn.execute(select(outbox.c.kind, outbox.c.concern, outbox.c.severity,
                                   outbox.c.text).order_by(outbox.c.id)).all()
    return list(found), list(sent)


def test_each_gap_is_one_warning_event_to_the_data_concern_however_often_it_is_seen(
        fleet_db: Any) -> None:
    clock = ManualClock(T0)
    hole = {T0 - 20 * MINUTE + n * MINUTE for n in range(3)}  # closed: bars on both sides
    outage = {T0 + n * MINUTE for n in range(3)}  # at the live edge, served again after
    venue = SilentAt(clock, hole | outage)
    store = BarStore(fleet_db.engine)

    def recorder() -> BarRecorder:
        return BarRecorder(store, clock, lookback=timedelta(minutes=30),
                           sessions=around_the_clock, alerts=GapAlertStore(fleet_db.engine))

    stop = threading.Event()
    passes: list[Catchup] = []
    seen: list[int] = []  # data.gap events after each pass

    def on_pass(done: Catchup) -> None:
        passes.append(done)
        seen.append(len(alerts(fleet_db)[0]))
        clock.advance(MINUTE)
        if len(passes) == 6:
            stop.set()

    recorder().follow([Feed(BTC, venue)], stop, on_pass, wait=lambda _seconds: None)

    # Pass 1 finds the hole; pass 2 sees one minute of the outage (due, not yet late);
    # pass 3 two (late: told); passes 4 and 5 see the same gap grow and then close.
    assert seen == [1, 1, 2, 2, 2, 2]
    assert [p.gaps for p in passes[:5]] == [
        (Gap(T0 - 20 * MINUTE, T0 - 17 * MINUTE),), (), (Gap(T0, T0 + 2 * MINUTE),),
        (Gap(T0, T0 + 3 * MINUTE),), (Gap(T0, T0 + 3 * MINUTE),)]
    assert passes[5].gaps == ()

    # A restarted recorder refetching the whole range sees both gaps again: nothing new.
    again = recorder().catch_up(Feed(BTC, venue), since=T0 - 30 * MINUTE)
    assert again.gaps == (Gap(T0 - 20 * MINUTE, T0 - 17 * MINUTE), Gap(T0, T0 + 3 * MINUTE))

    found, sent = alerts(fleet_db)
    assert [(e.kind, e.severity, e.code) for e in found] == [("data.gap", "warning", BTC)] * 2
    assert [(e.data["start"], e.data["minutes"], e.data["source"]) for e in found] == [
        ((T0 - 20 * MINUTE).isoformat(), 3, "fake"), (T0.isoformat(), 2, "fake")]
    assert [(n.kind, n.concern, n.severity) for n in sent] == [
        ("data.gap", "data", "warning")] * 2
    assert "3 minutes of bars missing from 2024-01-03 14:40 UTC" in sent[0].text


def test_without_sessions_no_gap_is_judged(fleet_db: Any) -> None:
    clock = ManualClock(T0)
    venue = SilentAt(clock, {T0 - 5 * MINUTE})
    done = BarRecorder(BarStore(fleet_db.engine), clock, lookback=timedelta(minutes=10),
                       alerts=GapAlertStore(fleet_db.engine)).catch_up(Feed(BTC, venue))
    assert (done.inserted, done.gaps) == (9, ())
    assert alerts(fleet_db) == ([], [])


def test_the_same_gap_told_twice_is_recorded_once(fleet_db: Any) -> None:
    gap = Gap(T0, T0 + 5 * MINUTE)
    told = [GapAlertStore(fleet_db.engine).gap_found(BTC, gap, "fake", T0 + n * MINUTE)
            for n in range(2)]
    assert told == [True, False]
    # A later gap in the same instrument is another one.
    assert GapAlertStore(fleet_db.engine).gap_found(BTC, Gap(T0 + 9 * MINUTE, T0 + 10 * MINUTE),
                                                    "fake", T0 + 11 * MINUTE)
    assert len(alerts(fleet_db)[0]) == 2
