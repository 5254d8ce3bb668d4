"""OutageThrottle: a failure that recurs at every tick is said when it starts, every few
minutes while it lasts and when it ends — on a clock the test moves, no sleeps."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.outage import OutageThrottle


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def throttle(clock: FakeMonotonic) -> OutageThrottle:
    return OutageThrottle(get_logger("test.outage"), "thing.beat", problem="thing not written",
                          recovered="thing written again", remind_every_s=300,
                          monotonic=clock, component="thing")


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    return [(r.getMessage(), dict(getattr(r, "fields", {}))) for r in caplog.records
            if r.name == "fleetkit.test.outage"]


def test_the_first_failure_says_the_outage_started(
        throttle: OutageThrottle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert throttle.failed(OSError("refused")) == "started"
    assert throttle.ongoing
    [(message, fields)] = said(caplog)
    assert message == "thing not written"
    assert fields == {"action": "thing.beat", "outage": "started", "error": "refused",
                      "component": "thing"}


def test_failures_within_the_reminder_interval_say_nothing(
        throttle: OutageThrottle, clock: FakeMonotonic,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    throttle.failed("refused")
    for _ in range(299):  # one attempt a second, for just under five minutes
        clock.now += 1
        assert throttle.failed("refused") is None
    assert len(said(caplog)) == 1


def test_a_long_outage_is_recalled_once_per_interval_with_its_age(
        throttle: OutageThrottle, clock: FakeMonotonic,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    phases = []
    for _ in range(901):  # 0 s .. 900 s, one attempt a second
        phases.append(throttle.failed("refused"))
        clock.now += 1
    assert [p for p in phases if p] == ["started", "ongoing", "ongoing", "ongoing"]
    reminders = said(caplog)[1:]
    assert [m for m, _ in reminders] == ["thing not written (still, after 5 min)",
                                         "thing not written (still, after 10 min)",
                                         "thing not written (still, after 15 min)"]
    assert reminders[0][1]["outage_s"] == 300
    assert reminders[0][1]["failures"] == 301


def test_the_first_success_says_the_outage_is_over_and_how_long_it_lasted(
        throttle: OutageThrottle, clock: FakeMonotonic,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    throttle.failed("refused")
    clock.now += 42
    throttle.failed("refused")
    clock.now += 3
    assert throttle.succeeded() == "over"
    assert not throttle.ongoing
    message, fields = said(caplog)[-1]
    assert message == "thing written again after 45 s"
    assert fields["outage"] == "over"
    assert fields["outage_s"] == 45
    assert fields["failures"] == 2
    assert throttle.succeeded() is None  # later successes are not news
    assert len(said(caplog)) == 2


def test_success_without_an_outage_says_nothing(
        throttle: OutageThrottle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert throttle.succeeded() is None
    assert said(caplog) == []


def test_a_second_outage_starts_fresh(
        throttle: OutageThrottle, clock: FakeMonotonic,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    throttle.failed("refused")
    clock.now += 290
    throttle.succeeded()
    clock.now += 5
    assert throttle.failed("reset") == "started"  # not a reminder of the first one
    clock.now += 20  # 315 s after the first outage began, 20 s into this one
    assert throttle.failed("reset") is None
    clock.now += 10
    throttle.succeeded()
    message, fields = said(caplog)[-1]
    assert message == "thing written again after 30 s"
    assert fields["failures"] == 2
