"""Bars aggregate on the exchange's session boundaries: NSE's hour bars open at 09:15 IST and
its daily bar is the session, a 24/7 market's day is UTC; aggregating aggregates changes
nothing; volume adds up and the high is the highest high."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.bars import BarRecord, aggregate, bucket_start
from fleetkit.core.sessions import Session

IST = ZoneInfo("Asia/Kolkata")
MINUTE = timedelta(minutes=1)
# Two NSE sessions (09:15-15:30 IST) and two UTC days of a 24/7 market.
NSE = [Session(datetime(2024, 1, d, 9, 15, tzinfo=IST).astimezone(UTC),
               datetime(2024, 1, d, 15, 30, tzinfo=IST).astimezone(UTC)) for d in (2, 3)]
ALWAYS = [Session(datetime(2024, 1, d, tzinfo=UTC), datetime(2024, 1, d + 1, tzinfo=UTC))
          for d in (2, 3)]


def bar(at: datetime, price: str = "100", volume: str = "1") -> BarRecord:
    p = Decimal(price)
    return BarRecord(at, p, p, p, p, Decimal(volume))


def minutes_of(sessions: list[Session]) -> list[BarRecord]:
    found = []
    for s in sessions:
        at = s.open
        while at < s.close:
            found.append(bar(at))
            at += MINUTE
    return found


def test_nse_hour_bars_open_at_quarter_past_and_the_last_is_cut_at_the_close() -> None:
    hours = aggregate(minutes_of(NSE[:1]), "1h", NSE)
    local = [b.open_time.astimezone(IST).strftime("%H:%M") for b in hours]
    assert local == ["09:15", "10:15", "11:15", "12:15", "13:15", "14:15", "15:15"]
    assert [b.volume for b in hours] == [Decimal(60)] * 6 + [Decimal(15)]


def test_nse_daily_bar_is_the_session_and_a_24_7_day_is_utc() -> None:
    days = aggregate(minutes_of(NSE), "1d", NSE)
    assert [b.open_time for b in days] == [s.open for s in NSE]
    assert [b.volume for b in days] == [Decimal(375)] * 2  # 09:15-15:30 is 375 minutes
    utc_days = aggregate(minutes_of(ALWAYS), "1d", ALWAYS)
    assert [b.open_time for b in utc_days] == [s.open for s in ALWAYS]
    assert [b.volume for b in utc_days] == [Decimal(1440)] * 2


def test_four_hour_bars_are_anchored_at_the_session_open() -> None:
    four = aggregate(minutes_of(NSE[:1]), "4h", NSE)
    assert [b.open_time.astimezone(IST).strftime("%H:%M") for b in four] == ["09:15", "13:15"]
    assert bucket_start(NSE[0].open + timedelta(hours=5), NSE[0], "4h") == \
        NSE[0].open + timedelta(hours=4)


def test_bars_outside_every_session_belong_to_no_bucket() -> None:
    before_open = NSE[0].open - MINUTE
    assert aggregate([bar(before_open), bar(NSE[0].open)], "5m", NSE) == [
        bar(NSE[0].open)]


def test_a_bar_that_is_not_a_bar_is_refused() -> None:
    at = NSE[0].open
    with pytest.raises(ValueError, match="within low"):
        BarRecord(at, Decimal(10), Decimal(9), Decimal(8), Decimal(10), Decimal(1))
    with pytest.raises(ValueError, match="not a number"):
        BarRecord.from_floats(at, float("nan"), 1.0, 1.0, 1.0, 1.0)
    assert BarRecord.from_floats(at, 0.1, 0.3, 0.1, 0.2, 5.0).high == Decimal("0.3")


# --- properties ---------------------------------------------------------------------------

@st.composite
def minute_bars(draw: st.DrawFn) -> tuple[list[Session], list[BarRecord]]:
    sessions = draw(st.sampled_from([NSE, ALWAYS]))
    bars = []
    for s in sessions:
        count = int((s.close - s.open) / MINUTE)
        # A sparse, sorted subset of the session's minutes: missing minutes are allowed.
        offsets = draw(st.lists(st.integers(0, count - 1), max_size=60, unique=True))
        for n in sorted(offsets):
            o, c = (Decimal(draw(st.integers(1, 10_000))) / 100 for _ in range(2))
            up, down = (Decimal(draw(st.integers(0, 500))) / 100 for _ in range(2))
            low = max(min(o, c) - down, Decimal("0.01"))
            bars.append(BarRecord(s.open + n * MINUTE, o, max(o, c) + up, low, c,
                                  Decimal(draw(st.integers(0, 10**6))) / 1000))
    return sessions, bars


NESTED = [("1m", "5m"), ("5m", "15m"), ("15m", "1h"), ("1h", "4h"), ("4h", "1d"),
          ("5m", "1d"), ("1m", "4h")]


@settings(max_examples=60, deadline=None)
@given(minute_bars())
def test_an_aggregate_of_aggregates_is_the_aggregate(
        drawn: tuple[list[Session], list[BarRecord]]) -> None:
    sessions, bars = drawn
    for finer, coarser in NESTED:
        assert aggregate(aggregate(bars, finer, sessions), coarser, sessions) == \
            aggregate(bars, coarser, sessions)


@settings(max_examples=60, deadline=None)
@given(minute_bars(), st.sampled_from(["5m", "15m", "1h", "4h", "1d"]))
def test_volume_adds_up_and_each_bucket_spans_its_own_bars(
        drawn: tuple[list[Session], list[BarRecord]], timeframe: str) -> None:
    sessions, bars = drawn
    combined = aggregate(bars, timeframe, sessions)
    assert sum((b.volume for b in combined), Decimal(0)) == sum(
        (b.volume for b in bars), Decimal(0))
    ends = [b.open_time for b in combined[1:]] + [datetime.max.replace(tzinfo=UTC)]
    for bucket, end in zip(combined, ends[:len(combined)], strict=True):
        members = [b for b in bars if bucket.open_time <= b.open_time < end]
        assert members, "every bucket comes from at least one bar"
        assert bucket.high == max(b.high for b in members)
        assert bucket.low == min(b.low for b in members)
        assert bucket.open == members[0].open
        assert bucket.close == members[-1].close
