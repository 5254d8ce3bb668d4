"""Writing generated deployment files safely: all or nothing, never over files we did not
write (unless forced), never over files the operator filled in, and byte-identical output
for the same config.

A manifest (`.fleet-deploy.json`) records what the last run wrote and its SHA-256, so the
next run can tell its own untouched files (free to overwrite or remove) from everything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleetkit.core.errors import UserError

MANIFEST = ".fleet-deploy.json"


class OutputDirError(UserError):
    """The output directory holds files we must not overwrite, or cannot be written."""


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    path: str  # relative to the output directory, '/'-separated
    content: str | bytes  # bytes: copied as they are (the user's plugin files)
    mode: int = 0o644
    # The operator fills it in (credentials): once it differs from what we wrote, it is
    # theirs and is kept as it is, even with --force.
    operator_edits: bool = False

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.path).parts
        if not parts or self.path.startswith("/") or ".." in parts or self.path == MANIFEST:
            raise ValueError(f"not a relative output path: {self.path!r}")


@dataclass(frozen=True, slots=True)
class Bundle:
    generator: str  # e.g. "fleet deploy compose"
    files: tuple[GeneratedFile, ...]
    # Files the operator adds next to ours (a password file): present is not foreign. One
    # ending in "/" is a directory whose every file is the operator's (password files come
    # and go with the bots, and one of a bot removed from the config is still theirs).
    operator_files: tuple[str, ...] = ()
    # What the operator should know about this deployment beyond its files (learning bots:
    # a bigger image, a first start that trains), for the command's summary.
    notes: tuple[str, ...] = ()

    def is_operators(self, path: str) -> bool:
        return any(path == entry or (entry.endswith("/") and path.startswith(entry))
                   for entry in self.operator_files)


@dataclass(frozen=True, slots=True)
class WriteReport:
    written: tuple[str, ...]
    kept: tuple[str, ...]  # filled in by the operator: left as they were
    removed: tuple[str, ...]  # ours from an earlier run that this config no longer needs


def digest(content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def write_bundle(out: Path, bundle: Bundle, *, force: bool = False) -> WriteReport:
    """Write every file of `bundle` under `out`, or nothing at all when refused."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{out} exists and is not a directory: choose another --out")
    previous = _read_manifest(out)
    existing = _existing_files(out)
    ours = {p for p in existing if p in previous and previous[p] == _file_digest(out / p)}
    wanted = {f.path: f for f in bundle.files}
    kept = sorted(p for p in existing - ours if p in wanted and wanted[p].operator_edits)
    foreign = sorted(p for p in existing - ours - set(kept) if not bundle.is_operators(p))
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        raise OutputDirError(f"{out} holds files fleet deploy did not write (or that were "
                             f"edited since): {shown} — choose an empty --out, or pass --force "
                             "to overwrite the generated files (others are left alone)")
    _check_paths(out, wanted)
    removed = sorted(p for p in ours if p not in wanted)
    to_write = [f for f in bundle.files if f.path not in kept]
    try:
        for file in to_write:
            _write_atomically(out / file.path, file.content, file.mode)
        for path in removed:
            (out / path).unlink()
        manifest = {"generator": bundle.generator,
                    "files": {f.path: digest(f.content) for f in bundle.files}}
        _write_atomically(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                          0o644)
    except OSError as exc:
        raise OutputDirError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return WriteReport(tuple(f.path for f in to_write), tuple(kept), tuple(removed))


def _read_manifest(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # no manifest, or not ours: every file counts as foreign
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def _existing_files(out: Path) -> set[str]:
    """Every entry under `out` as a relative path; a symlink counts as a file (never followed)."""
    found: set[str] = set()
    if not out.is_dir():
        return found
    for root, dirs, files in os.walk(out, followlinks=False):
        base = Path(root)
        links = [d for d in dirs if (base / d).is_symlink()]
        for name in [*files, *links]:
            found.add((base / name).relative_to(out).as_posix())
    found.discard(MANIFEST)
    return found


def _file_digest(path: Path) -> str | None:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return digest(path.read_bytes())
    except OSError:
        return None


def _check_paths(out: Path, wanted: dict[str, GeneratedFile]) -> None:
    """A directory where a file goes (or a file where a directory goes) is never forced."""
    for path in wanted:
        target = out / path
        blocked = [p for p in _parents(out, target) if p.exists() and not p.is_dir()]
        if target.is_dir() and not target.is_symlink():
            blocked.append(target)
        if blocked:
            raise OutputDirError(f"cannot write {target}: {blocked[0]} is in the way — move it, "
                                 "or choose another --out")


def _parents(out: Path, target: Path) -> Iterable[Path]:
    parent = target.parent
    while parent != out and out in parent.parents:
        yield parent
        parent = parent.parent


def _write_atomically(path: Path, content: str | bytes, mode: int) -> None:
    # Write beside the target and rename over it: a crash leaves the old file or the new
    # one, and a symlink in the target's place is replaced, never followed.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if isinstance(content, bytes):
            with os.fdopen(fd, "wb") as binary:
                binary.write(content)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
