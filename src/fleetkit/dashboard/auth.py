"""Who may use the dashboard: scrypt password hashes, the users file, failed-login lockout,
and the rule that only an authenticated dashboard may listen beyond loopback.

A hash looks like `scrypt$16384$8$1$<salt b64>$<key b64>`; `fleet dashboard passwd NAME`
prints a `NAME:hash` line for the users file (or the environment variable) — the password
itself is never stored anywhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleetkit.config.dashboard import DashboardAuth, is_loopback
from fleetkit.config.secrets import read_secret
from fleetkit.core.errors import ConfigError

SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1
_KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} "
                          "characters (a passphrase of a few words is best)")
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P,
                         dklen=_KEY_BYTES)
    return "$".join((SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(key)))


def verify_password(password: str, hashed: str) -> bool:
    """True when `password` matches `hashed`; False for a wrong password or a malformed
    hash (never raises, compares in constant time)."""
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                             dklen=len(expected), maxmem=256 * 1024 * 1024)
    except (ValueError, OverflowError):
        return False
    return hmac.compare_digest(key, expected)


def parse_users(text: str, where: str) -> dict[str, str]:
    """`name:hash` lines (blank lines and # comments skipped) as {name: hash}."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not name.strip() or not hashed.strip().startswith(SCHEME + "$"):
            raise ConfigError(f"{where}, line {number}: expected NAME:scrypt$..., as printed "
                              "by `fleet dashboard passwd NAME`")
        users[name.strip()] = hashed.strip()
    if not users:
        raise ConfigError(f"{where} holds no users: add a line from "
                          "`fleet dashboard passwd NAME`")
    return users


def load_users(auth: DashboardAuth, base: Path | None) -> dict[str, str]:
    """The configured users, or {} when password login is not configured."""
    if not (auth.users_env or auth.users_file):
        return {}
    text = read_secret("dashboard.auth users", auth.users_env, auth.users_file, base)
    # An environment variable can't hold newlines in every tool: allow ';' between users.
    where = f"${auth.users_env}" if auth.users_env else str(auth.users_file)
    return parse_users(text.replace(";", "\n"), where)


def require_safe_bind(host: str, auth: DashboardAuth) -> None:
    """Only an authenticated dashboard listens beyond loopback: it shows positions and P&L
    and, once logged in, can halt the fleet."""
    if not is_loopback(host) and not auth.configured:
        raise ConfigError(f"refusing to listen on {host}: the dashboard has no "
                          "authentication. Configure dashboard.auth (users_env or users_file "
                          "from `fleet dashboard passwd NAME`, or oidc) or keep --host "
                          "127.0.0.1 behind an authenticating proxy")


@dataclass
class LoginGuard:
    """Counts wrong passwords across every session of this process: after `max_failures`
    in a row, every login is refused for `lockout_s` (a guesser gets a handful of tries
    per lockout, whoever's browser they come from)."""

    max_failures: int
    lockout_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: int = 0
    _locked_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def locked_for_s(self) -> float:
        with self._lock:
            return max(0.0, self._locked_until - self.clock())

    def attempt(self, users: dict[str, str], name: str, password: str) -> bool:
        if self.locked_for_s() > 0:
            return False
        # Hash even for an unknown name, so timing does not tell which names exist.
        hashed = users.get(name) or _dummy_hash()
        ok = verify_password(password, hashed) and name in users
        with self._lock:
            if ok:
                self._failures = 0
            else:
                self._failures += 1
                if self._failures >= self.max_failures:
                    self._locked_until = self.clock() + self.lockout_s
                    self._failures = 0
        return ok


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@functools.cache
def _dummy_hash() -> str:
    """Made on the first login, not at import: `fleet dashboard` starts without a scrypt."""
    return hash_password("not-a-real-password-" + secrets.token_hex(8))
