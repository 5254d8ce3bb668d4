"""The production side's model files: each activated version's directory under
`<models_dir>/versions/<timeframe>/<version id>/`, and a copy of the active one at
`<models_dir>/<timeframe>/`, where `fleet ml evaluate` and the rl_policy strategy read it.
The newest `models.keep_local` version directories per timeframe are kept, and the active
one always."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from fleetkit.ml.model_swap import install

VERSIONS_FOLDER = "versions"  # not a timeframe's name: rl_policy's loader ignores it


def version_dir(models_dir: Path, timeframe: str, version_id: int) -> Path:
    return models_dir / VERSIONS_FOLDER / timeframe / str(version_id)


def keep_version(source: Path, names: Iterable[str], target: Path) -> None:
    """Copy `names` of `source` to `target`, which appears whole (or is already there)."""
    if target.is_dir():
        return  # a resumed run: the copy was complete once it was renamed into place
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in names:
        shutil.copy2(source / name, partial / name)
    partial.rename(target)


def make_current(models_dir: Path, timeframe: str, version: Path) -> None:
    """Put a copy of `version` at `<models_dir>/<timeframe>/` in one swap."""
    final = models_dir / timeframe
    fresh = models_dir / f".{timeframe}.activating-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(version, fresh)
    install(fresh, final)


def prune(models_dir: Path, timeframe: str, keep: int, active: int) -> list[int]:
    """Remove version directories beyond the newest `keep` (never the active one)."""
    folder = models_dir / VERSIONS_FOLDER / timeframe
    if not folder.is_dir():
        return []
    ids = sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True)
    removed = [i for i in ids[keep:] if i != active]
    for version in removed:
        shutil.rmtree(folder / str(version), ignore_errors=True)
    return removed
