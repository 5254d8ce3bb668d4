"""Screenshots of every dashboard page for docs/screenshots/, from a running dashboard.

    fleet up &                                   # let the demo trade for a few minutes
    fleet dashboard --port 8501 &
    python scripts/dashboard_screenshots.py --url http://127.0.0.1:8501 --out docs/screenshots

Drives Debian's headless Chromium through chromedriver (apt-get install chromium
chromium-driver); nothing is downloaded. With --user/--password-env it logs in first, so the
controls page shows its form.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

PAGES = {"overview": "", "pnl": "pnl", "positions": "positions", "history": "history",
         "risk": "risk", "health": "health", "controls": "controls"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--user", help="log in as this dashboard user first")
    parser.add_argument("--password-env", default="FLEET_DASHBOARD_PASSWORD",
                        help="environment variable holding --user's password")
    args = parser.parse_args()
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--window-size=1440,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(args.url)
        _settle(driver, By)
        if args.user:
            _log_in(driver, By, args.user, os.environ[args.password_env])
        for name, path in PAGES.items():
            # Navigate inside the app (a fresh page load would start a new, logged-out
            # session): click the page's link in the sidebar.
            link = driver.find_element(By.CSS_SELECTOR, f'a[href$="/{path}"]')
            link.click()
            _settle(driver, By)
            target = args.out / f"dashboard-{name}.png"
            driver.save_screenshot(str(target))
            print(f"{target}")
    finally:
        driver.quit()


def _settle(driver: object, by: object) -> None:
    time.sleep(1.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = driver.find_element(by.TAG_NAME, "body").text  # type: ignore[attr-defined]
        if "Running..." not in body and body.strip():
            break
        time.sleep(0.3)
    time.sleep(2.0)  # charts draw after the data arrives


def _log_in(driver: object, by: object, user: str, password: str) -> None:
    inputs = driver.find_elements(by.CSS_SELECTOR, "section[data-testid='stSidebar'] input")  # type: ignore[attr-defined]
    inputs[0].send_keys(user)
    inputs[1].send_keys(password)
    for button in driver.find_elements(by.TAG_NAME, "button"):  # type: ignore[attr-defined]
        if button.text.strip() == "Log in":
            button.click()
            break
    _settle(driver, by)


if __name__ == "__main__":
    main()
