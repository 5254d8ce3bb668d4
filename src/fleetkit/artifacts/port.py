"""The artifact store port: a model version's files under one key, written so that a
half-written version is recognisable and read back only once every sha256 checks.

A version is the directory `<store>/<key>/` holding its files and, written last, `COMPLETE`
(JSON: each file's sha256 and size). A key without `COMPLETE` is an upload that did not
finish; `list_keys` does not show it and `verify` reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from fleetkit.core.errors import ConfigError, FleetError

COMPLETE = "COMPLETE"
SCHEMES = ("file", "sftp", "s3")
# Keys and file names are path segments on every backend: no traversal, no odd characters
# an object store or a shell would treat specially.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class ArtifactError(FleetError):
    """Something about stored artifacts the caller must act on (the message says what)."""


class ArtifactMismatchError(ArtifactError):
    """A stored file is missing or its bytes are not the ones the registry expects."""


class ArtifactStoreUnavailableError(ArtifactError):
    """The store could not be reached or written (network, credentials, disk): retry later
    or fix the setting; nothing was changed locally."""


class UnsupportedStoreError(ConfigError):
    """A store URL whose scheme fleetkit cannot use."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    name: str
    size: int
    sha256: str
    url: str


@dataclass(frozen=True, slots=True)
class S3Options:
    """S3-compatible storage. Credentials: these (read from a secret file by the config),
    else botocore's own chain (AWS_ACCESS_KEY_ID ..., AWS_ENDPOINT_URL_S3, ~/.aws)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    connect_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SftpOptions:
    """SFTP through paramiko with the user's own keys and agent; the host must be in
    `known_hosts` (never trusted on first use)."""

    known_hosts: str | None = None  # default ~/.ssh/known_hosts
    key_file: str | None = None  # default: the agent and ~/.ssh/id_*
    connect_timeout_s: float = 10.0


class ArtifactStore(Protocol):
    """Where model versions' files live (docs/registry.md, "The artifact store")."""

    url: str

    def put_dir(self, local_dir: Path, key: str,
                names: list[str] | None = None) -> list[StoredFile]:
        """Store `names` (default: every regular, non-hidden file directly in `local_dir`)
        under `key`, each written whole before it is visible, then `COMPLETE`."""
        ...

    def get_dir(self, key: str, local_dir: Path, expected: dict[str, str]) -> None:
        """Download `expected` (name -> sha256) into a temporary sibling of `local_dir`,
        verify every file, then rename it into place; ArtifactMismatchError (nothing left
        behind) when a file is missing or differs."""
        ...

    def verify(self, key: str, expected: dict[str, str]) -> list[str]:
        """Re-hash what is stored under `key`: one line per problem, [] when all agree."""
        ...

    def delete(self, key: str) -> None:
        """Remove the version's files (`COMPLETE` first); a missing key is not an error."""
        ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """The complete versions' keys under `prefix`, sorted."""
        ...


def check_segment(what: str, value: str) -> str:
    if not _SEGMENT.match(value) or value in (".", ".."):
        raise ConfigError(f"{what} {value!r} is not usable in an artifact store: letters, "
                          "digits and . _ + - only, starting with a letter or digit")
    return value


def check_key(key: str) -> str:
    parts = key.split("/")
    for part in parts:
        check_segment("the key part", part)
    return key


def scheme_of(url: str) -> str:
    """The URL's scheme; a plain path (no `://`) is a local directory."""
    if "://" not in url:
        return "file"
    return urlsplit(url).scheme.lower()


def open_store(url: str, *, s3: S3Options | None = None,
               sftp: SftpOptions | None = None) -> ArtifactStore:
    """The artifact store at `url` (`file:///dir` or a path, `sftp://user@host:port/dir`,
    `s3://bucket/prefix`). UnsupportedStoreError for any other scheme,
    ArtifactStoreUnavailableError when it cannot be reached."""
    scheme = scheme_of(url)
    if scheme not in SCHEMES:
        raise UnsupportedStoreError(
            f"artifact store URL {url!r}: the scheme {scheme!r} is not supported; use "
            "file:///path (or a plain path), sftp://user@host:port/path or s3://bucket/prefix")
    try:
        from fleetkit.artifacts import fsspec_store
    except ImportError as exc:  # fsspec, s3fs or paramiko: the pipeline extra
        raise ConfigError(f"artifact store {url!r} needs the pipeline extra ({exc.name} is "
                          "missing): pip install -e '.[pipeline]'") from None
    return fsspec_store.open_fsspec_store(url, scheme, s3 or S3Options(), sftp or SftpOptions())
