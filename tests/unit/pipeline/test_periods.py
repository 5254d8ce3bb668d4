"""The pipeline's periods: what `fleet train run --period` (or the scheduler's
FLEET_JOB_PERIOD, a job's fire time) names, for a daily and a 2-hour bot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleetkit.core.errors import UserError
from fleetkit.pipeline.runs import period_named, period_of

NOW = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "daily", "two_hourly"), [
    ("2026-12-07T10:45:00Z", "2026-12-07", "2026-12-07T10:00Z"),  # a job's fire time
    ("2026-12-07", "2026-12-07", "2026-12-07T00:00Z"),
    ("2026-12-08T14:00Z", "2026-12-08", "2026-12-08T14:00Z"),
    ("2026-12-08T13:59:59+00:00", "2026-12-08", "2026-12-08T12:00Z"),
    ("2026-12-08T01:30:00+05:30", "2026-12-07", "2026-12-07T20:00Z"),  # UTC decides
    ("2026-12-08T14:30", "2026-12-08", "2026-12-08T14:00Z"),  # no zone: UTC
])
def test_a_moment_names_the_period_it_falls_in(text: str, daily: str, two_hourly: str) -> None:
    assert period_named(text, 24, NOW) == daily
    assert period_named(text, 2, NOW) == two_hourly


def test_a_period_names_itself() -> None:
    for hours in (1, 2, 6, 24):
        own = period_of(NOW, hours)
        assert period_named(own, hours, NOW) == own


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-08T15:00:01Z", "is in the future"),
    ("today", "give a UTC date"),
    ("", "give a UTC date"),
])
def test_a_bad_period_is_refused(text: str, expected: str) -> None:
    with pytest.raises(UserError, match=expected):
        period_named(text, 24, NOW)
