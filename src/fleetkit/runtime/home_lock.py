"""One fleet per home: `fleet up` holds an exclusive lock on FLEET_HOME/fleet.lock for its
whole life, so a second fleet never shares the home's database, sandbox book and logs.

The lock is `flock(2)` on a file the fleet process keeps open: the kernel drops it when
that process ends, however it ends (Ctrl-C, a crash, SIGKILL, OOM), so there is no stale
lock to clean up by hand. The file also says who holds it — pid, host, since when, which
config — for the refusal the second fleet prints. Its descriptor is close-on-exec (and the
supervisor starts children with close_fds), so the bots and the broker never hold it: the
lock means "a supervisor owns this home" and ends with the supervisor, not with whatever
it started.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetkit.core.errors import ConfigError, UserError

LOCK_FILE = "fleet.lock"


class FleetHomeBusyError(UserError):
    """Another fleet holds this FLEET_HOME: stop it, or give this one its own home."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    pid: int
    host: str
    since: datetime
    config: str

    def as_text(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "since": self.since.isoformat(),
                           "config": self.config}) + "\n"

    @classmethod
    def from_text(cls, text: str) -> LockHolder | None:
        try:
            raw = json.loads(text)
            return cls(int(raw["pid"]), str(raw["host"]), datetime.fromisoformat(raw["since"]),
                       str(raw.get("config", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return (f"pid {self.pid} on {self.host}, running since {self.since:%Y-%m-%d %H:%M:%S} "
                f"UTC" + (f", config {self.config}" if self.config else ""))


def prepare_home(home: Path) -> None:
    """Create FLEET_HOME if needed, or refuse in one line saying how to fix it."""
    fix = "point FLEET_HOME at a directory this user can write (default: ./var)"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"FLEET_HOME {home} is not a directory (it, or a folder above it, "
                          f"is a file): {fix}") from None
    except OSError as exc:
        raise ConfigError(f"cannot create FLEET_HOME {home} ({exc.strerror}): {fix}") from None
    if not home.is_dir():
        raise ConfigError(f"FLEET_HOME {home} is a file, not a directory: {fix}")


@contextmanager
def hold_fleet_home(home: Path, config: str) -> Iterator[LockHolder]:
    """Hold FLEET_HOME for the life of the `with` block; FleetHomeBusyError if another fleet
    holds it, ConfigError if the home cannot be used at all."""
    prepare_home(home)
    path = home / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write in FLEET_HOME {home} ({exc.strerror}): point "
                          "FLEET_HOME at a directory this user can write") from None
    try:
        _lock(fd, home)
        holder = LockHolder(os.getpid(), socket.gethostname(), datetime.now(UTC), config)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.as_text().encode(), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)  # the next reader finds no stale holder details
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _lock(fd: int, home: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ConfigError(f"cannot lock FLEET_HOME {home} ({exc.strerror}): use a local "
                              "directory for FLEET_HOME") from None
        raise FleetHomeBusyError(
            f"another fleet is running on FLEET_HOME {home} ({_holder(fd)}): stop that one "
            "first (Ctrl-C in its terminal, or kill -TERM its pid), or run this one with "
            "its own FLEET_HOME") from None


def _holder(fd: int) -> str:
    # The holder writes its details just after taking the lock: a reader that comes in
    # between finds the file empty for a moment.
    for _ in range(10):
        holder = LockHolder.from_text(os.pread(fd, 4096, 0).decode(errors="replace"))
        if holder is not None:
            return holder.describe()
        time.sleep(0.05)
    return "holder details not written"
