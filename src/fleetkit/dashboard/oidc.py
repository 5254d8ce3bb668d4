"""Checks an OpenID Connect login before the dashboard starts: Streamlit's st.login reads its
provider from a secrets.toml [auth] section and, when something is missing, only says so
in its log when a user clicks "Log in". `fleet dashboard` calls `check_oidc_setup` first,
so a missing key is one line and exit 2 instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fleetkit.config.dashboard import DashboardAuth
from fleetkit.core.errors import ConfigError

CALLBACK_PATH = "/oauth2callback"
SHARED_KEYS = ("redirect_uri", "cookie_secret")
CLIENT_KEYS = ("client_id", "client_secret", "server_metadata_url")
# Streamlit signs the identity cookie with it: a short one can be guessed offline.
MIN_COOKIE_SECRET = 32


@dataclass(frozen=True, slots=True)
class OidcSetup:
    """Where the [auth] section was found, and the file to hand Streamlit (None: it finds
    the file itself in its default places)."""

    found_in: tuple[Path, ...]
    secrets_file: Path | None


def default_secrets_places(cwd: Path, home: Path) -> tuple[Path, Path]:
    """Streamlit's own search order: the home file first, the working directory's last
    (a later file's [auth] replaces an earlier one's as a whole)."""
    return home / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml"


def check_oidc_setup(auth: DashboardAuth, base: Path | None, *, cwd: Path,
                     home: Path) -> OidcSetup:
    if find_spec("authlib") is None:
        raise ConfigError("dashboard.auth.oidc needs Authlib: pip install -e '.[oidc]'")
    if auth.oidc_secrets_file:
        explicit = Path(auth.oidc_secrets_file).expanduser()
        if not explicit.is_absolute() and base is not None:
            explicit = base / explicit
        if explicit.suffix != ".toml":
            # Streamlit takes a *.toml file or a folder of Kubernetes-style secrets only.
            raise ConfigError(f"dashboard.auth.oidc_secrets_file must name a .toml file, not "
                              f"{explicit.name} (Streamlit reads nothing else)")
        if not explicit.is_file():
            raise ConfigError(f"dashboard.auth.oidc_secrets_file {explicit} does not exist: "
                              "create it with an [auth] section (docs/dashboard.md)")
        files: tuple[Path, ...] = (explicit,)
    else:
        files = tuple(p for p in default_secrets_places(cwd, home) if p.is_file())
    # Streamlit merges its files table by table: the last [auth] is the one it uses, whole.
    section: dict[str, Any] = {}
    where = "secrets.toml"
    for path in files:
        found = _auth_section(path)
        if found is not None:
            section, where = found, str(path)
    if not section:
        raise ConfigError(
            "dashboard.auth.oidc is on but no secrets.toml with an [auth] section was found "
            f"(looked in {_places(auth, cwd, home)}): add redirect_uri, cookie_secret, "
            "client_id, client_secret and server_metadata_url (docs/dashboard.md)")
    _check_section(section, auth.oidc_provider, where)
    return OidcSetup(files, files[0] if auth.oidc_secrets_file else None)


def _places(auth: DashboardAuth, cwd: Path, home: Path) -> str:
    if auth.oidc_secrets_file:
        return auth.oidc_secrets_file
    return " and ".join(str(p) for p in default_secrets_places(cwd, home))


def _auth_section(path: Path) -> dict[str, Any] | None:
    """The file's [auth] table, or None when it has none."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror} (the dashboard runs as a "
                          "user that must be able to read it)") from None
    section = document.get("auth")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: auth must be a table ([auth])")
    return section


def _check_section(section: dict[str, Any], provider: str | None, where: str) -> None:
    missing = [key for key in SHARED_KEYS if not section.get(key)]
    client = section
    if provider is not None:
        named = section.get(provider)
        if not isinstance(named, dict):
            raise ConfigError(f"dashboard.auth.oidc_provider is {provider!r} but {where} has "
                              f"no [auth.{provider}] section")
        client, prefix = named, f"{provider}."
    else:
        prefix = ""
    missing += [prefix + key for key in CLIENT_KEYS if not client.get(key)]
    if missing:
        raise ConfigError(f"{where} [auth] lacks {', '.join(missing)} "
                          "(docs/dashboard.md shows a complete section)")
    redirect = str(section["redirect_uri"])
    if not redirect.startswith(("http://", "https://")) or not redirect.endswith(CALLBACK_PATH):
        raise ConfigError(f"{where} [auth] redirect_uri must be the dashboard's address "
                          f"ending in {CALLBACK_PATH}, e.g. "
                          f"http://127.0.0.1:8501{CALLBACK_PATH}; it is {redirect!r}")
    if len(str(section["cookie_secret"])) < MIN_COOKIE_SECRET:
        raise ConfigError(f"{where} [auth] cookie_secret is shorter than {MIN_COOKIE_SECRET} "
                          "characters: generate one with "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
    metadata = str(client["server_metadata_url"])
    if not metadata.startswith(("http://", "https://")):
        raise ConfigError(f"{where} [auth] {prefix}server_metadata_url must be an http(s) URL "
                          "(the provider's /.well-known/openid-configuration)")
