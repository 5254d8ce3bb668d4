"""Files written beside the database (reports, archives): replaced whole or not at all.

Moved here from backtest/report.py so that the store's Parquet archives can use it too
(the store sits below backtest in the layers); backtest imports it from here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a new file beside `path`, then rename it over `path`: a crash or an
    error leaves the old file or none, never half of a new one. The new file gets the usual
    permissions (the umask's), not a temporary file's 0600."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def fsync_directory(directory: Path) -> None:
    """Make the renames inside `directory` durable: after a power loss the directory still
    names the new files. Needed before deleting the only other copy of what they hold."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
