"""Artifact stores: where model versions' files live, addressed by URL (docs/registry.md).

`ArtifactStore` is the port (`put_dir`, `get_dir`, `verify`, `delete`, `list_keys`);
`open_store(url, ...)` builds the one implementation, over fsspec, for `file://` (or a plain
path), `sftp://` and `s3://`. This package imports nothing heavy: fsspec and its backends
(the `pipeline` extra) are imported by `open_store`, so a bot never loads them.
"""

from __future__ import annotations

from fleetkit.artifacts.port import (
    COMPLETE,
    SCHEMES,
    ArtifactError,
    ArtifactMismatchError,
    ArtifactStore,
    ArtifactStoreUnavailableError,
    S3Options,
    SftpOptions,
    StoredFile,
    UnsupportedStoreError,
    open_store,
)
from fleetkit.core.hashing import sha256_file

__all__ = ["COMPLETE", "SCHEMES", "ArtifactError", "ArtifactMismatchError", "ArtifactStore",
           "ArtifactStoreUnavailableError", "S3Options", "SftpOptions", "StoredFile",
           "UnsupportedStoreError", "open_store", "sha256_file"]
