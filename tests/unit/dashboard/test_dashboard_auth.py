"""Dashboard authentication: scrypt hashes, the users file, the lockout, and the rule that
only an authenticated dashboard listens beyond loopback."""

from __future__ import annotations

import pytest

from fleetkit.config.dashboard import DashboardAuth
from fleetkit.core.errors import ConfigError
from fleetkit.dashboard.auth import (
    LoginGuard,
    hash_password,
    load_users,
    parse_users,
    require_safe_bind,
    verify_password,
)

PASSWORD = "correct horse battery"


def test_a_hash_verifies_its_password_and_nothing_else() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("scrypt$16384$8$1$")
    assert PASSWORD not in hashed
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "!", hashed)
    assert hash_password(PASSWORD) != hashed  # salted


@pytest.mark.parametrize("broken", ["", "plain", "scrypt$x$8$1$AA==$AA==", "md5$1$2$3$4$5",
                                    "scrypt$16384$8$1$not-base64!$AA=="])
def test_a_malformed_hash_verifies_nothing_and_never_raises(broken: str) -> None:
    assert not verify_password(PASSWORD, broken)


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 12"):
        hash_password("short")


def test_the_users_file_is_name_hash_lines_with_comments() -> None:
    hashed = hash_password(PASSWORD)
    users = parse_users(f"# ops\nalice:{hashed}\n\nbob:{hashed}\n", "users")
    assert set(users) == {"alice", "bob"}
    with pytest.raises(ConfigError, match="line 1: expected NAME:scrypt"):
        parse_users("alice:hunter2", "users")
    with pytest.raises(ConfigError, match="holds no users"):
        parse_users("# nobody\n", "users")


def test_users_come_from_the_environment_and_never_from_yaml(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = hash_password(PASSWORD)
    monkeypatch.setenv("DASH_USERS", f"alice:{hashed};bob:{hashed}")
    assert set(load_users(DashboardAuth(users_env="DASH_USERS"), None)) == {"alice", "bob"}
    monkeypatch.delenv("DASH_USERS")
    with pytest.raises(ConfigError, match=r"\$DASH_USERS, which is not set"):
        load_users(DashboardAuth(users_env="DASH_USERS"), None)
    assert load_users(DashboardAuth(), None) == {}


def test_loopback_needs_no_auth_but_any_other_address_does() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        require_safe_bind(host, DashboardAuth())
    for host in ("0.0.0.0", "192.168.1.5", "::", "dashboard.example"):  # noqa: S104
        with pytest.raises(ConfigError, match="refusing to listen"):
            require_safe_bind(host, DashboardAuth())
    require_safe_bind("0.0.0.0", DashboardAuth(users_env="X"))  # noqa: S104
    require_safe_bind("0.0.0.0", DashboardAuth(oidc=True))  # noqa: S104


def test_repeated_wrong_passwords_lock_every_login_for_a_while() -> None:
    users = {"alice": hash_password(PASSWORD)}
    now = [1000.0]
    guard = LoginGuard(max_failures=3, lockout_s=60, clock=lambda: now[0])
    assert guard.attempt(users, "alice", PASSWORD)
    assert not guard.attempt(users, "mallory", PASSWORD)  # unknown names count too
    assert not guard.attempt(users, "alice", "nope nope nope")
    assert not guard.attempt(users, "alice", "nope nope nope")
    assert guard.locked_for_s() == 60
    assert not guard.attempt(users, "alice", PASSWORD)  # locked: even the right one
    now[0] += 61
    assert guard.attempt(users, "alice", PASSWORD)
