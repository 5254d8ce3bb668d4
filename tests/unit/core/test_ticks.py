"""The quote-stream tick checks: each kind of bad tick is named, good ones pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fleetkit.core.ticks import Tick, TickScreen, tick_problem

NOW = datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
GOOD = Tick("NYSE:AAA", 5, NOW, Decimal("100"), "quote", Decimal("99.9"), Decimal("100.1"),
            Decimal(10))
SUBSCRIBED = {"NYSE:AAA"}


def problem(tick: Tick, last_seq: int | None = 4) -> str | None:
    found = tick_problem(tick, subscribed=SUBSCRIBED, last_seq=last_seq, now=NOW,
                         max_age=timedelta(seconds=10))
    return None if found is None else found.reason


def test_a_good_tick_passes() -> None:
    assert problem(GOOD) is None
    assert problem(replace(GOOD, bid=Decimal(100), ask=Decimal(100))) is None  # locked
    assert problem(replace(GOOD, mode="ltp", bid=None, ask=None)) is None


@pytest.mark.parametrize(("change", "reason"), [
    ({"instrument": "NYSE:ZZZ"}, "unknown_instrument"),
    ({"seq": 4}, "duplicate"),
    ({"seq": 3}, "out_of_order"),
    ({"last_price": Decimal(0)}, "bad_price"),
    ({"last_price": Decimal(-1)}, "bad_price"),
    ({"last_price": Decimal("NaN")}, "bad_price"),
    ({"bid": Decimal("Infinity")}, "bad_price"),
    ({"ask": Decimal(0)}, "bad_price"),
    ({"bid": Decimal("100.2")}, "crossed"),
    ({"ts": NOW - timedelta(seconds=11)}, "stale"),
])
def test_each_bad_tick_is_named(change: dict[str, object], reason: str) -> None:
    assert problem(replace(GOOD, **change)) == reason  # type: ignore[arg-type]


def test_the_screen_counts_rejections_and_missed_numbers_and_restarts_per_connection() -> None:
    screen = TickScreen(timedelta(seconds=10))
    assert screen.screen(replace(GOOD, seq=1), SUBSCRIBED, NOW) is None
    assert screen.screen(replace(GOOD, seq=1), SUBSCRIBED, NOW) is not None
    bad = screen.screen(replace(GOOD, seq=2, last_price=Decimal(0)), SUBSCRIBED, NOW)
    assert bad is not None and bad.reason == "bad_price"
    assert screen.screen(replace(GOOD, seq=3), SUBSCRIBED, NOW) is None  # 2 was used
    assert screen.screen(replace(GOOD, seq=6), SUBSCRIBED, NOW) is None
    assert screen.missed == 2
    screen.new_connection()
    assert screen.screen(replace(GOOD, seq=1), SUBSCRIBED, NOW) is None
    assert screen.counts() == {"duplicate": 1, "bad_price": 1}


def test_a_screen_needs_a_positive_age() -> None:
    with pytest.raises(ValueError, match="max_age"):
        TickScreen(timedelta(0))
