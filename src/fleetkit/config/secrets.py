"""Reading a secret a config entry points at: an environment variable or a secret file.

The value itself is never in fleet.yaml, and no error text ever shows it.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetkit.core.errors import ConfigError


def read_secret(what: str, env: str | None, file: str | None, base: Path | None = None) -> str:
    """The secret from $`env` or the file `file` (relative to `base`); a ConfigError naming
    the fix when it is missing or empty."""
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{what} comes from ${env}, which is not set: export {env}=... "
                              "(never put it in the YAML)")
        return value
    if file:
        path = Path(file).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read the secret file {path}: "
                              f"{exc.strerror}") from None
        if not value:
            raise ConfigError(f"{what}: the secret file {path} is empty")
        return value
    raise ConfigError(f"{what}: name an environment variable (*_env) or a secret file (*_file)")
