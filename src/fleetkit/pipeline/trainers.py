"""The Trainer port: what the pipeline needs from a place that trains (docs/pipeline.md,
"Trainers").

A trainer owns one working directory (its *root*); each run gets a folder under it named by
its run id. Every file is named by a *remote name*: a relative path under the root with
forward slashes ("<run_id>/export.tar.gz"), never absolute, never with "..", never a part
starting with "-" (so no name can be read as an option by a tool on the trainer).

Checksums are computed ON the trainer (`sha256`), where the files were produced, so that the
pipeline can compare them with its own hashes of the downloaded copies: a byte changed in
transit is caught on arrival.

Errors say what to do about them:

    TrainerError                 (FleetError)
    ├── TrainerUnreachable       no answer, refused connection, unknown host  -> retried
    │   └── TrainerConnectionLost  the connection dropped mid-transfer or mid-run -> retried
    ├── TrainerAuthRefused       the key (or host key) was refused: a user error, exit 2
    ├── TrainerOutOfDisk         too little space on the trainer: a user error, exit 2
    ├── TrainerCommandFailed     the command exited non-zero (its last stderr line)
    └── TrainerTimeout           the command ran past its limit and was killed

TrainerUnreachable is a UserError too: after the bounded retries the CLI says, in one line,
which host does not answer and exits 2. Only it (and its subclass) is retried by
`with_retries`: a refused key does not fix itself, and a training that failed on its own
would fail again.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from fleetkit.core.backoff import equal_jitter_delay
from fleetkit.core.errors import ConfigError, FleetError, UserError

T = TypeVar("T")
# (stream, line): "stdout" or "stderr", one line without its end ("\n" or a progress
# bar's "\r").
LineCallback = Callable[[str, str], None]
TAIL_CHARS = 64 * 1024  # of each stream kept in a RunResult: a --json report fits
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NAME_PART = re.compile(r"^[^-/\x00-\x1f\x7f][^/\x00-\x1f\x7f]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int
    stdout_tail: str  # the last TAIL_CHARS of each stream
    stderr_tail: str
    seconds: float

    @property
    def last_stderr_line(self) -> str:
        return last_line(self.stderr_tail)


class TrainerError(FleetError):
    """Any failure of a trainer; the message is one line naming the trainer."""

    def __init__(self, trainer: str, message: str) -> None:
        super().__init__(message)
        self.trainer = trainer


class TrainerUnreachable(TrainerError, UserError):
    """The trainer does not answer (refused, no route, timed out, unknown name): retried
    with backoff; after the last try, a user error naming the host."""


class TrainerConnectionLost(TrainerUnreachable):
    """The connection dropped mid-transfer or mid-run (reset, broken pipe, no keepalive
    answer): retried like a trainer that does not answer."""


class TrainerAuthRefused(TrainerError, UserError):
    """The trainer refused our key (or its host key did not verify): never retried."""


class TrainerOutOfDisk(TrainerError, UserError):
    """Too little free space on the trainer for the run."""


class TrainerCommandFailed(TrainerError):
    """A command exited non-zero on the trainer; `result` holds its output's tails."""

    def __init__(self, trainer: str, message: str, result: RunResult) -> None:
        super().__init__(trainer, message)
        self.result = result


class TrainerTimeout(TrainerError):
    """A command ran past its limit; it was killed (with its process group) on the
    trainer. `result.exit_code` is -1."""

    def __init__(self, trainer: str, message: str, result: RunResult) -> None:
        super().__init__(trainer, message)
        self.result = result


class Trainer(Protocol):
    """A place that trains. Implementations: LocalTrainer, SshTrainer. To add one (a job
    queue, a cloud VM), implement these methods with the same meaning and errors and run it
    through tests/integration/test_trainers.py's contract tests.

    Every method is synchronous and may be retried by the caller after TrainerUnreachable,
    so each must be idempotent: prepare creates what is missing, upload and download write
    a temporary name and rename it whole, cleanup of a missing run is no error."""

    @property
    def name(self) -> str:
        """The trainer's name in the config (used in every message)."""
        ...

    @property
    def python(self) -> str:
        """The trainer's Python (argv[0] of its commands; a leading ~/ is its home)."""
        ...

    @property
    def device(self) -> str:
        """cpu, cuda or auto: `fleet ml train --device` on this trainer."""
        ...

    def describe(self) -> str:
        """Where it is, for humans: "local /srv/fleet/var/trainer", "ssh gpu-box:fleet"."""
        ...

    def prepare(self, run_id: str) -> str:
        """Create `<root>/<run_id>` (and the root) if missing; its absolute path on the
        trainer, for the commands' arguments."""
        ...

    def upload(self, local_path: Path, remote_name: str) -> None:
        """Copy a local file to `remote_name`, creating its folders; it appears whole or
        not at all."""
        ...

    def run(self, argv: Sequence[str], *, timeout_s: float,
            on_line: LineCallback | None = None, cwd: str | None = None,
            env: Mapping[str, str] | None = None, check: bool = True) -> RunResult:
        """Run argv (no shell: each argument reaches the program as given; only a leading
        ~/ of argv[0] means the trainer's home) in `cwd` (a remote name; default the root)
        with `env` added, streaming each line to `on_line` as it comes. Past `timeout_s`
        the command and every process it started are killed: TrainerTimeout. A non-zero
        exit: TrainerCommandFailed with its last stderr line (or the result, when
        check=False). If this process dies, the command dies with it."""
        ...

    def sha256(self, remote_names: Sequence[str]) -> dict[str, str]:
        """Each file's sha256 (hex), computed on the trainer."""
        ...

    def list_files(self, remote_dir: str) -> list[str]:
        """The regular files under `remote_dir`, as sorted remote names."""
        ...

    def download(self, remote_name: str, local_path: Path) -> None:
        """Copy a file of the trainer to `local_path`, written whole or not at all."""
        ...

    def free_bytes(self) -> int:
        """Free space of the file system holding the root (created if missing)."""
        ...

    def cleanup(self, run_id: str) -> None:
        """Remove `<root>/<run_id>` and everything in it; nothing if it is gone."""
        ...


# --- names ----------------------------------------------------------------------------


def check_run_id(run_id: str) -> str:
    """A run id names one folder: letters, digits, ".", "_" and "-", not starting with a
    dot or a dash."""
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r}: letters, digits, '.', '_' and '-', starting "
                          "with a letter or digit")
    return run_id


def check_remote_name(name: str) -> str:
    """A relative path under the trainer's root (see the module docstring)."""
    parts = name.split("/")
    if (not name or name.startswith("/") or
            any(p in ("", ".", "..") or not _NAME_PART.match(p) for p in parts)):
        raise ConfigError(f"remote name {name!r}: a relative path under the trainer's "
                          "working directory, without '..', empty parts or a part starting "
                          "with '-'")
    return name


def check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(env or {})
    for key in out:
        if not ENV_NAME.match(key):
            raise ConfigError(f"environment variable name {key!r}: letters, digits and _")
    return out


def last_line(text: str) -> str:
    lines = [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]
    return lines[-1][:500] if lines else ""


# --- disk -----------------------------------------------------------------------------


def require_free_bytes(trainer: Trainer, needed: int) -> int:
    """The trainer's free bytes, or TrainerOutOfDisk when fewer than `needed`: checked
    before shipping data, so a full disk fails the run at once, not mid-training."""
    free = trainer.free_bytes()
    if free < needed:
        raise TrainerOutOfDisk(trainer.name, f"the trainer {trainer.name} "
                               f"({trainer.describe()}) has {_size(free)} free, the run needs "
                               f"{_size(needed)}: free some space there (old runs: "
                               "`rm -r` under its workdir) or choose another workdir")
    return free


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# --- retries --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """core.backoff's equal-jitter curve; `sleep` and `rng` are injectable for tests."""

    initial_s: float = 5.0
    maximum_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        return equal_jitter_delay(attempt, self.initial_s, self.maximum_s, self.rng)


def with_retries(op: Callable[[], T], attempts: int, backoff: Backoff,
                 on_retry: Callable[[int, TrainerError, float], None] | None = None) -> T:
    """op(), tried up to `attempts` times in all while it raises TrainerUnreachable (a
    trainer that does not answer, a transfer reset), waiting core.backoff's delay between
    tries; the last error is raised as it is. Any other error (a refused key, a command
    that failed or timed out, a full disk) is raised at once: retrying would not help.
    `on_retry(attempt, error, delay_s)` is told before each wait (to log or alert)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return op()
        except TrainerUnreachable as exc:
            if attempt + 1 >= attempts:
                raise
            delay = backoff.delay(attempt)
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            backoff.sleep(delay)
    raise AssertionError("not reached")  # the loop returns or raises


# --- the training command -------------------------------------------------------------


def ml_train_argv(trainer: Trainer, bot: str, *, config_path: str,
                  timeframe: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    """`<python> -m fleetkit ml train BOT --config PATH --device D --json --no-progress`
    on `trainer` (docs/ml.md "fleet ml train"): its --json report comes back in the
    result's stdout_tail."""
    return [trainer.python, "-m", "fleetkit", "ml", "train", bot, "--config", config_path,
            "--device", trainer.device, "--json", "--no-progress",
            *(["--timeframe", timeframe] if timeframe else []), *extra]
