"""The collectors' operator surface on SQLite and PostgreSQL, from data written through the
stores: what CollectorStatus and the straddle series read back, `fleet data status` (table,
--json, nothing recorded yet, bad input), the collectors in `fleet status`, and their
Prometheus metrics."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fleetkit.cli.app import main
from fleetkit.cli.render import components_table
from fleetkit.config.market_data import OptionCollectorSettings
from fleetkit.store.collector_status import MISSED_MINUTES, CollectorStatus
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.option_quotes import OptionQuoteStore
from fleetkit.store.status import fleet_view
from fleetkit.store.straddle_series import StraddleSeries
from tests.integration.dashboard.dashboard_seed import IST, seed_market_data
from tests.integration.test_metrics import samples
from tests.support import migrated_database

NOW = datetime(2026, 1, 5, 5, 0, 30, tzinfo=UTC)  # 10:30 IST on a Monday
MINUTE = timedelta(minutes=1)


def ist(_name: str) -> Any:
    return IST


def test_each_collectors_day_rows_minutes_gaps_rejects_latency_and_heartbeat(
        fleet_db: Any) -> None:
    seeded = seed_market_data(fleet_db, NOW)
    m = seeded.minutes
    # Yesterday's missed minute is not today's gap.
    OptionQuoteStore(fleet_db.engine).record_missed(
        "options", m[0] - timedelta(days=1), seeded.day - timedelta(days=1), recorded_at=NOW)
    found = {c.name: c for c in CollectorStatus(fleet_db.engine, fleet_db.engine)
             .collectors(ist, NOW)}
    assert sorted(found) == ["options", "straddles"]

    options = found["options"]
    assert (options.trading_day, options.rows_today, options.minutes_written,
            options.minutes_missed) == (seeded.day, 54, 3, 1)
    assert [(g.started_at, g.ended_at, g.reason) for g in options.gaps] == [
        (m[2], m[3], MISSED_MINUTES)]
    assert options.rejects == {"crossed": 2, "stale": 1}
    assert (options.write_ms_avg, options.write_ms_max) == (10.0, 12.0)
    assert options.last_minute == m[3]
    assert options.last_write_age_s == (NOW - m[3] - timedelta(seconds=2)).total_seconds()
    assert options.heartbeat is not None
    assert (options.heartbeat.component, options.heartbeat.status,
            options.heartbeat.age_s) == ("collector:options", "collecting", 5.0)

    straddles = found["straddles"]
    # A tracker keeps no minute ledger: its rows are its snapshot counter.
    assert (straddles.rows_today, straddles.minutes_written, straddles.minutes_missed) == \
        (3, 0, 0)
    assert [(g.scope, g.reason, g.filled) for g in straddles.gaps] == [
        ("BANKNIFTY", "stream dropped", 2)]
    assert straddles.rejects == {"out_of_order": 1}
    assert straddles.write_ms_avg is None
    assert straddles.last_minute == m[3]
    assert straddles.heartbeat is not None and straddles.heartbeat.status == "streaming"


def test_quote_days_newest_straddles_rows_per_minute_and_premium_series(
        fleet_db: Any, backend: str) -> None:
    seeded = seed_market_data(fleet_db, NOW)
    m = seeded.minutes
    status = CollectorStatus(fleet_db.engine)
    days = status.quote_days(seeded.day)
    assert days.days == (seeded.day,)
    assert days.partitioned is (backend == "postgresql")
    if backend == "postgresql":
        assert days.partitions == 1 and days.bytes is not None and days.bytes > 0
    [latest] = status.latest_straddles()
    assert (latest.underlying, latest.at, latest.premium) == ("BANKNIFTY", m[3], Decimal(398))
    assert status.rows_per_minute(seeded.day) == [("options", m[0], 18), ("options", m[1], 18),
                                                  ("options", m[3], 18)]

    series = StraddleSeries(fleet_db.engine).premiums(seeded.day)
    # The tracker's own snapshots where it ran (width 0 only) ...
    assert series["BANKNIFTY"] == [(m[0], Decimal("410.5")), (m[1], Decimal("402.25")),
                                   (m[3], Decimal(398))]
    # ... else the collector's chains at the inferred 50-point step: the 24000 call
    # (12.35 + i in the money) and put, each 80.05 + minute/100 of time value.
    assert series["NIFTY"] == [
        (minute, Decimal("12.35") + i + 2 * (Decimal("80.05") + Decimal(minute.minute) / 100))
        for i, minute in ((0, m[0]), (1, m[1]), (3, m[3]))]
    assert StraddleSeries(fleet_db.engine).premiums(seeded.day + timedelta(days=1)) == {}


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, fleet_db: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "220")  # rich tables at full width, not cut to 80
    monkeypatch.delenv("FLEET_MARKET_DATA_DB_URL", raising=False)
    config = tmp_path / "fleet.yaml"
    config.write_text("bots: []\n", encoding="utf-8")
    return ["--config", str(config), "--db", fleet_db.where]


def test_data_status_as_json_and_as_a_table(fleet_db: Any, cli: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    seed_market_data(fleet_db)
    assert main(["data", "status", "--json", *cli]) == 0
    report = json.loads(capsys.readouterr().out)
    options, straddles = report["collectors"]
    assert (options["name"], options["rows_today"], options["minutes_missed"],
            options["rejects"], options["write_ms"]) == (
        "options", 54, 1, {"crossed": 2, "stale": 1}, {"avg": 10.0, "max": 12.0})
    assert options["heartbeat"]["status"] == "collecting"
    assert [g["reason"] for g in straddles["gaps"]] == ["stream dropped"]
    assert report["option_quotes"]["keep_days"] == OptionCollectorSettings().hot_days
    assert len(report["option_quotes"]["days"]) == 1
    assert [s["underlying"] for s in report["straddles"]] == ["BANKNIFTY"]

    assert main(["data", "status", *cli]) == 0
    table = capsys.readouterr().out
    for text in ("options", "straddles", "collecting", "crossed 2, stale 1", "10/12",
                 "1 trading day held", "BANKNIFTY", "398"):
        assert text in table, text


def test_data_status_with_nothing_recorded_says_how_to_start(
        cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "status", *cli]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no market data recorded yet" in out
    assert "fleet data collect-options" in out
    assert main(["data", "status", "--json", *cli]) == 0
    assert json.loads(capsys.readouterr().out)["collectors"] == []


def test_data_status_refuses_a_missing_market_data_database_in_one_line(
        cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = f"sqlite:///{tmp_path / 'nowhere' / 'market.db'}"
    assert main(["data", "status", "--market-data-db", absent, *cli]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "market.db" in err and "Traceback" not in err


def test_fleet_status_lists_collector_heartbeats_with_their_detail(
        fleet_db: Any, cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    seed_market_data(fleet_db)
    assert main(["status", "--json", *cli]) == 0
    components = json.loads(capsys.readouterr().out)["components"]
    assert components["collector:options"]["kind"] == "collector"
    assert components["collector:options"]["detail"] == "54 rows today, 1 minute missed"
    assert components["tracker:straddles"]["status"] == "streaming"
    # Piped (not a terminal): bots as tab-separated rows, the components on stderr.
    assert main(["status", *cli]) == 0
    err = capsys.readouterr().err
    # The beat's age is the command's own clock (5 s after the seed, or a few more).
    assert re.search(r"^collector:options \(collector\): collecting, beat \d+s ago: "
                     r"54 rows today, 1 minute missed$", err, re.MULTILINE), err
    console = Console(record=True, width=200)
    console.print(components_table(fleet_view(fleet_db.engine, datetime.now(UTC), 60)))
    table = console.export_text()
    assert "tracker:straddles" in table and "BANKNIFTY 51200" in table


def test_a_scrape_reports_each_collectors_rows_misses_rejects_latency_and_age(
        fleet_db: Any, cli: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    seed_market_data(fleet_db)
    assert main(["metrics", "show", *cli]) == 0
    found = samples(capsys.readouterr().out)
    options = (("collector", "options"),)
    assert found[("fleet_collector_metrics_up", ())] == 1
    assert found[("fleet_collector_rows_today", options)] == 54
    assert found[("fleet_collector_rows_today", (("collector", "straddles"),))] == 3
    assert found[("fleet_collector_missed_minutes_today", options)] == 1
    assert found[("fleet_collector_rejects_today", (*options, ("reason", "crossed")))] == 2
    assert found[("fleet_collector_rejects_today",
                  (("collector", "straddles"), ("reason", "out_of_order")))] == 1
    assert found[("fleet_collector_write_latency_ms", (*options, ("stat", "avg")))] == 10
    assert found[("fleet_collector_write_latency_ms", (*options, ("stat", "max")))] == 12
    assert 0 <= found[("fleet_collector_last_write_age_seconds", options)] < 600
    assert ("fleet_component_heartbeat_age_seconds",
            (("component", "collector:options"),)) in found


def test_market_data_in_its_own_database_with_heartbeats_from_the_fleets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path))
    fleet = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    market = migrated_database(f"sqlite:///{tmp_path / 'market.db'}")
    try:
        seed_market_data(market)
        FleetStore(fleet.engine).beat(Heartbeat(
            "collector:options", "collector", None, "collecting", "from the fleet db", 1,
            "host-b", NOW, datetime.now(UTC), 1))
    finally:
        fleet.dispose()
        market.dispose()
    config = tmp_path / "fleet.yaml"
    config.write_text("bots: []\n", encoding="utf-8")
    cli = ["--config", str(config), "--db", f"sqlite:///{tmp_path / 'fleet.db'}",
           "--market-data-db", f"sqlite:///{tmp_path / 'market.db'}"]
    assert main(["data", "status", "--json", *cli]) == 0
    options, straddles = json.loads(capsys.readouterr().out)["collectors"]
    assert options["rows_today"] == 54
    assert options["heartbeat"]["detail"] == "from the fleet db"
    assert straddles["heartbeat"] is None  # its beat went to the market database
    assert main(["metrics", "show", *cli]) == 0
    found = samples(capsys.readouterr().out)
    assert found[("fleet_collector_rows_today", (("collector", "options"),))] == 54
