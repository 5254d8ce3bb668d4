"""The dashboard in a real browser: `fleet dashboard` serving a seeded fleet, Debian's
headless Chromium (driven by chromedriver, nothing downloaded) loading the overview and the
P&L page, with screenshots. FLEET_SCREENSHOT_DIR also keeps them there (docs/ uses it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetkit.testing.loopback import free_port
from tests.acceptance.browser_support import (
    screenshot,
    serving_dashboard,
    wait_for_element,
    wait_for_text,
)
from tests.integration.dashboard.dashboard_seed import seed_fleet
from tests.support import migrated_database


@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[str]:
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        seed_fleet(database)
    finally:
        database.dispose()
    env = {**os.environ, "FLEET_HOME": str(tmp_path),
           "FLEET_DB_URL": f"sqlite:///{tmp_path / 'fleet.db'}"}
    env.pop("FLEET_CONFIG", None)
    with serving_dashboard([], env, tmp_path, free_port()) as url:
        yield url


def test_the_overview_and_pnl_pages_render_live_numbers_in_chromium(
        dashboard_url: str, browser: Any, tmp_path: Path) -> None:
    browser.get(dashboard_url)
    # The bots' table draws on a canvas (no DOM text): the metrics above it carry the
    # numbers, and the screenshot shows the table.
    body = wait_for_text(browser, "Fleet overview", "Fleet P&L today", "-$434.50")
    assert "Stale or stopped\n2" in body
    screenshot(browser, tmp_path, "dashboard-overview")

    browser.get(f"{dashboard_url}/pnl")
    wait_for_text(browser, "Net P&L now", "-$434.50", "Max drawdown")
    wait_for_element(browser, ".js-plotly-plot .main-svg")  # the chart drew
    screenshot(browser, tmp_path, "dashboard-pnl")
