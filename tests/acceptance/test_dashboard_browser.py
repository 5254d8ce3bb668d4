"""The dashboard in a real browser: `fleet dashboard` serving a seeded fleet, Debian's
headless Chromium (driven by chromedriver, nothing downloaded) loading the overview and the
P&L page, with screenshots. FLEET_SCREENSHOT_DIR also keeps them there (docs/ uses it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.dashboard.dashboard_seed import seed_fleet
from tests.support import migrated_database

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dashboard_url(tmp_path: Path) -> Iterator[str]:
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        seed_fleet(database)
    finally:
        database.dispose()
    port = free_port()
    env = {**os.environ, "FLEET_HOME": str(tmp_path), "FLEET_CONFIG": "",
           "FLEET_DB_URL": f"sqlite:///{tmp_path / 'fleet.db'}"}
    env.pop("FLEET_CONFIG")
    log = tmp_path / "dashboard.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetkit", "dashboard", "--port", str(port)], env=env,
            cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"fleet dashboard exited with {process.returncode}: "
                        f"{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail("fleet dashboard did not become healthy within 60 s")


@pytest.fixture
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("FLEET_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("FLEET_TEST_REQUIRE_BROWSER=1 but Debian's chromium and "
                        "chromium-driver are not installed (apt-get install chromium "
                        "chromium-driver)")
        pytest.skip("no Debian chromium/chromium-driver: apt-get install chromium "
                    "chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager: never download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-dev-shm-usage",
                 "--window-size=1440,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for_text(driver: object, *texts: str) -> str:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        if all(text in body for text in texts) and "Running..." not in body:
            return body
        time.sleep(0.25)
    pytest.fail(f"page never showed {texts!r}; it showed: {body[:2000]}")


def _wait_for_element(driver: object, css: str) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        if driver.find_elements(By.CSS_SELECTOR, css):  # type: ignore[attr-defined]
            return
        time.sleep(0.25)
    pytest.fail(f"no {css} on the page within {PAGE_TIMEOUT_S} s")


def _screenshot(driver: object, tmp_path: Path, name: str) -> Path:
    time.sleep(1.0)  # charts animate in: let them settle before the picture
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    assert path.stat().st_size > 10_000
    keep = os.environ.get("FLEET_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_the_overview_and_pnl_pages_render_live_numbers_in_chromium(
        dashboard_url: str, browser: object, tmp_path: Path) -> None:
    browser.get(dashboard_url)  # type: ignore[attr-defined]
    # The bots' table draws on a canvas (no DOM text): the metrics above it carry the
    # numbers, and the screenshot shows the table.
    body = _wait_for_text(browser, "Fleet overview", "Fleet P&L today", "-$434.50")
    assert "Stale or stopped\n2" in body
    _screenshot(browser, tmp_path, "dashboard-overview")

    browser.get(f"{dashboard_url}/pnl")  # type: ignore[attr-defined]
    _wait_for_text(browser, "Net P&L now", "-$434.50", "Max drawdown")
    _wait_for_element(browser, ".js-plotly-plot .main-svg")  # the chart drew
    _screenshot(browser, tmp_path, "dashboard-pnl")
