"""P&L curve arithmetic behind the P&L page and the end-of-day chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleetkit.dashboard.cache import TtlCache
from fleetkit.dashboard.series import Curve, CurvePoint, drawdowns, fleet_curve

T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def curve(*values: tuple[int, float]) -> Curve:
    return Curve(tuple(CurvePoint(T0 + timedelta(minutes=m), v, v) for m, v in values))


def test_drawdown_is_the_distance_below_the_running_peak() -> None:
    assert drawdowns([0, 5, 3, 7, 2, 9]) == [0, 0, -2, 0, -5, 0]
    assert curve((0, 0), (1, 5), (2, 3)).max_drawdown_usd() == -2
    assert Curve(()).max_drawdown_usd() == 0


def test_the_fleet_curve_carries_each_bots_last_value_forward() -> None:
    fleet = fleet_curve({"a": curve((0, 10), (2, 20)), "b": curve((1, -5), (3, -1))})
    assert [(round((p.at - T0).total_seconds() / 60), p.net_usd) for p in fleet.points] == [
        (0, 10), (1, 5), (2, 15), (3, 19)]
    assert fleet.change_usd() == 9


def test_the_cache_reuses_an_answer_until_it_expires_and_never_keeps_a_failure() -> None:
    now = [0.0]
    cache = TtlCache(5, clock=lambda: now[0])
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("k", compute) == 1
    assert cache.get("k", compute) == 1
    now[0] = 6
    assert cache.get("k", compute) == 2

    def broken() -> int:
        raise RuntimeError("database down")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.get("other", broken)
    assert cache.get("other", compute) == 3
