"""Fixtures for the acceptance tests that drive a real browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.browser_support import CHROMEDRIVER, CHROMIUM


@pytest.fixture
def browser() -> Iterator[Any]:
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
