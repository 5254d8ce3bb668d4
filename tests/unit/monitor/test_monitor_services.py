"""Heartbeat checks: stale, fresh, stopped, paused and never-started components."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleetkit.core.alerts import Severity
from fleetkit.core.durations import format_duration
from fleetkit.monitor.services import Beat, check_heartbeats

NOW = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
STALE_S = 15 * 60


def ago(**kwargs: float) -> datetime:
    return NOW - timedelta(**kwargs)


def beat(component: str = "bot:alpha", status: str = "trading", **kwargs: object) -> Beat:
    fields: dict[str, object] = {"kind": "bot", "beat_at": NOW} | kwargs
    return Beat(component=component, status=status, **fields)  # type: ignore[arg-type]


def test_fresh_heartbeat_is_info() -> None:
    (found,) = check_heartbeats([beat(beat_at=ago(seconds=40))], NOW, STALE_S)
    assert (found.monitor, found.key, found.severity) == (
        "services", "heartbeat:bot:alpha", Severity.INFO)
    assert found.message == "bot:alpha trading, last beat 40 s ago"
    assert found.data["age_s"] == 40.0


def test_stale_heartbeat_is_an_error_with_last_status_and_limit() -> None:
    (found,) = check_heartbeats([beat(beat_at=ago(minutes=17))], NOW, STALE_S)
    assert found.severity is Severity.ERROR
    assert found.message == ("bot:alpha has not heartbeaten for 17 min (last status trading) "
                             "— stale after 15 min")


def test_heartbeat_exactly_at_the_limit_is_not_yet_stale() -> None:
    (found,) = check_heartbeats([beat(beat_at=ago(seconds=STALE_S))], NOW, STALE_S)
    assert found.severity is Severity.INFO
    (found,) = check_heartbeats([beat(beat_at=ago(seconds=STALE_S + 1))], NOW, STALE_S)
    assert found.severity is Severity.ERROR


def test_stopped_component_is_fine_however_old_its_last_beat() -> None:
    (found,) = check_heartbeats([beat(status="stopped", beat_at=ago(hours=2, minutes=5))],
                                NOW, STALE_S)
    assert found.severity is Severity.INFO
    assert found.message == "bot:alpha stopped cleanly 2 h 5 min ago"


def test_expected_component_without_any_beat_never_started() -> None:
    findings = check_heartbeats([beat()], NOW, STALE_S, expected=["bot:alpha", "scheduler"])
    assert [(f.key, f.severity) for f in findings] == [
        ("heartbeat:bot:alpha", Severity.INFO), ("heartbeat:scheduler", Severity.WARNING)]
    assert findings[1].message == "scheduler never started (no heartbeat)"


def test_long_pause_warns_and_short_pause_informs() -> None:
    long_pause = beat(status="paused", detail="broker unreachable",
                      beat_at=ago(seconds=10), status_since=ago(minutes=20))
    short_pause = beat("bot:beta", status="paused", beat_at=ago(seconds=10),
                       status_since=ago(minutes=3))
    alpha, beta = check_heartbeats([short_pause, long_pause], NOW, STALE_S)
    assert alpha.severity is Severity.WARNING
    assert alpha.message == ("bot:alpha paused for 20 min: broker unreachable — "
                             "warning after 15 min")
    assert beta.severity is Severity.INFO
    assert beta.message == "bot:beta paused for 3 min"


def test_pause_of_unknown_length_is_info() -> None:
    (found,) = check_heartbeats([beat(status="paused", detail="database unreachable")],
                                NOW, STALE_S)
    assert found.severity is Severity.INFO
    assert found.message == "bot:alpha paused, last beat 0 s ago: database unreachable"


def test_paused_component_that_stopped_beating_is_stale() -> None:
    (found,) = check_heartbeats([beat(status="paused", beat_at=ago(minutes=30),
                                      status_since=ago(minutes=40))], NOW, STALE_S)
    assert found.severity is Severity.ERROR


def test_only_the_newest_beat_of_a_component_counts() -> None:
    (found,) = check_heartbeats([beat(beat_at=ago(seconds=5)), beat(beat_at=ago(hours=1))],
                                NOW, STALE_S)
    assert found.severity is Severity.INFO


def test_beat_from_a_clock_ahead_reads_as_just_now() -> None:
    (found,) = check_heartbeats([beat(beat_at=NOW + timedelta(seconds=30))], NOW, STALE_S)
    assert found.severity is Severity.INFO
    assert found.data["age_s"] == 0.0


def test_findings_are_sorted_by_component() -> None:
    findings = check_heartbeats([beat("scheduler", kind="scheduler"), beat("broker"),
                                 beat("bot:alpha")], NOW, STALE_S)
    assert [f.key for f in findings] == ["heartbeat:bot:alpha", "heartbeat:broker",
                                         "heartbeat:scheduler"]


def test_non_positive_stale_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="stale_after_s"):
        check_heartbeats([], NOW, 0)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (40.9, "40 s"), (60, "1 min"), (17 * 60 + 59, "17 min"), (3600, "1 h"),
    (2 * 3600 + 5 * 60, "2 h 5 min"), (86400, "24 h"),
    (47 * 3600 + 59 * 60, "47 h 59 min"), (2 * 86400, "2 d"),
    (3 * 86400 + 4 * 3600 + 59, "3 d 4 h"), (-5, "0 s"),
])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
