"""Service liveness: which fleet components have stopped heartbeating, and for how long."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fleetkit.core.alerts import Finding, Severity
from fleetkit.core.durations import format_duration

MONITOR = "services"


@dataclass(frozen=True, slots=True)
class Beat:
    """A component's latest heartbeat ("bot:alpha", "scheduler", "service:collector" ...)."""

    component: str
    kind: str
    status: str  # trading, sleeping, paused, halted, stopped ...
    beat_at: datetime
    detail: str = ""
    # When the component entered `status`, where the caller knows it: a paused component
    # keeps heartbeating, so only this tells a long pause from a short one.
    status_since: datetime | None = None


def check_heartbeats(beats: Iterable[Beat], now: datetime, stale_after_s: float,
                     expected: Iterable[str] = ()) -> list[Finding]:
    """One finding per component seen or expected, sorted by component."""
    if stale_after_s <= 0:
        raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
    latest: dict[str, Beat] = {}
    for beat in beats:  # several beats of one component: only the newest counts
        if beat.component not in latest or beat.beat_at > latest[beat.component].beat_at:
            latest[beat.component] = beat
    findings = {name: _beat_finding(beat, now, stale_after_s) for name, beat in latest.items()}
    for name in expected:
        if name not in findings:
            findings[name] = Finding(MONITOR, f"heartbeat:{name}", Severity.WARNING,
                                     f"{name} never started (no heartbeat)",
                                     {"component": name, "status": "never"})
    return [findings[name] for name in sorted(findings)]


def _beat_finding(beat: Beat, now: datetime, stale_after_s: float) -> Finding:
    age_s = max(0.0, (now - beat.beat_at).total_seconds())  # clock skew: never negative
    data = {"component": beat.component, "kind": beat.kind, "status": beat.status,
            "age_s": round(age_s, 1), "beat_at": beat.beat_at.isoformat()}
    name, stale, ago = beat.component, format_duration(stale_after_s), format_duration(age_s)
    detail = f": {beat.detail}" if beat.detail else ""
    key = f"heartbeat:{name}"
    if beat.status == "stopped":
        return Finding(MONITOR, key, Severity.INFO, f"{name} stopped cleanly {ago} ago", data)
    if age_s > stale_after_s:
        return Finding(MONITOR, key, Severity.ERROR,
                       f"{name} has not heartbeaten for {ago} (last status {beat.status}) — "
                       f"stale after {stale}", data)
    if beat.status == "paused" and beat.status_since is not None:
        paused_s = max(0.0, (now - beat.status_since).total_seconds())
        data["paused_s"] = round(paused_s, 1)
        if paused_s > stale_after_s:
            return Finding(MONITOR, key, Severity.WARNING,
                           f"{name} paused for {format_duration(paused_s)}{detail} — "
                           f"warning after {stale}", data)
        return Finding(MONITOR, key, Severity.INFO,
                       f"{name} paused for {format_duration(paused_s)}{detail}", data)
    return Finding(MONITOR, key, Severity.INFO,
                   f"{name} {beat.status}, last beat {ago} ago{detail}", data)
