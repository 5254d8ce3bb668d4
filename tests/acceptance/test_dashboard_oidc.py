"""Logging in to the dashboard through OpenID Connect, end to end: `fleet dashboard` with
`dashboard.auth.oidc`, a fake provider on loopback (authorization code, PKCE, an RS256 ID
token checked against its JWKS), and headless Chromium following the redirects. The user
the provider vouches for can then halt a bot, and the audit names them."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.store.schema import events
from fleetkit.testing.fake_oidc import FakeOidcProvider
from fleetkit.testing.loopback import free_port
from tests.acceptance.browser_support import (
    PAGE_TIMEOUT_S,
    screenshot,
    serving_dashboard,
    wait_for_text,
)
from tests.integration.dashboard.dashboard_seed import seed_fleet
from tests.support import migrated_database

EMAIL = "alice@example.test"


@dataclass
class OidcDashboard:
    url: str
    provider: FakeOidcProvider
    database_url: str


def secrets_toml(provider: FakeOidcProvider, port: int, client_secret: str) -> str:
    return (f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_urlsafe(48)}"\n'
            f'client_id = "{provider.client_id}"\n'
            f'client_secret = "{client_secret}"\n'
            f'server_metadata_url = "{provider.metadata_url}"\n')


@pytest.fixture
def oidc_dashboard(tmp_path: Path) -> Iterator[OidcDashboard]:
    with serving_with_oidc(tmp_path) as served:
        yield served


@contextmanager
def serving_with_oidc(tmp_path: Path, *,
                      client_secret: str | None = None) -> Iterator[OidcDashboard]:
    database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    database = migrated_database(database_url)
    try:
        seed_fleet(database)
    finally:
        database.dispose()
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oauth2callback"
    with FakeOidcProvider(email=EMAIL, name="Alice", redirect_uris=(callback,)) as provider:
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "oidc.toml").write_text(
            secrets_toml(provider, port, client_secret or provider.client_secret),
            encoding="utf-8")
        (tmp_path / "fleet.yaml").write_text(
            "dashboard:\n  auth:\n    oidc: true\n    oidc_secrets_file: secrets/oidc.toml\n",
            encoding="utf-8")
        env = {**os.environ, "FLEET_HOME": str(tmp_path), "FLEET_DB_URL": database_url}
        env.pop("FLEET_CONFIG", None)
        with serving_dashboard(["--config", str(tmp_path / "fleet.yaml")], env, tmp_path,
                               port) as url:
            yield OidcDashboard(url, provider, database_url)


def click_button(driver: Any, label: str) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        for button in driver.find_elements(By.TAG_NAME, "button"):
            if button.text.strip() == label and button.is_displayed():
                button.click()
                return
        time.sleep(0.25)
    pytest.fail(f"no {label!r} button within {PAGE_TIMEOUT_S} s")


def type_into(driver: Any, label: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f'input[aria-label="{label}"]')
    field.clear()
    field.send_keys(text)


def test_a_user_logs_in_through_the_provider_and_their_halt_is_audited(
        oidc_dashboard: OidcDashboard, browser: Any, tmp_path: Path) -> None:
    browser.get(f"{oidc_dashboard.url}/controls")
    wait_for_text(browser, "Log in to use the controls")

    click_button(browser, "Log in")  # to the provider, which consents, and back
    wait_for_text(browser, f"Logged in as {EMAIL}")
    assert oidc_dashboard.provider.tokens_issued == 1
    assert oidc_dashboard.provider.pkce_logins == 1  # Streamlit used PKCE: it was offered

    browser.get(f"{oidc_dashboard.url}/controls")  # a reload keeps the login (a cookie)
    wait_for_text(browser, f"Logged in as {EMAIL}", "Type the target's name to confirm")
    from selenium.webdriver.common.by import By

    for option in browser.find_elements(By.CSS_SELECTOR, 'label[data-baseweb="radio"]'):
        if option.text.strip() == "Halt":
            option.click()
    type_into(browser, "Reason (kept in the audit trail)", "checking the OIDC login")
    type_into(browser, "Type the target's name to confirm", "ALL")
    click_button(browser, "Apply")
    wait_for_text(browser, "the fleet is now HALTED: checking the OIDC login")
    screenshot(browser, tmp_path, "dashboard-oidc-controls")

    database = migrated_database(oidc_dashboard.database_url)
    try:
        with database.engine.connect() as conn:
            actors = conn.execute(select(events.c.actor).where(
                events.c.message.contains("checking the OIDC login"))).scalars().all()
    finally:
        database.dispose()
    assert actors and set(actors) == {f"dashboard:{EMAIL}"}


def test_a_provider_that_refuses_the_dashboard_leaves_nobody_logged_in(
        tmp_path: Path, browser: Any) -> None:
    with serving_with_oidc(tmp_path, client_secret="not-the-registered-secret") as served:
        browser.get(f"{served.url}/controls")
        wait_for_text(browser, "Log in to use the controls")

        click_button(browser, "Log in")  # the token exchange fails: invalid_client
        wait_for_text(browser, "Fleet overview")  # Streamlit sends the user home
        browser.get(f"{served.url}/controls")
        body = wait_for_text(browser, "Log in to use the controls")

    assert "Logged in as" not in body
    assert served.provider.token_refusals == ["invalid_client"]  # it got that far, no further
    assert served.provider.tokens_issued == 0
