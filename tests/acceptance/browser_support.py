"""What the dashboard's real-browser tests share: `fleet dashboard` as a process, Debian's
headless Chromium through chromedriver (selenium; nothing downloaded), and waiting for what
a page shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT_S = 60


@contextmanager
def serving_dashboard(args: Sequence[str], env: dict[str, str], cwd: Path,
                      port: int) -> Iterator[str]:
    """`fleet dashboard --port PORT *args` until the block ends; yields its base URL."""
    log = cwd / "dashboard.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetkit", "dashboard", "--port", str(port), *args],
            env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
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


def wait_for_text(driver: Any, *texts: str) -> str:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(text in body for text in texts) and "Running..." not in body:
            return body
        time.sleep(0.25)
    pytest.fail(f"page never showed {texts!r}; it showed: {body[:2000]}")


def wait_for_element(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        if driver.find_elements(By.CSS_SELECTOR, css):
            return
        time.sleep(0.25)
    pytest.fail(f"no {css} on the page within {PAGE_TIMEOUT_S} s")


def screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    time.sleep(1.0)  # charts animate in: let them settle before the picture
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    keep = os.environ.get("FLEET_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / path.name)
    return path
