"""Venue time: real mode runs on the wall clock; demo mode puts closed markets in session
from the first minute and keeps those offsets for good — while everything the venue hands
out stays on the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.errors import UnknownMarketError
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    DailySessions,
    ManualClock,
    ScriptedPrices,
    build_venue,
    equity,
    standard_instruments,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.brokers.sandbox.venuetime import DEMO_LEAD, demo_offset_s
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import ALWAYS_OPEN
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest

SATURDAY_NOON = datetime(2024, 1, 6, 12, 0, 42, tzinfo=UTC)
ZERO = timedelta(0)


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


def test_real_mode_runs_every_market_on_the_wall_clock(prices: ScriptedPrices) -> None:
    clock = ManualClock(NEW_YORK_MIDDAY)
    venue = build_venue(prices, clock)

    assert set(venue.offsets.values()) == {ZERO}
    assert venue.venue_now("JPX") == NEW_YORK_MIDDAY
    assert not venue.market_clock("JPX").is_open
    assert venue.market_clock("NYSE").is_open


def test_demo_mode_moves_a_closed_market_into_its_last_trading_stretch(
        prices: ScriptedPrices) -> None:
    venue = build_venue(prices, ManualClock(NEW_YORK_MIDDAY), time_mode="demo")

    assert venue.offsets["NYSE"] == ZERO  # open for half an hour already
    assert venue.offsets["CRYPTO"] == ZERO  # never closes
    afternoon_open = datetime(2024, 1, 3, 3, 30, tzinfo=UTC)  # Tokyo after its lunch break
    into = venue.venue_now("JPX") - afternoon_open
    assert DEMO_LEAD <= into < DEMO_LEAD + timedelta(hours=1)
    assert venue.market_clock("JPX").is_open


FRIDAY_OPEN = datetime(2024, 1, 5, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("now", [
    datetime(2024, 1, 6, 12, 30, 20, tzinfo=UTC),  # whole hours back: Friday's open, once
    datetime(2024, 1, 6, 12, 44, 59, tzinfo=UTC),
])
def test_a_demo_never_places_a_closed_market_before_its_first_bars_are_complete(
        prices: ScriptedPrices, now: datetime) -> None:
    """Placed a minute after New York's open, a demo bot would find no completed bar and
    sit out its first bar interval."""
    venue = build_venue(prices, ManualClock(now), time_mode="demo")

    assert DEMO_LEAD <= venue.venue_now("NYSE") - FRIDAY_OPEN < DEMO_LEAD + timedelta(hours=1)
    assert venue.offsets["NYSE"].total_seconds() % 3600 == 0
    bars = venue.bars("NYSE:AAA", 60, now - timedelta(minutes=2), now)
    assert bars and bars[-1].ts + timedelta(minutes=2) >= now  # a fresh bar to act on


def test_a_market_that_just_opened_keeps_the_wall_clock(prices: ScriptedPrices) -> None:
    """Moving it back a session for the sake of its first bar would cost a long demo the
    real days in between: its bots wait one bar instead."""
    venue = build_venue(prices, ManualClock(datetime(2024, 1, 3, 14, 30, 50, tzinfo=UTC)),
                        time_mode="demo")
    assert venue.offsets["NYSE"] == ZERO


def test_a_demo_falls_back_to_whole_minutes_in_a_short_stretch(
        prices: ScriptedPrices) -> None:
    """A stretch shorter than the lead plus an hour cannot take a whole-hour step."""
    short_day = ScriptedPrices({equity("NYSE", "AAA", "USD", "XNYS"): Decimal(1)},
                               {"XNYS": DailySessions(clock_time(14, 30), clock_time(15, 0))})
    now = datetime(2024, 1, 3, 18, 7, 13, tzinfo=UTC)

    offset = demo_offset_s(short_day, "XNYS", now)

    venue_now = now + timedelta(seconds=offset)
    assert offset % 60 == 0
    assert datetime(2024, 1, 3, 14, 45, tzinfo=UTC) <= venue_now < datetime(2024, 1, 3, 14, 46,
                                                                             tzinfo=UTC)


def test_demo_offsets_are_whole_hours_so_bar_boundaries_stay_aligned(
        prices: ScriptedPrices) -> None:
    venue = build_venue(prices, ManualClock(SATURDAY_NOON), time_mode="demo")

    assert venue.venue_now("NYSE") == datetime(2024, 1, 5, 15, 0, 42, tzinfo=UTC)
    # Tokyo's afternoon opened at 03:30: 04:00 is the first whole-hour step past the lead.
    assert venue.venue_now("JPX") == datetime(2024, 1, 5, 4, 0, 42, tzinfo=UTC)
    assert all(offset.total_seconds() % 3600 == 0 for offset in venue.offsets.values())
    assert all(offset <= ZERO for offset in venue.offsets.values())


def test_a_demo_market_is_presented_on_the_wall_clock(prices: ScriptedPrices) -> None:
    clock = ManualClock(SATURDAY_NOON)
    venue = build_venue(prices, clock, time_mode="demo")

    market = venue.market_clock("NYSE")
    bars = venue.bars("NYSE:AAA", 60, SATURDAY_NOON - timedelta(minutes=3), SATURDAY_NOON)

    assert (market.now, market.is_open) == (SATURDAY_NOON, True)
    assert market.next_close is not None and market.next_close > SATURDAY_NOON
    assert venue.quote("NYSE:AAA").ts == SATURDAY_NOON
    assert [bar.ts.minute for bar in bars] == [58, 59]  # bars starting in the window
    assert all(bar.ts < SATURDAY_NOON for bar in bars)


def test_a_demo_trades_a_market_that_is_closed_on_the_wall_clock(
        prices: ScriptedPrices) -> None:
    venue = build_venue(prices, ManualClock(SATURDAY_NOON), time_mode="demo")

    report = venue.submit("bot", OrderRequest("c", "JPX:CCC", Side.BUY, OrderType.MARKET,
                                              Decimal(100)))

    assert report.status is OrderStatus.FILLED
    assert report.fills[0].ts == SATURDAY_NOON  # the fill happened now, on the wall clock
    assert venue.quote("JPX:CCC").ts == report.fills[0].ts


def test_a_market_in_its_lunch_break_goes_back_to_the_morning(prices: ScriptedPrices) -> None:
    lunch = datetime(2024, 1, 3, 2, 45, tzinfo=UTC)

    venue = build_venue(prices, ManualClock(lunch), time_mode="demo")

    assert venue.venue_now("JPX") == datetime(2024, 1, 3, 0, 45, tzinfo=UTC)
    assert venue.market_clock("JPX").is_open


def test_demo_offsets_and_genesis_survive_a_restart_on_the_same_book(
        prices: ScriptedPrices) -> None:
    book = MemoryBook()
    clock = ManualClock(SATURDAY_NOON)
    first = build_venue(prices, clock, book, time_mode="demo")
    clock.advance(timedelta(days=2, hours=3))  # Monday: every market open on the wall clock

    again = build_venue(prices, clock, book, time_mode="demo")

    assert again.offsets == first.offsets
    assert again.genesis_at == first.genesis_at == SATURDAY_NOON
    assert again.venue_now("NYSE") == first.venue_now("NYSE")


def test_a_market_first_seen_after_genesis_gets_its_offset_then(
        prices: ScriptedPrices) -> None:
    book = MemoryBook()
    clock = ManualClock(SATURDAY_NOON)
    only_crypto = ScriptedPrices({instrument: price for instrument, price
                                  in standard_instruments().items()
                                  if instrument.market == "CRYPTO"})
    build_venue(only_crypto, clock, book, time_mode="demo")
    clock.set(NEW_YORK_MIDDAY + timedelta(days=7))  # the next Wednesday, New York open

    venue = build_venue(prices, clock, book, time_mode="demo")

    assert venue.offsets["NYSE"] == ZERO
    assert venue.offsets["JPX"] < ZERO


def test_switching_time_mode_on_an_existing_book_is_refused(prices: ScriptedPrices) -> None:
    book = MemoryBook()
    build_venue(prices, ManualClock(SATURDAY_NOON), book, time_mode="demo")

    with pytest.raises(ConfigError, match="delete the sandbox database"):
        build_venue(prices, ManualClock(SATURDAY_NOON), book, time_mode="real")


def test_demo_mode_needs_a_session_source(prices: ScriptedPrices) -> None:
    with pytest.raises(ValueError, match="SessionSource"):
        SandboxVenue(prices, MemoryBook(), ManualClock(SATURDAY_NOON),
                     VenueConfig(time_mode="demo"))


def test_a_market_the_sandbox_does_not_price_is_unknown(prices: ScriptedPrices) -> None:
    venue = build_venue(prices, ManualClock(NEW_YORK_MIDDAY))

    with pytest.raises(UnknownMarketError, match="LSE"):
        venue.market_clock("LSE")


def test_demo_offset_is_zero_for_a_market_that_never_closes(prices: ScriptedPrices) -> None:
    assert demo_offset_s(prices, ALWAYS_OPEN, SATURDAY_NOON) == 0


def test_demo_offset_explains_a_calendar_whose_stretches_are_too_short() -> None:
    minutes = ScriptedPrices({equity("NYSE", "AAA", "USD", "XNYS"): Decimal(1)},
                             {"XNYS": DailySessions(clock_time(14, 30), clock_time(14, 40))})

    with pytest.raises(ConfigError, match="no trading stretch of over 15 minutes in the 40 "
                                          "days before"):
        demo_offset_s(minutes, "XNYS", SATURDAY_NOON)


def test_demo_offset_explains_a_calendar_without_recent_sessions() -> None:
    never = ScriptedPrices({equity("NYSE", "AAA", "USD", "NEVER"): Decimal(1)},
                           {"NEVER": DailySessions(NEW_YORK_MIDDAY.time(), NEW_YORK_MIDDAY.time(),
                                                   weekdays=frozenset())})

    with pytest.raises(ConfigError, match=r"no trading stretch .* in the 40 days"):
        demo_offset_s(never, "NEVER", SATURDAY_NOON)
