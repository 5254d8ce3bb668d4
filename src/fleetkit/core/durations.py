"""Spans of time as a person says them, for alerts, replies and reports."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """"40 s", "17 min", "2 h 5 min", "24 h", "3 d 4 h" (rounded down)."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if whole < 3600:
        return f"{minutes} min"
    if whole < 2 * 86400:  # "last 24 h", "30 h": days only once they read better
        rest = minutes % 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours % 24
    return f"{days} d {rest} h" if rest else f"{days} d"


def short_age(seconds: float | None) -> str:
    """A heartbeat's age in a table cell: "4s", "17m", "2.0h", "3d"; "never" for None."""
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.0f}d"
