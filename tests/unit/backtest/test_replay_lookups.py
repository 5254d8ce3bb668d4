"""The replay's shortcuts give what the long way gives: bar times added up along runs of
back-to-back bars equal each bar's own timestamp; a quote found from the last row asked
about equals one searched for; a close already on the tick is its own quoted price."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from fleetkit.backtest.replay import _bar_times, _bars
from fleetkit.backtest.tape import BarTape, generated_tape
from fleetkit.backtest.venue import TapeQuotes
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.core.market_data import Bar

START = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def tapes() -> dict[str, BarTape]:
    catalog = load_catalog()
    prices = InventedPrices(7, catalog, MarketCalendars())
    return {key: generated_tape(prices, catalog[key].instrument, START, 3_000, 60)
            for key in ("CRYPTO:BTC/USDT", "NSE:RELIANCE", "JPX:7203")}


@pytest.mark.parametrize("key", ["CRYPTO:BTC/USDT", "NSE:RELIANCE", "JPX:7203"])
def test_bar_times_and_bars_are_each_bars_own(tapes: dict[str, BarTape], key: str) -> None:
    tape = tapes[key]
    starts, ends = _bar_times(tape)
    own = [datetime.fromtimestamp(t, UTC) for t in tape.ts_s.tolist()]
    assert list(starts) == own
    assert list(ends) == [datetime.fromtimestamp(t + tape.interval_s, UTC)
                          for t in tape.ts_s.tolist()]
    bars = list(_bars(tape))
    assert bars == [Bar(*row) for row in zip(own, tape.open.tolist(), tape.high.tolist(),
                                             tape.low.tolist(), tape.close.tolist(),
                                             tape.volume.tolist(), strict=True)]
    assert all(type(bar) is Bar for bar in bars)
    if key != "CRYPTO:BTC/USDT":
        assert (np.diff(tape.ts_s) != tape.interval_s).any(), "the tape must have gaps"


def test_empty_tape_has_no_bar_times(tapes: dict[str, BarTape]) -> None:
    tape = tapes["CRYPTO:BTC/USDT"]
    empty = BarTape(tape.instrument, 60, tape.ts_s[:0], tape.open[:0], tape.high[:0],
                    tape.low[:0], tape.close[:0], tape.volume[:0])
    starts, ends = _bar_times(empty)
    assert (list(starts), list(ends)) == ([], [])


@pytest.mark.parametrize("key", ["CRYPTO:BTC/USDT", "NSE:RELIANCE"])
def test_a_quote_found_from_the_last_row_equals_one_searched_for(
        tapes: dict[str, BarTape], key: str) -> None:
    tape = tapes[key]
    quotes, fresh = TapeQuotes(tape), TapeQuotes(tape)
    ends = (tape.ts_s + tape.interval_s).astype(np.float64)
    moments = [float(ends[0]) - 1, float(ends[-1]) + 600, *ends[::97].tolist()]
    moments += [m + random.Random(n).uniform(-90, 90) for n, m in enumerate(moments)]
    rng = random.Random(3)
    walk = sorted(moments) + rng.sample(moments, len(moments))  # forward, then anywhere
    for moment in walk:
        searched = max(int(np.searchsorted(ends, moment, side="right")) - 1, 0)
        assert quotes.row_at(moment) == searched
        when = datetime.fromtimestamp(moment, UTC)
        assert quotes.at(when) == fresh.at_row(searched)


@pytest.mark.parametrize("key", ["CRYPTO:BTC/USDT", "NSE:RELIANCE", "JPX:7203"])
def test_quoted_prices_are_the_closes_rounded_to_the_tick(tapes: dict[str, BarTape],
                                                          key: str) -> None:
    tape = tapes[key]
    quotes = TapeQuotes(tape)
    instrument = tape.instrument
    tick = instrument.tick_size
    decimal_tick = tick.normalize() == Decimal(1).scaleb(tick.normalize().as_tuple().exponent)
    places = max(0, -int(tick.normalize().as_tuple().exponent))
    assert quotes.closes_are_prices == (key == "CRYPTO:BTC/USDT")
    for row, close in enumerate(tape.close.tolist()):
        rounded = instrument.round_price(Decimal(repr(round(close, places))))
        quote = quotes.at_row(row)
        assert (quote.price, str(quote.price)) == (rounded, str(rounded))
        if decimal_tick:
            assert quotes.price_at_row(row) == round(close, places)
        else:
            assert quotes.price_at_row(row) == float(rounded)


def test_closes_off_the_tick_are_rounded_not_taken_as_prices(
        tapes: dict[str, BarTape]) -> None:
    tape = tapes["CRYPTO:BTC/USDT"]
    off = tape.close + 0.004  # a tenth of a cent below half a tick off the grid
    shifted = BarTape(tape.instrument, 60, tape.ts_s, tape.open, tape.high, tape.low, off,
                      tape.volume)
    quotes = TapeQuotes(shifted)
    assert not quotes.closes_are_prices
    for row in range(0, len(shifted), 101):
        close = float(off[row])
        assert quotes.price_at_row(row) == round(close, 2)
        assert quotes.at_row(row).price == Decimal(repr(round(close, 2))).quantize(
            Decimal("0.01"))
