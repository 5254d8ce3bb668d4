"""Generated tapes: the bars a live bot on the sandbox venue would be served, at every
interval the config accepts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from fleetkit.backtest.tape import BarTape, generated_tape
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.pricing import SandboxInstrument
from fleetkit.calendars import MarketCalendars
from fleetkit.core.errors import ConfigError
from fleetkit.core.market_data import INTERVALS_S, Bar
from fleetkit.core.sessions import Session

BTC, JPM = "CRYPTO:BTC/USDT", "NYSE:JPM"
FRIDAY = datetime(2026, 11, 20, 20, 50, tzinfo=UTC)  # ten minutes before NYSE closes


@pytest.fixture(scope="module")
def catalog() -> dict[str, SandboxInstrument]:
    return load_catalog()


@pytest.fixture(scope="module")
def prices(catalog: dict[str, SandboxInstrument]) -> InventedPrices:
    return InventedPrices(7, catalog, MarketCalendars())


def served(prices: InventedPrices, key: str, interval_s: int, start: datetime,
           tape: BarTape) -> list[Bar]:
    """What a live bot asking the sandbox for these bars gets, once they are all complete."""
    end = datetime.fromtimestamp(int(tape.ts_s[-1]) + interval_s, UTC)
    return prices.bars(key, interval_s, start, end, end + timedelta(hours=1))


def as_bars(tape: BarTape) -> list[Bar]:
    return [bar for chunk in tape.chunks() for bar in chunk]


@pytest.mark.parametrize("interval", [name for name, s in INTERVALS_S.items() if s < 60])
def test_a_sub_minute_tape_holds_the_bars_a_live_bot_is_served(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument], interval: str) -> None:
    interval_s = INTERVALS_S[interval]
    start = datetime(2024, 1, 2, 0, 0, 3, tzinfo=UTC)
    tape = generated_tape(prices, catalog[BTC].instrument, start, 50, interval_s)
    assert len(tape) == 50
    assert tape.interval_s == interval_s
    assert as_bars(tape) == served(prices, BTC, interval_s, start, tape)
    assert set(np.diff(tape.ts_s).tolist()) == {interval_s}


def test_a_sub_minute_tape_skips_the_weekend_like_the_venue(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument]) -> None:
    tape = generated_tape(prices, catalog[JPM].instrument, FRIDAY, 200, 5)
    assert len(tape) == 200
    friday = [t for t in tape.ts_s.tolist() if t < FRIDAY.timestamp() + 600]
    assert len(friday) == 120  # ten minutes of 5 s bars, then Monday's open
    monday = datetime.fromtimestamp(int(tape.ts_s[120]), UTC)
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 14, 30)
    assert as_bars(tape) == served(prices, JPM, 5, FRIDAY, tape)


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "30m", "1h"])
def test_a_tape_of_minutes_or_more_matches_the_venue_and_is_aligned(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument], interval: str) -> None:
    interval_s = INTERVALS_S[interval]
    start = datetime(2024, 1, 2, 0, 7, tzinfo=UTC)  # not on an interval boundary
    tape = generated_tape(prices, catalog[BTC].instrument, start, 30, interval_s)
    assert len(tape) == 30
    assert (tape.ts_s % interval_s == 0).all()
    assert int(tape.ts_s[0]) >= start.timestamp()  # no bar partly before the start
    assert as_bars(tape) == served(prices, BTC, interval_s, start, tape)


def test_an_hourly_equity_tape_has_the_venues_partial_opening_hour(
        prices: InventedPrices, catalog: dict[str, SandboxInstrument]) -> None:
    start = datetime(2024, 1, 2, tzinfo=UTC)
    tape = generated_tape(prices, catalog[JPM].instrument, start, 10, 3600)
    assert datetime.fromtimestamp(int(tape.ts_s[0]), UTC).hour == 14  # 14:30 open, 14:00 bar
    assert as_bars(tape) == served(prices, JPM, 3600, start, tape)


class NoSessions:
    """A calendar that never opens (a SessionSource)."""

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        return []


@pytest.mark.parametrize("interval_s", [5, 60, 300])
def test_a_calendar_without_sessions_is_a_config_error_not_a_crash(
        catalog: dict[str, SandboxInstrument], interval_s: int) -> None:
    prices = InventedPrices(7, catalog, NoSessions())
    with pytest.raises(ConfigError, match=r"no (trading )?sessions.*choose another --start"):
        generated_tape(prices, catalog[JPM].instrument, FRIDAY, 10, interval_s)
