"""The Models & training page and its queries, on SQLite and PostgreSQL, with runs and
versions written through the real TrainingRunStore and ModelRegistry."""

from __future__ import annotations

import json
from typing import Any

from fleetkit.dashboard.training_queries import TrainingQueries
from tests.integration.dashboard.dashboard_seed import seed_training
from tests.integration.dashboard.test_dashboard_pages import dashboard_env, metrics, open_page

__all__ = ["dashboard_env"]  # the fixture, imported to be found


def test_the_view_has_runs_newest_first_active_versions_rejections_and_rollbacks(
        fleet_db: Any) -> None:
    seeded = seed_training(fleet_db)
    view = TrainingQueries(fleet_db.engine).view()
    assert [(r.period, r.state.value) for r in view.runs] == [
        ("2026-12-07T02", "rejected"), ("2026-12-07T00", "succeeded")]
    assert [(s.step, s.seconds) for s in view.runs[1].steps] == [("export", 2.0),
                                                                  ("ship", 1.0)]
    v = seeded.versions
    assert [(m.version.bot, m.version.id, m.how, m.previous and m.previous.id)
            for m in view.active] == [("rl-btc", v["v2"], "activated", v["v1"]),
                                      ("rl-eth", v["v4"], "rolled_back", v["v5"])]
    btc = view.active[0]
    assert (btc.version.metrics["sharpe"], btc.previous and btc.previous.metrics["sharpe"]
            ) == (0.8, 0.5)
    assert [(r.what, r.step, r.reason) for r in view.rejections] == [
        ("run rl-btc-1h-2026-12-07-02-a1", "fetch",
         "model.zip arrived with sha256 0000: changed in transit"),
        (f"version {v['v3']}", "", "gate: Sharpe too low")]
    assert [(r.to_version, r.from_version, r.actor, r.reason) for r in view.rollbacks] == [
        (v["v4"], v["v5"], "cli:ops", "fills slipped")]


def test_an_empty_database_is_an_empty_view(fleet_db: Any) -> None:
    view = TrainingQueries(fleet_db.engine).view()
    assert view.empty and view.active == () and view.rollbacks == ()


def test_the_page_shows_runs_steps_active_versions_rejections_and_rollbacks(
        fleet_db: Any, dashboard_env: None) -> None:
    seeded = seed_training(fleet_db)
    at = open_page("training")
    assert metrics(at) == {"Runs shown": "2", "Failed": "0", "Rejected": "1",
                           "Active versions": "2"}
    runs, steps, active, rejections, rollbacks = (d.value for d in at.dataframe)
    assert list(zip(runs["Bot"], runs["State"], runs["Trainer"], strict=True)) == [
        ("rl-btc", "rejected", "gpu-box"), ("rl-btc", "succeeded", "local")]
    assert "changed in transit" in runs.iloc[0]["Error"]
    assert list(steps["Step"]) == ["fetch"]  # the newest run's, chosen by default
    btc = active[active["Bot"] == "rl-btc"].iloc[0]
    assert (btc["Version"], btc["Previous"], btc["Sharpe"], btc["Sharpe before"],
            btc["Sharpe change"]) == (seeded.versions["v2"], seeded.versions["v1"], 0.8, 0.5,
                                      0.3)
    assert list(rejections["Reason"])[1] == "gate: Sharpe too low"
    assert list(rollbacks["Reason"]) == ["fills slipped"]
    at.selectbox(key="training_run").select_index(1).run()
    assert not at.exception
    assert list(at.dataframe[1].value["Seconds"]) == [2.0, 1.0]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [(t["y"], t["x"]) for t in chart["data"]] == [(["export"], [2.0]),
                                                        (["ship"], [1.0])]


def test_the_page_explains_an_empty_database(fleet_db: Any, dashboard_env: None) -> None:
    at = open_page("training")
    assert any("No training run and no model version recorded yet" in i.value
               for i in at.info)
