"""API credentials: read from the environment or secret files, held so they cannot leak.

A `Secret` prints as `***` in reprs, logs, tracebacks (rich's locals included) and JSON
dumps; only `reveal()` hands out the value, and only the ccxt client is given it.
`redact()` scrubs a text (an exchange's error message, say) of every secret value it holds.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from fleetkit.core.errors import ConfigError

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Pickling (multiprocessing) keeps the value; printing never shows it.
        return (Secret, (self._value,))


@dataclass(frozen=True, slots=True)
class CredentialSources:
    """Where each credential lives: an environment variable's name or a file's path."""

    api_key_env: str | None = None
    secret_env: str | None = None
    password_env: str | None = None
    api_key_file: str | None = None
    secret_file: str | None = None
    password_file: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.api_key_env or self.api_key_file)


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: Secret
    secret: Secret
    password: Secret | None = None

    def values(self) -> list[str]:
        found = [self.api_key.reveal(), self.secret.reveal()]
        if self.password is not None:
            found.append(self.password.reveal())
        return [v for v in found if v]


def load_credentials(sources: CredentialSources, venue: str) -> Credentials | None:
    """The credentials `sources` names, or None when none are configured (public data only).
    A named variable or file that is missing or empty is a ConfigError naming the fix."""
    if not sources.configured:
        return None
    api_key = _read("api key", sources.api_key_env, sources.api_key_file, venue)
    secret = _read("secret", sources.secret_env, sources.secret_file, venue)
    if api_key is None or secret is None:
        raise ConfigError(f"exchange {venue}: credentials need both an api key and a secret "
                          "(api_key_env + secret_env, or api_key_file + secret_file)")
    password = _read("password", sources.password_env, sources.password_file, venue)
    return Credentials(api_key, secret, password)


def _read(what: str, env: str | None, file: str | None, venue: str) -> Secret | None:
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"exchange {venue}: the {what} comes from ${env}, which is not "
                              f"set: export {env}=... (never put it in the YAML)")
        return Secret(value)
    if file:
        path = Path(file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"exchange {venue}: cannot read the {what} file {path}: "
                              f"{exc.strerror}") from None
        if not value:
            raise ConfigError(f"exchange {venue}: the {what} file {path} is empty")
        return Secret(value)
    return None


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if len(value) >= 4:  # a 1-3 character "secret" would mask half the message
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs every registered secret from records of the loggers it is attached to: ccxt
    logs request headers (the API key among them) at DEBUG, and a user may turn DEBUG on."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, values: list[str]) -> None:
        with self._lock:
            self._secrets.update(v for v in values if len(v) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if not secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


REDACTOR = RedactingFilter()
# ccxt's own loggers and the HTTP stack underneath it.
_GUARDED = ("ccxt", "ccxt.base.exchange", "urllib3.connectionpool", "requests")


def guard_logs(credentials: Credentials) -> None:
    """Register `credentials` for redaction in every log record ccxt and its HTTP stack
    write (attached once per logger; safe to call for every venue)."""
    REDACTOR.register(credentials.values())
    for name in _GUARDED:
        target = logging.getLogger(name)
        if REDACTOR not in target.filters:
            target.addFilter(REDACTOR)
