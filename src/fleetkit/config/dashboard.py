"""The `dashboard:` section of fleet.yaml: where the Streamlit dashboard listens, how it
authenticates, and how fresh its numbers are. Passwords never live here: the users' hashes
come from an environment variable or a secret file (`fleet dashboard passwd` makes them)."""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from fleetkit.config.strict import Strict

DEFAULT_USERS_ENV = "FLEET_DASHBOARD_USERS"


class DashboardAuth(Strict):
    """Who may log in. With neither users nor OIDC, the dashboard is read-only and binds to
    loopback only."""

    users_env: str | None = Field(default=None, description="environment variable holding "
                                  "`name:hash` lines (from `fleet dashboard passwd NAME`)")
    users_file: str | None = Field(default=None, description="secret file of `name:hash` "
                                   "lines, one user each")
    oidc: bool = Field(default=False, description="log in with OpenID Connect through "
                       "Streamlit's st.login: the provider goes in a secrets.toml [auth] "
                       "section (oidc_secrets_file, else .streamlit/secrets.toml where "
                       "`fleet dashboard` runs or in your home)")
    oidc_secrets_file: str | None = Field(default=None, description="the secrets.toml with "
                                          "the [auth] section (relative to this file's "
                                          "directory); it holds the client secret")
    oidc_provider: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+$",
                                      description="log in with the [auth.NAME] provider "
                                      "(letters, digits, '-': Streamlit's rule); default: the "
                                      "client in [auth]")
    max_failures: int = Field(default=5, ge=1, le=100, description="wrong passwords in a "
                              "row before logins pause for lockout_s")
    lockout_s: float = Field(default=300.0, ge=1, le=86_400)

    @model_validator(mode="after")
    def _one_users_source(self) -> DashboardAuth:
        if self.users_env and self.users_file:
            raise ValueError("give users_env or users_file, not both")
        if (self.oidc_secrets_file or self.oidc_provider) and not self.oidc:
            raise ValueError("oidc_secrets_file and oidc_provider need oidc: true")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.users_env or self.users_file or self.oidc)


class DashboardSettings(Strict):
    host: str = Field(default="127.0.0.1", description="address to bind: anything but "
                      "loopback needs auth")
    port: int = Field(default=8501, ge=1, le=65535)
    cache_ttl_s: float = Field(default=5.0, ge=0, le=3600, description="how long a query's "
                               "answer is reused (the pages refresh every refresh_s)")
    refresh_s: float = Field(default=15.0, ge=2, le=3600)
    auth: DashboardAuth = Field(default_factory=DashboardAuth)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a listener on this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
