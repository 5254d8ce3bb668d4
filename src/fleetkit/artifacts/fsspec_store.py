"""The artifact store over fsspec: a local directory, SFTP (paramiko) or S3 (s3fs).

Imported only by `artifacts.open_store` (the `pipeline` extra). Every write lands whole or
not at all where the backend allows it: on a filesystem (local, SFTP) each file is written
under a temporary name and renamed into place; on S3 a PUT is atomic per object. In both,
`COMPLETE` is written last and removed first, so an upload killed halfway is never taken
for a version.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec

from fleetkit.artifacts.port import (
    COMPLETE,
    ArtifactMismatchError,
    ArtifactStore,
    ArtifactStoreUnavailableError,
    S3Options,
    SftpOptions,
    StoredFile,
    check_key,
    check_segment,
)
from fleetkit.core.errors import ConfigError
from fleetkit.core.hashing import sha256_file

_BLOCK = 1 << 20


class FsspecArtifactStore:
    """An ArtifactStore on one fsspec filesystem, rooted at `root` (a path in its terms)."""

    def __init__(self, url: str, fs: Any, root: str, *, renames: bool,
                 backend_errors: tuple[type[BaseException], ...] = ()) -> None:
        self.url = url.rstrip("/")
        self._fs = fs
        self._root = root.rstrip("/")
        # S3 has no rename (a copy + delete would not be atomic); its PUTs already are.
        self._renames = renames
        self._errors: tuple[type[BaseException], ...] = (OSError, *backend_errors)

    # --- the port ---------------------------------------------------------------------

    def put_dir(self, local_dir: Path, key: str,
                names: list[str] | None = None) -> list[StoredFile]:
        check_key(key)
        chosen = sorted(names) if names is not None else sorted(
            p.name for p in local_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        stored = []
        for name in chosen:
            check_segment("the file name", name)
            if name == COMPLETE:
                raise ConfigError(f"{local_dir / name}: {COMPLETE} is the store's own marker; "
                                  "rename the file")
            path = local_dir / name
            if not path.is_file():
                raise ConfigError(f"{path} is missing: nothing was stored")
            stored.append(StoredFile(name, path.stat().st_size, sha256_file(path),
                                     f"{self.url}/{key}/{name}"))
        try:
            self._put(local_dir, key, stored)
        except FileNotFoundError as exc:  # S3: no such bucket; SFTP: no such directory
            raise ArtifactStoreUnavailableError(
                f"artifact store {self.url} cannot store {key}: {_describe(exc)} (create the "
                "bucket or directory first)") from None
        return stored

    def _put(self, local_dir: Path, key: str, stored: list[StoredFile]) -> None:
        folder = self._path(key)
        with self._reach(f"storing {key}"):
            if self._renames:
                self._fs.makedirs(folder, exist_ok=True)
            # A re-upload under the same key is incomplete until its new marker is written.
            if self._fs.exists(f"{folder}/{COMPLETE}"):
                self._fs.rm_file(f"{folder}/{COMPLETE}")
            for file in stored:
                self._write(local_dir / file.name, f"{folder}/{file.name}")
            marker = {"files": {f.name: {"sha256": f.sha256, "size": f.size} for f in stored}}
            self._write_bytes(json.dumps(marker, indent=1, sort_keys=True).encode(),
                              f"{folder}/{COMPLETE}")

    def get_dir(self, key: str, local_dir: Path, expected: dict[str, str]) -> None:
        check_key(key)
        local_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = local_dir.parent / f".{local_dir.name}.download-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            for name, sha in sorted(expected.items()):
                check_segment("the file name", name)
                target = staging / name
                try:
                    with self._reach(f"reading {key}/{name}"):
                        self._fs.get_file(f"{self._path(key)}/{name}", str(target))
                except FileNotFoundError:
                    raise ArtifactMismatchError(
                        f"{self.url}/{key}/{name} is missing from the store (expected sha256 "
                        f"{sha}); the version cannot be used") from None
                found = sha256_file(target)
                if found != sha:
                    raise ArtifactMismatchError(
                        f"{self.url}/{key}/{name} arrived with sha256 {found}, expected {sha}: "
                        "corrupted in the store or in transit; nothing was put in place")
            _swap_into_place(staging, local_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def verify(self, key: str, expected: dict[str, str]) -> list[str]:
        check_key(key)
        folder = self._path(key)
        problems = []
        with self._reach(f"verifying {key}"):
            if not self._fs.exists(f"{folder}/{COMPLETE}"):
                problems.append(f"{self.url}/{key}: no {COMPLETE} marker (the upload never "
                                "finished or the version was deleted)")
            for name, sha in sorted(expected.items()):
                try:
                    found = self._hash(f"{folder}/{name}")
                except FileNotFoundError:
                    problems.append(f"{self.url}/{key}/{name} is missing (expected sha256 "
                                    f"{sha})")
                    continue
                if found != sha:
                    problems.append(f"{self.url}/{key}/{name} has sha256 {found}, the "
                                    f"registry says {sha}")
        return problems

    def delete(self, key: str) -> None:
        check_key(key)
        folder = self._path(key)
        with self._reach(f"deleting {key}"):
            if self._fs.exists(f"{folder}/{COMPLETE}"):
                self._fs.rm_file(f"{folder}/{COMPLETE}")  # no longer a version, even if
            for path in self._fs.find(folder):          # the rest fails halfway
                self._fs.rm_file(path)
            if self._renames:
                with suppress(FileNotFoundError):
                    self._fs.rm(folder, recursive=True)

    def list_keys(self, prefix: str = "") -> list[str]:
        if prefix:
            check_key(prefix.rstrip("/"))
        base = self._path(prefix.rstrip("/")) if prefix else self._root
        with self._reach("listing"):
            try:
                found = self._fs.find(base)
            except FileNotFoundError:
                return []
        start = len(self._root.lstrip("/")) + 1
        keys = {p.lstrip("/")[start:].rsplit("/", 1)[0] for p in found
                if p.rsplit("/", 1)[-1] == COMPLETE}
        return sorted(k for k in keys if k and k != COMPLETE)

    # --- the mechanics ----------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _write(self, source: Path, target: str) -> None:
        if not self._renames:
            self._fs.put_file(str(source), target)
            return
        temporary = _temporary_name(target)
        try:
            self._fs.put_file(str(source), temporary)
            self._fs.mv(temporary, target)
        except BaseException:
            with suppress(Exception):
                self._fs.rm_file(temporary)
            raise

    def _write_bytes(self, data: bytes, target: str) -> None:
        if not self._renames:
            self._fs.pipe_file(target, data)
            return
        temporary = _temporary_name(target)
        self._fs.pipe_file(temporary, data)
        self._fs.mv(temporary, target)

    def _hash(self, path: str) -> str:
        import hashlib

        digest = hashlib.sha256()
        with self._fs.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
        return digest.hexdigest()

    @contextmanager
    def _reach(self, doing: str) -> Iterator[None]:
        """Network, credential and disk failures as one error the pipeline can retry on;
        a missing file stays FileNotFoundError for the caller to judge."""
        try:
            yield
        except FileNotFoundError:
            raise
        except self._errors as exc:
            raise ArtifactStoreUnavailableError(
                f"artifact store {self.url} failed while {doing}: {_describe(exc)} (check "
                "that it is reachable and writable; nothing was activated)") from None


def _temporary_name(target: str) -> str:
    folder, name = target.rsplit("/", 1)
    return f"{folder}/.{name}.part-{uuid.uuid4().hex[:8]}"


def _swap_into_place(staging: Path, local_dir: Path) -> None:
    """Rename the verified download to `local_dir`; an existing one is moved aside first
    and removed only once the new one is in place."""
    if not local_dir.exists():
        staging.rename(local_dir)
        return
    aside = local_dir.parent / f".{local_dir.name}.old-{uuid.uuid4().hex[:8]}"
    local_dir.rename(aside)
    try:
        staging.rename(local_dir)
    except BaseException:
        aside.rename(local_dir)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def open_fsspec_store(url: str, scheme: str, s3: S3Options,
                      sftp: SftpOptions) -> ArtifactStore:
    if scheme == "file":
        return _local(url)
    if scheme == "s3":
        return _s3(url, s3)
    return _sftp(url, sftp)


def _local(url: str) -> FsspecArtifactStore:
    if "://" in url:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"artifact store URL {url!r}: a file URL names no host (use "
                              "file:///absolute/path or a plain path)")
        path = Path(parts.path)
    else:
        path = Path(url).expanduser().absolute()
    fs = fsspec.filesystem("file", auto_mkdir=True, skip_instance_cache=True)
    return FsspecArtifactStore(f"file://{path}", fs, str(path), renames=True)


def _s3(url: str, options: S3Options) -> FsspecArtifactStore:
    try:
        import s3fs
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        raise ConfigError(f"artifact store {url!r} needs the pipeline extra ({exc.name} is "
                          "missing): pip install -e '.[pipeline]'") from None
    parts = urlsplit(url)
    if not parts.netloc:
        raise ConfigError(f"artifact store URL {url!r} names no bucket (s3://bucket/prefix)")
    root = f"{parts.netloc}{parts.path}".rstrip("/")
    fs = s3fs.S3FileSystem(
        key=options.access_key_id, secret=options.secret_access_key,
        endpoint_url=options.endpoint_url,
        client_kwargs={"region_name": options.region} if options.region else {},
        # Fail fast on an unreachable endpoint: the pipeline has retries of its own.
        config_kwargs={"connect_timeout": options.connect_timeout_s, "read_timeout": 60,
                       "retries": {"max_attempts": 2}},
        skip_instance_cache=True, use_listings_cache=False)
    return FsspecArtifactStore(url, fs, root, renames=False,
                               backend_errors=(BotoCoreError, ClientError))


def _sftp(url: str, options: SftpOptions) -> FsspecArtifactStore:
    try:
        import paramiko
    except ImportError as exc:
        raise ConfigError(f"artifact store {url!r} needs the pipeline extra ({exc.name} is "
                          "missing): pip install -e '.[pipeline]'") from None
    from fleetkit.artifacts.ssh import connect_kwargs

    parts = urlsplit(url)
    if not parts.hostname or not parts.path or parts.path == "/":
        raise ConfigError(f"artifact store URL {url!r}: name the host and a directory "
                          "(sftp://user@host:port/path)")
    host, kwargs = connect_kwargs(parts.hostname, parts.username, parts.port, options)
    try:
        fs = fsspec.filesystem("sftp", host=host, skip_instance_cache=True, **kwargs)
    except (OSError, paramiko.SSHException) as exc:
        raise ArtifactStoreUnavailableError(
            f"artifact store {url} cannot be reached: {_describe(exc)} (check the host, "
            "its key in known_hosts and your SSH key)") from None
    return FsspecArtifactStore(url, fs, parts.path, renames=True,
                               backend_errors=(paramiko.SSHException,))
