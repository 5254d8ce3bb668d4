"""Putting a complete model directory in place of another in one step: what `fleet ml
train` does with a new model and the training pipeline with an activated version. Light on
purpose (no numpy, no torch): the pipeline imports it on the production box.

The swap is one rename where the platform can exchange two directories atomically (Linux
renameat2), otherwise two renames microseconds apart.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def install(new: Path, final: Path) -> None:
    """Put the complete directory `new` at `final`, the old one (if any) removed after."""
    if not final.exists():
        new.rename(final)
        return
    if _exchange(new, final):
        shutil.rmtree(new)  # now the old model
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False where
    the platform or file system cannot."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2: Callable[..., int] = libc.renameat2
    except (OSError, AttributeError):
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),
                     _RENAME_EXCHANGE) == 0
