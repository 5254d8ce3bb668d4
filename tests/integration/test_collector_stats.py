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


def test_fleet_data_gaps_without_a_symbol_lists_the_collectors_outages(
        fleet_db: Any, database_url: str, tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    import json

    from fleetkit.cli.app import main

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    config = tmp_path / "fleet.yaml"
    config.write_text("bots: []\n", encoding="utf-8")
    stats = CollectorStats(fleet_db.engine)
    stats.record_gap(CollectorGap("options", "", NOW, NOW + timedelta(minutes=4),
                                  "no snapshot in its minute", 4), NOW)
    stats.record_gap(CollectorGap("straddles", "NIFTY", NOW, NOW + timedelta(seconds=30),
                                  "stream dropped", 2), NOW)
    args = ["--config", str(config), "--db", database_url, "--from", "2026-01-05",
            "--to", "2026-01-05"]
    assert main(["data", "gaps", "--json", *args]) == 0
    found = json.loads(capsys.readouterr().out)["gaps"]
    assert [(g["collector"], g["scope"], g["filled"]) for g in found] == [
        ("options", "", 4), ("straddles", "NIFTY", 2)]
    assert main(["data", "gaps", *args]) == 0
    out = capsys.readouterr().out
    assert "collector outages" in out and "straddles NIFTY" in out and "(4.0 min)" in out
    assert main(["data", "gaps", "--json", "--config", str(config), "--db", database_url,
                 "--from", "2026-01-06", "--to", "2026-01-06"]) == 0
    assert json.loads(capsys.readouterr().out)["gaps"] == []
