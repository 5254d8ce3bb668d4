"""Collector counters add up across flushes and processes; outages are recorded once and
updated in place — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fleetkit.store.collector_stats import CollectorGap, CollectorStats

DAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)


def test_counters_add_up_and_zeros_write_nothing(fleet_db: Any) -> None:
    stats = CollectorStats(fleet_db.engine)
    stats.add("options", DAY, {"rows": 728, "rejected.crossed": 0}, NOW)
    stats.add("options", DAY, {"rows": 728, "missed": 1}, NOW + timedelta(minutes=1))
    # A second process (a restart overlapping a slow stop) adds, not overwrites.
    CollectorStats(fleet_db.engine).add("options", DAY, {"rows": 10}, NOW)
    assert stats.counters("options", DAY) == {"missed": 1, "rows": 1466}
    assert stats.counters("options", DAY + timedelta(days=1)) == {}
    assert stats.counters("straddles", DAY) == {}
    assert stats.collectors() == ["options"]


def test_a_gap_is_one_row_updated_by_its_fill(fleet_db: Any) -> None:
    stats = CollectorStats(fleet_db.engine)
    gap = CollectorGap("straddles", "NIFTY", NOW, NOW + timedelta(seconds=40),
                       "stream dropped", 0)
    stats.record_gap(gap, NOW)
    stats.record_gap(CollectorGap("straddles", "NIFTY", NOW, NOW + timedelta(seconds=45),
                                  "stream dropped", 12), NOW + timedelta(minutes=1))
    stats.record_gap(CollectorGap("straddles", "SENSEX", NOW, NOW + timedelta(seconds=45),
                                  "stream dropped", 3), NOW)
    found = stats.gaps("straddles")
    assert [(g.scope, g.filled, g.ended_at) for g in found] == [
        ("NIFTY", 12, NOW + timedelta(seconds=45)), ("SENSEX", 3, NOW + timedelta(seconds=45))]
    assert stats.gaps("straddles", since=NOW + timedelta(minutes=5)) == []
    assert stats.gaps("straddles", until=NOW) == []
    assert len(stats.gaps(since=NOW, until=NOW + timedelta(seconds=1))) == 2
    assert stats.collectors() == ["straddles"]


def test_peaks_only_rise(fleet_db: Any) -> None:
    stats = CollectorStats(fleet_db.engine)
    stats.peak("options", DAY, {"write_ms_max": 40}, NOW)
    stats.peak("options", DAY, {"write_ms_max": 12}, NOW)
    assert stats.counters("options", DAY) == {"write_ms_max": 40}
    stats.peak("options", DAY, {"write_ms_max": 55}, NOW)
    assert stats.counters("options", DAY) == {"write_ms_max": 55}
