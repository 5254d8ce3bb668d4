"""The sample Grafana dashboard (deploy/grafana) must only chart metrics the exporter emits:
a renamed metric would otherwise leave a silently empty panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fleetkit.monitor import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fleetkit-overview.json"


def exported_names() -> set[str]:
    """Every metric family the collector defines, with counters' `_total` samples."""
    source = Path(metrics.__file__).read_text(encoding="utf-8")
    names = set(re.findall(r'(?:Gauge|Counter)MetricFamily\(\s*"([a-z_]+)"', source))
    counters = set(re.findall(r'CounterMetricFamily\(\s*"([a-z_]+)"', source))
    return names | {f"{name}_total" for name in counters}


def test_every_panel_queries_a_metric_the_exporter_emits() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    known = exported_names()
    assert "fleet_bot_state" in known and "fleet_risk_denials_total" in known
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bfleet_[a-z_]+", target["expr"]))
    assert used, "the dashboard charts nothing"
    assert used <= known, f"unknown metrics in the dashboard: {sorted(used - known)}"


def test_panels_do_not_overlap_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        pos = panel["gridPos"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine
