"""The calendar coverage alert on a real database: one warning event per calendar per day,
however often and from however many processes it is raised."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetkit.calendars.coverage import Expiring
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.runtime.calendar_watch import (
    ALERT_KIND,
    overrides_path,
    record_coverage_alerts,
    watch_calendar_coverage,
)
from fleetkit.store.audit import EventView, recent_events

NSE_ENDS = Expiring("NSE", "XNSE", date(2026, 12, 31))
MORNING = datetime(2026, 12, 15, 6, tzinfo=UTC)


def alerts(database: Any) -> list[EventView]:
    return recent_events(database.engine, kind=ALERT_KIND)


def test_the_alert_is_written_once_per_calendar_per_day(fleet_db: Any) -> None:
    assert record_coverage_alerts(fleet_db.engine, [NSE_ENDS], MORNING) == 1
    assert record_coverage_alerts(fleet_db.engine, [NSE_ENDS], MORNING + timedelta(hours=17)) == 0
    [event] = alerts(fleet_db)
    assert (event.kind, event.severity, event.code, event.bot) == (ALERT_KIND, "warning", "XNSE",
                                                                   None)
    assert "XNSE calendar data ends 2026-12-31 (in 16 days)" in event.message
    assert "calendars.overrides_file" in event.message
    assert event.data == {"calendar": "XNSE", "markets": ["NSE"], "ends": "2026-12-31",
                          "days_left": 16}


def test_the_next_day_brings_another_alert(fleet_db: Any) -> None:
    record_coverage_alerts(fleet_db.engine, [NSE_ENDS], MORNING)
    assert record_coverage_alerts(fleet_db.engine, [NSE_ENDS], MORNING + timedelta(days=1)) == 1
    assert [e.data["days_left"] for e in alerts(fleet_db)] == [15, 16]


def test_each_calendar_is_alerted_on_its_own(fleet_db: Any) -> None:
    other = Expiring("NYSE", "XNYS", date(2027, 1, 1))
    record_coverage_alerts(fleet_db.engine, [NSE_ENDS], MORNING)
    assert record_coverage_alerts(fleet_db.engine, [NSE_ENDS, other], MORNING) == 1
    assert sorted(e.code or "" for e in alerts(fleet_db)) == ["XNSE", "XNYS"]


def test_concurrent_checks_write_one_alert(fleet_db: Any) -> None:
    start = threading.Barrier(4)
    written: list[int] = []

    def check() -> None:
        start.wait()
        written.append(record_coverage_alerts(fleet_db.engine, [NSE_ENDS], MORNING))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(written) == [0, 0, 0, 1]
    assert len(alerts(fleet_db)) == 1


def fleet_config(tmp_path: Path, extra: str = "") -> LoadedConfig:
    path = tmp_path / "fleet.yaml"
    text = ('bots:\n  - {name: india, market: NSE, symbols: ["RELIANCE"], strategy: sma_cross}\n'
            '  - {name: coins, market: CRYPTO, symbols: ["BTC/USDT"], strategy: sma_cross}\n'
            + extra)
    path.write_text(text, encoding="utf-8")
    return LoadedConfig(parse_config(text, str(path)), str(path), tmp_path)


def test_fleet_up_warns_about_its_bots_markets_with_the_configs_overrides(
        fleet_db: Any, tmp_path: Path) -> None:
    loaded = fleet_config(tmp_path)
    # The shipped override file trusts NSE into 2027: nothing to say in mid-December...
    assert watch_calendar_coverage(loaded, fleet_db.engine, MORNING) == []
    assert alerts(fleet_db) == []
    # ... but 30 days before its coverage_until, one alert however often the fleet starts.
    january = datetime(2027, 1, 10, 8, tzinfo=UTC)
    for _ in range(2):
        assert [e.market for e in watch_calendar_coverage(loaded, fleet_db.engine, january)] \
            == ["NSE"]
    assert len(alerts(fleet_db)) == 1


def test_the_configs_override_file_is_found_next_to_the_config(
        fleet_db: Any, tmp_path: Path) -> None:
    (tmp_path / "calendars.yaml").write_text(
        "calendars: {XNSE: {coverage_until: 2027-12-31}}\n", encoding="utf-8")
    loaded = fleet_config(tmp_path, "calendars: {overrides_file: calendars.yaml}\n")
    assert overrides_path(loaded) == tmp_path / "calendars.yaml"
    january = datetime(2027, 1, 10, 8, tzinfo=UTC)
    assert watch_calendar_coverage(loaded, fleet_db.engine, january) == []
