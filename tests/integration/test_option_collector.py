"""The options collector against the real sandbox service on loopback (its chains over
REST, through SandboxClient) into option_quotes on SQLite and PostgreSQL: each session
minute once, missed minutes recorded, alerted once and filled from the venue, nothing on a
weekend or a holiday, expiries rolling, bad quotes refused and counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.config.market_data import OptionCollectorSettings
from fleetkit.core.sessions import Session
from fleetkit.data.option_collector import OptionCollector
from fleetkit.data.plans import CollectorPlan
from fleetkit.store.collector_stats import CollectorStats
from fleetkit.store.data_alerts import MISSED_KIND, MissedMinuteAlerts
from fleetkit.store.option_quotes import MISSED, WRITTEN, OptionQuoteStore
from fleetkit.store.schema import events, option_quotes

SEED = 5
IST = ZoneInfo("Asia/Kolkata")
# Thursday 10 December 2026, 11:00 IST: SENSEX's weekly expires today.
MORNING = datetime(2026, 12, 10, 5, 30, tzinfo=UTC)
DAY = date(2026, 12, 10)
CALENDARS = MarketCalendars(load_overrides(None).for_market_calendars())
STRIKES = 2  # 5 strikes x 2 sides per chain: small and quick
# NIFTY weekly + monthly, BANKNIFTY monthly, SENSEX weekly (4 chains) x 10 quotes.
PER_MINUTE = 40


def sessions(market: str, start: datetime, end: datetime) -> list[Session]:
    calendar = "XBOM" if market == "BSE" else "XNSE" if market == "NSE" else market
    return list(CALENDARS.sessions(calendar, start.date() - timedelta(days=1),
                                   end.date() + timedelta(days=1)))


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(MORNING)


@pytest.fixture(scope="module")
def service(clock: ManualClock) -> Iterator[SandboxService]:
    venue = SandboxVenue(InventedPrices(SEED, load_catalog(), CALENDARS), MemoryBook(), clock,
                         VenueConfig(seed=SEED), sessions=CALENDARS)
    with SandboxService(venue, match_interval_s=3600) as running:
        yield running


@pytest.fixture
def client(service: SandboxService, clock: ManualClock) -> Iterator[SandboxClient]:
    clock.set(MORNING)
    with SandboxClient(service.url, "options-test") as connected:
        yield connected


def settings(**fields: Any) -> CollectorPlan:
    chains = [{"underlying": u, "strikes_each_side": STRIKES}
              for u in ("NIFTY", "BANKNIFTY", "SENSEX")]
    return OptionCollectorSettings.model_validate({"chains": chains, **fields}).plan()


def collector(db: Any, client: SandboxClient, clock: ManualClock, **fields: Any
              ) -> OptionCollector:
    return OptionCollector(settings(**fields), client, "sandbox", OptionQuoteStore(db.engine),
                           CollectorStats(db.engine), sessions, IST, clock,
                           alerts=MissedMinuteAlerts(db.engine))


def quote_count(db: Any) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(option_quotes)).scalar_one())


def missed_events(db: Any) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.execute(select(events.c.message)
                                 .where(events.c.kind == MISSED_KIND)).scalars())


def test_each_session_minute_is_written_once_with_every_configured_chain(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    options = collector(fleet_db, client, clock)
    clock.set(MORNING + timedelta(seconds=1))  # before the snapshot delay: not yet
    assert options.run_pass().written == []
    clock.set(MORNING + timedelta(seconds=2))
    report = options.run_pass()
    assert [(m, rows) for m, rows, _ in report.written] == [(MORNING, PER_MINUTE)]
    assert options.run_pass().written == []  # the same minute again: nothing
    stored = OptionQuoteStore(fleet_db.engine).chain("NIFTY", MORNING)
    assert {q.expiry for q in stored} == {date(2026, 12, 15), date(2026, 12, 29)}
    assert {q.source for q in stored} == {"sandbox"}
    venue = client.chain("NIFTY", date(2026, 12, 15), STRIKES, at=MORNING + timedelta(seconds=2))
    assert {q.instrument for q in stored if q.expiry == venue.expiry} == {
        leg.instrument for row in venue.rows for leg in (row.call, row.put)}
    assert {q.underlying for q in OptionQuoteStore(fleet_db.engine).chain(
        "SENSEX", MORNING)} == {"SENSEX"}
    counters = CollectorStats(fleet_db.engine).counters("options", DAY)
    assert counters["rows"] == PER_MINUTE and counters["minutes"] == 1
    assert counters["write_count"] == 1 and "write_ms_max" in counters
    assert missed_events(fleet_db) == []


def test_minutes_missed_while_down_are_recorded_alerted_once_and_filled(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    clock.set(MORNING + timedelta(seconds=2))
    collector(fleet_db, client, clock).run_pass()
    # The process dies; a new one starts five minutes later.
    later = MORNING + timedelta(minutes=5, seconds=3)
    clock.set(later)
    report = collector(fleet_db, client, clock).run_pass()
    gap = [MORNING + timedelta(minutes=i) for i in range(1, 5)]
    assert report.missed == gap
    assert [m for m, _ in report.filled] == gap
    store = OptionQuoteStore(fleet_db.engine)
    ledger = store.minutes("options", DAY)
    assert [(m.minute, m.status) for m in ledger] == [
        (MORNING + timedelta(minutes=i), WRITTEN) for i in range(6)]
    assert quote_count(fleet_db) == 6 * PER_MINUTE
    # A filled minute holds what the venue quoted then, not now.
    filled = {q.instrument: q for q in store.chain("NIFTY", gap[0])}
    then = client.chain("NIFTY", date(2026, 12, 15), STRIKES, at=gap[0] + timedelta(seconds=2))
    assert filled[then.rows[0].call.instrument].bid == then.rows[0].call.bid
    (told,) = missed_events(fleet_db)
    assert "4 minutes" in told
    (recorded,) = CollectorStats(fleet_db.engine).gaps("options")
    assert (recorded.started_at, recorded.ended_at, recorded.filled) == (
        gap[0], gap[-1] + timedelta(minutes=1), 4)
    # Later passes see nothing new to tell or fill.
    clock.set(later + timedelta(seconds=20))
    again = collector(fleet_db, client, clock).run_pass()
    assert (again.missed, again.filled, again.written) == ([], [], [])
    assert len(missed_events(fleet_db)) == 1


def test_without_filling_a_missed_minute_stays_recorded_as_missed(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    clock.set(MORNING + timedelta(seconds=2))
    collector(fleet_db, client, clock, fill_missed=False).run_pass()
    clock.set(MORNING + timedelta(minutes=3, seconds=2))
    report = collector(fleet_db, client, clock, fill_missed=False).run_pass()
    assert report.filled == [] and len(report.missed) == 2
    statuses = [m.status for m in OptionQuoteStore(fleet_db.engine).minutes("options", DAY)]
    assert statuses == [WRITTEN, MISSED, MISSED, WRITTEN]
    assert CollectorStats(fleet_db.engine).counters("options", DAY)["missed"] == 2


@pytest.mark.parametrize(("last_run", "moment"), [
    # Friday's last minute, then Saturday.
    (datetime(2026, 12, 11, 9, 59, 2, tzinfo=UTC), datetime(2026, 12, 12, 5, 30, tzinfo=UTC)),
    # Thursday the 24th's last minute, then Christmas: NSE is closed.
    (datetime(2026, 12, 24, 9, 59, 2, tzinfo=UTC), datetime(2026, 12, 25, 5, 30, tzinfo=UTC)),
    # Yesterday's last minute, then 09:10 IST: before the open.
    (datetime(2026, 12, 9, 9, 59, 2, tzinfo=UTC), datetime(2026, 12, 10, 3, 40, tzinfo=UTC)),
])
def test_no_session_no_snapshot_and_no_gap(fleet_db: Any, client: SandboxClient,
                                           clock: ManualClock, last_run: datetime,
                                           moment: datetime) -> None:
    clock.set(last_run)
    collector(fleet_db, client, clock, fill_missed=False).run_pass()
    clock.set(moment)
    try:
        report = collector(fleet_db, client, clock, fill_missed=False).run_pass()
    finally:
        clock.set(MORNING)
    assert (report.written, report.missed) == ([], [])
    assert missed_events(fleet_db) == []


def test_a_whole_day_down_is_found_missing_when_the_collector_comes_back(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    clock.set(datetime(2026, 12, 7, 9, 59, 2, tzinfo=UTC))  # Monday's last minute
    collector(fleet_db, client, clock, fill_missed=False).run_pass()
    clock.set(datetime(2026, 12, 9, 3, 50, 1, tzinfo=UTC))  # Wednesday 09:20 IST
    try:
        report = collector(fleet_db, client, clock, fill_missed=False).run_pass()
    finally:
        clock.set(MORNING)
    tuesday = datetime(2026, 12, 8, 3, 45, tzinfo=UTC)
    wednesday = datetime(2026, 12, 9, 3, 45, tzinfo=UTC)
    assert report.missed == ([tuesday + timedelta(minutes=i) for i in range(375)]
                             + [wednesday + timedelta(minutes=i) for i in range(5)])
    assert len(missed_events(fleet_db)) == 2  # one per run of minutes
    store = OptionQuoteStore(fleet_db.engine)
    assert len(store.minutes("options", date(2026, 12, 8))) == 375


def test_after_the_close_the_rest_of_the_session_is_missed_and_nothing_more(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    clock.set(MORNING + timedelta(seconds=2))
    collector(fleet_db, client, clock, fill_missed=False).run_pass()
    clock.set(datetime(2026, 12, 10, 10, 5, tzinfo=UTC))  # 15:35 IST
    try:
        report = collector(fleet_db, client, clock, fill_missed=False).run_pass()
    finally:
        clock.set(MORNING)
    assert report.written == []
    close = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)  # 15:30 IST
    assert report.missed == [MORNING + timedelta(minutes=i)
                             for i in range(1, int((close - MORNING) / timedelta(minutes=1)))]
    assert len(missed_events(fleet_db)) == 1


def test_the_expired_weekly_leaves_and_the_next_joins(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    options = collector(fleet_db, client, clock)
    clock.set(MORNING + timedelta(seconds=2))
    before = {q.expiry for q in options.snapshot(None) if q.underlying == "SENSEX"}
    assert before == {date(2026, 12, 10)}
    next_morning = datetime(2026, 12, 11, 5, 30, 2, tzinfo=UTC)
    clock.set(next_morning)
    try:
        after = {q.expiry for q in options.snapshot(None) if q.underlying == "SENSEX"}
    finally:
        clock.set(MORNING)
    assert after == {date(2026, 12, 17)}


class Tampered:
    """The real venue's chains with one quote crossed, one negative and one stale."""

    def __init__(self, client: SandboxClient) -> None:
        self._client = client

    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None) -> Any:
        real = self._client.chain(underlying, expiry, strikes_each_side, at)
        if underlying != "NIFTY" or real.expiry != date(2026, 12, 15):
            return real
        rows = list(real.rows)
        first, second, third = rows[0], rows[1], rows[2]
        rows[0] = replace(first, call=replace(first.call, bid=first.call.ask + 1))
        rows[1] = replace(second, put=replace(second.put, last=Decimal(-1)))
        rows[2] = replace(third, call=replace(third.call, ts=real.ts - timedelta(minutes=5)))
        return replace(real, rows=tuple(rows))

    def option_quotes(self, instruments: Any) -> Any:
        return self._client.option_quotes(instruments)

    def futures(self, underlying: str, at: datetime | None = None) -> Any:
        return self._client.futures(underlying, at)


def test_bad_quotes_are_refused_counted_and_never_stored(
        fleet_db: Any, client: SandboxClient, clock: ManualClock) -> None:
    options = OptionCollector(settings(), Tampered(client), "sandbox",
                              OptionQuoteStore(fleet_db.engine), CollectorStats(fleet_db.engine),
                              sessions, IST, clock)
    clock.set(MORNING + timedelta(seconds=2))
    report = options.run_pass()
    assert report.rejected == {"crossed": 1, "bad_price": 1, "stale": 1}
    assert [rows for _, rows, _ in report.written] == [PER_MINUTE - 3]
    counters = CollectorStats(fleet_db.engine).counters("options", DAY)
    assert (counters["rejected.crossed"], counters["rejected.bad_price"],
            counters["rejected.stale"]) == (1, 1, 1)
    stored = OptionQuoteStore(fleet_db.engine).chain("NIFTY", MORNING)
    assert all(q.bid is None or q.ask is None or q.bid <= q.ask for q in stored)


def test_minutes_are_judged_in_venue_time(fleet_db: Any, client: SandboxClient,
                                          clock: ManualClock) -> None:
    """The sandbox's demo time: wall 23:30 UTC is 05:30 UTC the venue's day, in session;
    the minute's trading day is still the wall clock's (05:00 IST the next day)."""
    offset = -timedelta(hours=18)
    options = OptionCollector(settings(), client, "sandbox", OptionQuoteStore(fleet_db.engine),
                              CollectorStats(fleet_db.engine), sessions, IST, clock,
                              offset=offset)
    wall = MORNING - offset
    assert options.in_session(wall) and not options.in_session(MORNING)
    assert options.trading_day(wall) == DAY + timedelta(days=1)
