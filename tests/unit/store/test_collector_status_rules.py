"""The small rules behind `fleet data status` and the straddle chart: a chain's strike step
from its strikes, and consecutive missed minutes counted as one gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleetkit.store.collector_status import missed_runs
from fleetkit.store.straddle_series import infer_strike_step

T0 = datetime(2026, 1, 5, 3, 45, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_the_strike_step_is_the_smallest_gap_between_adjacent_strikes() -> None:
    # Unordered, repeated (CE and PE), one strike missing: still the listing's 50.
    strikes = [Decimal(s) for s in (24100, 24000, 24000, 24050, 24200, 24050)]
    assert infer_strike_step(strikes) == Decimal(50)
    assert infer_strike_step([Decimal("99.5"), Decimal(100), Decimal("100.5")]) == \
        Decimal("0.5")


def test_a_single_strike_or_none_gives_no_step() -> None:
    assert infer_strike_step([Decimal(24000), Decimal(24000)]) is None
    assert infer_strike_step([]) is None


def test_consecutive_missed_minutes_are_one_gap() -> None:
    missed = [T0 + 4 * MINUTE, T0, T0 + MINUTE, T0 + 2 * MINUTE, T0 + 9 * MINUTE]
    assert missed_runs(missed) == [(T0, T0 + 3 * MINUTE), (T0 + 4 * MINUTE, T0 + 5 * MINUTE),
                                   (T0 + 9 * MINUTE, T0 + 10 * MINUTE)]
    assert missed_runs([]) == []
