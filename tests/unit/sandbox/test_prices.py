"""InventedPrices: reproducible, calendar-aware, tick-exact invented prices."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.prices import InventedPrices, MinuteArrays
from fleetkit.brokers.sandbox.pricing import SandboxInstrument
from fleetkit.brokers.sandbox.seeding import stream_root
from fleetkit.brokers.sandbox.walk import (
    DAYS_PER_YEAR,
    JUMP_PROBABILITY_PER_DAY,
    DayWalk,
    WalkSpec,
    day_index,
)
from fleetkit.calendars import MarketCalendars
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import SessionSchedule

SEED = 7
NYSE, TOKYO, NSE = "NYSE:JPM", "JPX:7203", "NSE:TCS"
BTC, DOGE = "CRYPTO:BTC/USDT", "CRYPTO:DOGE/USDT"
SAMPLE_KEYS = (NYSE, TOKYO, NSE, "LSE:LLOY", "XETRA:SAP", BTC, DOGE)
MINUTE = timedelta(minutes=1)
# hypothesis takes naive bounds and attaches the timezone itself.
NAIVE_START, NAIVE_END = datetime(2000, 1, 5), datetime(2035, 12, 31)  # noqa: DTZ001


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def calendars() -> MarketCalendars:
    return MarketCalendars()


@pytest.fixture(scope="module")
def catalog() -> dict[str, SandboxInstrument]:
    return load_catalog()


@pytest.fixture(scope="module")
def prices(catalog: dict[str, SandboxInstrument], calendars: MarketCalendars) -> InventedPrices:
    return InventedPrices(SEED, catalog, calendars)


def day_bars(prices: InventedPrices, key: str, day: date, interval_s: int = 60) -> list[Bar]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return prices.bars(key, interval_s, start, end, now=end + timedelta(days=1))


def is_tick_multiple(value: float | Decimal, tick: Decimal) -> bool:
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    return exact % tick == 0


# --- reproducibility ----------------------------------------------------------------------


def test_prices_are_identical_for_a_fresh_instance_with_the_same_seed(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument]) -> None:
    restarted = InventedPrices(SEED, catalog, MarketCalendars())
    for key in SAMPLE_KEYS:
        assert day_bars(restarted, key, date(2026, 3, 10)) == day_bars(prices, key,
                                                                         date(2026, 3, 10))
        at = utc(2026, 3, 10, 5, 17) + timedelta(seconds=23.5)
        assert restarted.last_trade(key, at) == prices.last_trade(key, at)


def test_prices_do_not_depend_on_what_was_asked_before(
        catalog: dict[str, SandboxInstrument], calendars: MarketCalendars) -> None:
    far_ahead_first = InventedPrices(SEED, catalog, calendars)
    far_ahead_first.last_trade(BTC, utc(2040, 1, 1))
    past_only = InventedPrices(SEED, catalog, calendars)
    for day in (date(2003, 5, 6), date(2026, 3, 10)):
        assert day_bars(far_ahead_first, BTC, day) == day_bars(past_only, BTC, day)


def test_a_different_seed_gives_different_prices(
        catalog: dict[str, SandboxInstrument], calendars: MarketCalendars,
        prices: InventedPrices) -> None:
    other = InventedPrices(SEED + 1, catalog, calendars)
    at = utc(2026, 3, 10, 15)
    assert all(other.last_trade(k, at).price != prices.last_trade(k, at).price
               for k in SAMPLE_KEYS)


def test_instruments_follow_independent_paths() -> None:
    spec = WalkSpec(100.0, 0.6, overnight_gaps=False)
    first, count = day_index(date(2010, 1, 1)), 3000
    returns = [np.diff(DayWalk(spec, stream_root(SEED, key)).closes_log(first, count))
               for key in ("CRYPTO:AAA/USDT", "CRYPTO:BBB/USDT")]
    assert abs(np.corrcoef(returns[0], returns[1])[0, 1]) < 0.1


def test_streams_are_named_the_same_in_every_process() -> None:
    # Python salts str hashes per process; the streams must not notice.
    code = ("from fleetkit.brokers.sandbox.seeding import stream_root; "
            "print(stream_root(7, 'NYSE:JPM'))")
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert outputs == {str(stream_root(7, "NYSE:JPM"))}


def test_negative_and_huge_seeds_are_accepted() -> None:
    assert stream_root(-1, "X") != stream_root(1, "X")
    assert stream_root(2**70, "X") != stream_root(0, "X")


# --- ticks and bar shape ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(SAMPLE_KEYS), day=st.dates(date(2000, 1, 3), date(2035, 12, 31)),
       interval_s=st.sampled_from([60, 300, 900, 3600]))
def test_bars_are_well_formed_and_tick_exact(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument], key: str, day: date,
        interval_s: int) -> None:
    instrument = catalog[key].instrument
    bars = day_bars(prices, key, day, interval_s)
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low > 0 and bar.volume > 0
        assert all(is_tick_multiple(p, instrument.tick_size)
                   for p in (bar.open, bar.high, bar.low, bar.close))
        assert is_tick_multiple(bar.volume, instrument.lot_size)
        assert bar.ts.tzinfo is UTC and bar.ts.timestamp() % interval_s == 0
    assert [b.ts for b in bars] == sorted({b.ts for b in bars})


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(SAMPLE_KEYS),
       at=st.datetimes(NAIVE_START, NAIVE_END, timezones=st.just(UTC)))
def test_last_trade_is_tick_exact_and_positive(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument], key: str,
        at: datetime) -> None:
    quote = prices.last_trade(key, at)
    tick = catalog[key].instrument.tick_size
    assert quote.price > 0 and quote.price % tick == 0
    assert quote.instrument == key and quote.ts <= at


def test_minute_bars_join_without_a_seam(prices: InventedPrices) -> None:
    for key in SAMPLE_KEYS:
        bars = day_bars(prices, key, date(2026, 3, 10))
        assert all(a.close == b.open for a, b in pairwise(bars))


# --- sessions -----------------------------------------------------------------------------


def session_minutes(calendars: MarketCalendars, calendar: str, start: date,
                    end: date) -> list[datetime]:
    minutes = []
    for session in calendars.sessions(calendar, start, end):
        for span_start, span_end in session.trading_spans():
            moment = span_start
            while moment < span_end:
                minutes.append(moment)
                moment += MINUTE
    return minutes


def test_equity_minute_bars_are_exactly_the_session_minutes(
        prices: InventedPrices, calendars: MarketCalendars) -> None:
    # Thanksgiving week: a holiday, a half day and a weekend.
    start, end = utc(2026, 11, 23), utc(2026, 12, 1)
    bars = prices.bars(NYSE, 60, start, end, now=end)
    assert [b.ts for b in bars] == session_minutes(calendars, "XNYS", date(2026, 11, 23),
                                                   date(2026, 11, 30))
    assert not [b for b in bars if b.ts.date() == date(2026, 11, 26)]
    assert bars[-1].ts == utc(2026, 11, 30, 20, 59)
    assert max(b.ts for b in bars if b.ts.date() == date(2026, 11, 27)) == utc(2026, 11, 27,
                                                                              17, 59)


def test_tokyo_has_no_bars_in_its_lunch_break(
        prices: InventedPrices, calendars: MarketCalendars) -> None:
    bars = day_bars(prices, TOKYO, date(2026, 3, 10))
    assert [b.ts for b in bars] == session_minutes(calendars, "XTKS", date(2026, 3, 10),
                                                   date(2026, 3, 10))
    assert not [b for b in bars if utc(2026, 3, 10, 2, 30) <= b.ts < utc(2026, 3, 10, 3, 30)]
    hourly = day_bars(prices, TOKYO, date(2026, 3, 10), 3600)
    assert utc(2026, 3, 10, 2) in [b.ts for b in hourly]  # 02:00-02:30 traded, then lunch
    assert utc(2026, 3, 10, 3) in [b.ts for b in hourly]  # 03:30-04:00 traded


def test_crypto_has_a_bar_every_minute_and_no_gap_at_midnight(prices: InventedPrices) -> None:
    start = utc(2026, 3, 9, 23)
    bars = prices.bars(BTC, 60, start, start + timedelta(hours=2), now=utc(2026, 3, 11))
    assert [b.ts for b in bars] == [start + i * MINUTE for i in range(120)]
    assert all(a.close == b.open for a, b in pairwise(bars))


def test_equities_open_away_from_the_previous_close(prices: InventedPrices) -> None:
    bars = prices.bars(NYSE, 60, utc(2026, 2, 2), utc(2026, 3, 2), now=utc(2026, 3, 3))
    by_day: dict[date, list[Bar]] = {}
    for bar in bars:
        by_day.setdefault(bar.ts.date(), []).append(bar)
    days = sorted(by_day)
    gaps = [by_day[today][0].open != by_day[yesterday][-1].close
            for yesterday, today in pairwise(days)]
    assert sum(gaps) >= 0.8 * len(gaps)


def test_equity_volume_is_heavier_at_the_open_and_close_than_at_midday(
        prices: InventedPrices) -> None:
    edges, middles = [], []
    for day in range(2, 28):
        bars = day_bars(prices, NYSE, date(2026, 4, 1) + timedelta(days=day))
        if bars:
            edges.append(sum(b.volume for b in bars[:30] + bars[-30:]))
            middles.append(sum(b.volume for b in bars[165:225]))
    assert sum(edges) > 1.5 * sum(middles)


# --- last trade ---------------------------------------------------------------------------


def test_last_trade_at_a_minutes_start_and_end_are_that_bars_open_and_close(
        prices: InventedPrices) -> None:
    for key in SAMPLE_KEYS:
        for bar in day_bars(prices, key, date(2026, 3, 10))[::37]:
            assert float(prices.last_trade(key, bar.ts).price) == bar.open
            end = bar.ts + MINUTE
            quote = prices.last_trade(key, end)
            assert float(quote.price) == bar.close


def test_last_trade_while_open_is_timed_at_the_asked_moment(prices: InventedPrices) -> None:
    at = utc(2026, 3, 10, 15, 30) + timedelta(seconds=12.25)
    quote = prices.last_trade(NYSE, at)
    bar = prices.bars(NYSE, 60, utc(2026, 3, 10, 15, 30), at, now=utc(2026, 3, 11))[0]
    assert quote.ts == at
    assert bar.low <= float(quote.price) <= bar.high


def test_last_trade_while_closed_is_the_last_close_with_its_time(prices: InventedPrices) -> None:
    friday_close = utc(2026, 11, 27, 18)
    last_bar = prices.bars(NYSE, 60, friday_close - MINUTE, friday_close, now=friday_close)[0]
    for at in (friday_close, utc(2026, 11, 28, 12), utc(2026, 11, 30, 14, 29)):
        quote = prices.last_trade(NYSE, at)
        assert (quote.ts, float(quote.price)) == (friday_close, last_bar.close)


def test_last_trade_in_the_lunch_break_is_the_morning_close(prices: InventedPrices) -> None:
    break_start = utc(2026, 3, 10, 2, 30)
    last_morning_bar = prices.bars(TOKYO, 60, break_start - MINUTE, break_start,
                                   now=break_start)[0]
    quote = prices.last_trade(TOKYO, utc(2026, 3, 10, 3, 0))
    assert (quote.ts, float(quote.price)) == (break_start, last_morning_bar.close)


def test_last_trade_across_a_holiday_is_the_day_before(prices: InventedPrices) -> None:
    quote = prices.last_trade(NYSE, utc(2026, 11, 26, 16))  # Thanksgiving
    assert quote.ts == utc(2026, 11, 25, 21)


def test_unknown_instruments_are_refused_by_name(prices: InventedPrices) -> None:
    with pytest.raises(KeyError, match="NYSE:NOPE"):
        prices.last_trade("NYSE:NOPE", utc(2026, 3, 10))
    with pytest.raises(KeyError, match="NYSE:NOPE"):
        prices.bars("NYSE:NOPE", 60, utc(2026, 3, 10), utc(2026, 3, 11), now=utc(2026, 3, 11))


def test_naive_times_and_times_before_the_epoch_are_refused(prices: InventedPrices) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prices.last_trade(BTC, datetime(2026, 3, 10))  # noqa: DTZ001
    with pytest.raises(ValueError, match="start on 2000-01-01"):
        prices.last_trade(BTC, utc(1999, 6, 1))
    assert prices.bars(BTC, 60, utc(1999, 12, 31, 23, 58), utc(2000, 1, 1, 0, 2),
                       now=utc(2001, 1, 1))[0].ts == utc(2000, 1, 1)


# --- bar windows and aggregation ----------------------------------------------------------


def test_bars_are_those_starting_in_the_window_and_complete_at_now(
        prices: InventedPrices) -> None:
    now = utc(2026, 3, 10, 12, 7) + timedelta(seconds=30)
    bars = prices.bars(BTC, 300, utc(2026, 3, 10, 11, 1), utc(2026, 3, 10, 13), now=now)
    assert [b.ts for b in bars] == [utc(2026, 3, 10, 11, 5) + i * timedelta(minutes=5)
                                    for i in range(12)]  # 12:05 is not complete at 12:07:30


def test_bar_intervals_must_divide_a_minute_or_be_whole_minutes(prices: InventedPrices) -> None:
    with pytest.raises(ValueError, match="multiple of it"):
        prices.bars(BTC, 90, utc(2026, 3, 10), utc(2026, 3, 11), now=utc(2026, 3, 11))


@pytest.mark.parametrize("key", [NYSE, TOKYO, NSE, BTC])
@pytest.mark.parametrize("interval_s", [300, 900, 1800, 3600])
def test_longer_bars_aggregate_their_minute_bars(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument], key: str,
        interval_s: int) -> None:
    minutes = day_bars(prices, key, date(2026, 3, 10))
    longer = day_bars(prices, key, date(2026, 3, 10), interval_s)
    buckets: dict[datetime, list[Bar]] = {}
    for bar in minutes:
        start = datetime.fromtimestamp(bar.ts.timestamp() // interval_s * interval_s, UTC)
        buckets.setdefault(start, []).append(bar)
    assert [b.ts for b in longer] == sorted(buckets)
    lot = catalog[key].instrument.lot_size
    for bar in longer:
        inside = buckets[bar.ts]
        assert (bar.open, bar.close) == (inside[0].open, inside[-1].close)
        assert bar.high == max(b.high for b in inside) and bar.low == min(b.low for b in inside)
        assert Decimal(repr(bar.volume)) == sum(Decimal(repr(b.volume)) for b in inside)
        assert is_tick_multiple(bar.volume, lot)


# --- minute arrays ------------------------------------------------------------------------


def bars_of(arrays: MinuteArrays) -> list[Bar]:
    return [Bar(datetime.fromtimestamp(ts, UTC), o, h, low, c, v) for ts, o, h, low, c, v in
            zip(arrays.ts_s.tolist(), arrays.open.tolist(), arrays.high.tolist(),
                arrays.low.tolist(), arrays.close.tolist(), arrays.volume.tolist(), strict=True)]


@pytest.mark.parametrize(("key", "start", "count"), [
    (BTC, utc(2026, 3, 9, 23, 30) + timedelta(seconds=5), 3000),
    (NYSE, utc(2026, 11, 25, 20), 1000),  # through Thanksgiving, a half day and a weekend
    (TOKYO, utc(2026, 3, 10, 2), 400),
])
def test_minute_arrays_are_the_minute_bars(
        prices: InventedPrices, key: str, start: datetime, count: int) -> None:
    arrays = prices.minute_arrays(key, start, count)
    assert len(arrays) == count
    last = datetime.fromtimestamp(int(arrays.ts_s[-1]), UTC)
    assert bars_of(arrays) == prices.bars(key, 60, start, last + MINUTE, now=last + MINUTE)


def test_minute_arrays_of_crypto_are_consecutive_minutes(prices: InventedPrices) -> None:
    arrays = prices.minute_arrays(BTC, utc(2026, 1, 1), 5 * 1440)
    assert arrays.ts_s.dtype == np.int64 and arrays.close.dtype == np.float64
    assert np.all(np.diff(arrays.ts_s) == 60)
    assert np.array_equal(arrays.close[:-1], arrays.open[1:])


# --- market clock -------------------------------------------------------------------------


def test_market_clock_while_open_knows_the_next_close(prices: InventedPrices) -> None:
    at = utc(2026, 11, 27, 15)
    clock = prices.market_clock("NYSE", at)
    assert (clock.market, clock.now, clock.is_open) == ("NYSE", at, True)
    assert (clock.next_open, clock.next_close) == (None, utc(2026, 11, 27, 18))


def test_market_clock_over_a_weekend_knows_the_next_open(prices: InventedPrices) -> None:
    clock = prices.market_clock("NYSE", utc(2026, 11, 28, 12))
    assert not clock.is_open
    assert (clock.next_open, clock.next_close) == (utc(2026, 11, 30, 14, 30),
                                                   utc(2026, 11, 30, 21))


def test_market_clock_in_tokyos_lunch_break_reopens_after_lunch(prices: InventedPrices) -> None:
    clock = prices.market_clock("JPX", utc(2026, 3, 10, 2, 45))
    assert not clock.is_open and clock.next_open == utc(2026, 3, 10, 3, 30)


def test_market_clock_across_new_year(prices: InventedPrices) -> None:
    clock = prices.market_clock("XETRA", utc(2026, 12, 31, 20))
    assert not clock.is_open and clock.next_open == utc(2027, 1, 4, 8)


def test_crypto_markets_are_always_open(prices: InventedPrices) -> None:
    clock = prices.market_clock("CRYPTO", utc(2026, 12, 25, 0))
    assert clock.is_open and clock.next_open is None and clock.next_close is None


def test_market_clock_refuses_an_unknown_market(prices: InventedPrices) -> None:
    with pytest.raises(ValueError, match="unknown market 'NASDAQ'"):
        prices.market_clock("NASDAQ", utc(2026, 3, 10))


def test_market_clock_agrees_with_the_calendar_schedule(
        prices: InventedPrices, calendars: MarketCalendars) -> None:
    schedule = SessionSchedule(calendars.sessions("XNSE", date(2026, 5, 1), date(2026, 5, 31)))
    moment = utc(2026, 5, 4)
    while moment < utc(2026, 5, 29):
        assert prices.market_clock("NSE", moment).is_open == schedule.is_open(moment)
        moment += timedelta(minutes=47)


# --- statistics of the walk ---------------------------------------------------------------


def ten_years_of_daily_log_closes(key: str, volatility: float, seed: int) -> np.ndarray:
    walk = DayWalk(WalkSpec(60_000.0, volatility, overnight_gaps=False), stream_root(seed, key))
    return walk.closes_log(day_index(date(2016, 1, 1)), 3653)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_daily_returns_have_the_configured_volatility(seed: int) -> None:
    returns = np.diff(ten_years_of_daily_log_closes(BTC, 0.6, seed))
    expected = 0.6 / math.sqrt(DAYS_PER_YEAR)
    assert 0.85 * expected < returns.std() < 1.15 * expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prices_stay_positive_and_near_their_base_for_a_decade(seed: int) -> None:
    levels = np.exp(ten_years_of_daily_log_closes(BTC, 0.6, seed))
    assert levels.min() > 60_000 / 10 and levels.max() < 60_000 * 10


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_volatility_regimes_show_in_rolling_volatility(seed: int) -> None:
    returns = np.diff(ten_years_of_daily_log_closes(BTC, 0.6, seed))
    rolling = np.array([returns[i:i + 30].std() for i in range(0, len(returns) - 30, 10)])
    assert rolling.max() > 2.5 * rolling.min()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jumps_happen_at_their_rate_and_fatten_the_tails(seed: int) -> None:
    walk = DayWalk(WalkSpec(60_000.0, 0.6, overnight_gaps=False), stream_root(seed, BTC))
    first, days = day_index(date(2016, 1, 1)), 3653
    jump_days = np.count_nonzero(walk.jumps(first, days))
    assert 0.6 * JUMP_PROBABILITY_PER_DAY * days < jump_days < 1.4 * JUMP_PROBABILITY_PER_DAY * days
    returns = np.diff(walk.closes_log(first, days))
    excess_kurtosis = float(np.mean((returns - returns.mean()) ** 4) / returns.var() ** 2 - 3)
    assert excess_kurtosis > 1.0


def test_crypto_closes_at_midnight_are_the_walks_daily_closes(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument]) -> None:
    entry = catalog[BTC]
    walk = DayWalk(WalkSpec(float(entry.base_price), entry.annual_volatility,
                            overnight_gaps=False), stream_root(SEED, BTC))
    first = date(2026, 2, 1)
    closes = np.exp(walk.closes_log(day_index(first), 20))
    for offset, close in enumerate(closes):
        midnight = utc(2026, 2, 2) + timedelta(days=offset)
        assert prices.last_trade(BTC, midnight).price == entry.instrument.round_price(
            Decimal(repr(float(close))))
