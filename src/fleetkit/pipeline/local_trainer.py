"""LocalTrainer: the Trainer port on this machine. Its root is a directory under the fleet
home (or a configured path); commands are subprocesses guarded to die with this process
(runtime.parent_guard, as runtime.ml_bootstrap starts a bot's first training), each in a
session of its own so that a timeout kills everything it started; files are copied; the
checksums are computed here in-process — this machine IS the trainer.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from fleetkit.core.hashing import sha256_file
from fleetkit.pipeline.processes import guarded, stream_process
from fleetkit.pipeline.trainers import (
    LineCallback,
    RunResult,
    TrainerCommandFailed,
    TrainerError,
    TrainerOutOfDisk,
    TrainerTimeout,
    check_env,
    check_remote_name,
    check_run_id,
)

TRAINER_FOLDER = "trainer"  # <fleet home>/trainer by default
STOP_GRACE_S = 5.0  # between SIGTERM and SIGKILL of a command past its time limit
_CHUNK = 1 << 20


class LocalTrainer:
    def __init__(self, name: str, root: Path, *, python: str | None = None,
                 device: str = "auto") -> None:
        self._name = name
        self.root = Path(root).expanduser().absolute()
        self._python = python or sys.executable
        self._device = device

    @property
    def name(self) -> str:
        return self._name

    @property
    def python(self) -> str:
        return self._python

    @property
    def device(self) -> str:
        return self._device

    def describe(self) -> str:
        return f"local {self.root}"

    def path(self, remote_name: str) -> Path:
        return self.root / check_remote_name(remote_name)

    def prepare(self, run_id: str) -> str:
        folder = self.root / check_run_id(run_id)
        with self._disk("create the run's folder"):
            folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    def upload(self, local_path: Path, remote_name: str) -> None:
        self._copy(Path(local_path), self.path(remote_name), "upload")

    def download(self, remote_name: str, local_path: Path) -> None:
        self._copy(self.path(remote_name), Path(local_path), "download")

    def sha256(self, remote_names: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in remote_names:
            try:
                out[name] = sha256_file(self.path(name))
            except OSError as exc:
                raise self._failed(f"cannot hash {name}: {exc.strerror or exc}") from None
        return out

    def list_files(self, remote_dir: str) -> list[str]:
        top = self.path(remote_dir)
        if not top.is_dir():
            raise self._failed(f"no folder {remote_dir} under {self.root}")
        return sorted(p.relative_to(self.root).as_posix() for p in top.rglob("*")
                      if p.is_file() and not p.is_symlink())

    def free_bytes(self) -> int:
        with self._disk("create its working directory"):
            self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def cleanup(self, run_id: str) -> None:
        shutil.rmtree(self.root / check_run_id(run_id), ignore_errors=True)

    def run(self, argv: Sequence[str], *, timeout_s: float,
            on_line: LineCallback | None = None, cwd: str | None = None,
            env: Mapping[str, str] | None = None, check: bool = True) -> RunResult:
        if not argv:
            raise ValueError("run: empty argv")
        program = self._program(argv[0])
        folder = self.path(cwd) if cwd else self.root
        folder.mkdir(parents=True, exist_ok=True)
        try:
            process = subprocess.Popen(  # noqa: S603 - argv as given, no shell
                guarded([program, *argv[1:]]), cwd=folder, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, **check_env(env)},
                start_new_session=True)  # its own process group: a timeout kills it all
        except OSError as exc:
            raise self._failed(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        finished = stream_process(process, timeout_s=timeout_s, on_line=on_line,
                                  stop=_stop_group)
        if finished.code is None:
            result = RunResult(-1, finished.stdout, finished.stderr, finished.seconds)
            raise TrainerTimeout(self._name, f"the trainer {self._name}: {argv[0]} ran past "
                                 f"its limit of {timeout_s:g} s and was killed", result)
        result = RunResult(finished.code, finished.stdout, finished.stderr,
                           finished.seconds)
        if check and result.exit_code != 0:
            line = result.last_stderr_line or f"exit code {result.exit_code}"
            if "No space left on device" in line:
                raise TrainerOutOfDisk(self._name, f"the trainer {self._name} ran out of "
                                       f"disk space ({self.root}): {line}")
            raise TrainerCommandFailed(self._name, f"the trainer {self._name}: {argv[0]} "
                                       f"exited with code {result.exit_code}: {line}", result)
        return result

    # --- helpers ---

    def _program(self, program: str) -> str:
        # parent_guard execs without a PATH search: hand it a path.
        expanded = os.path.expanduser(program)
        if os.sep in expanded:
            return expanded
        found = shutil.which(expanded)
        if found is None:
            raise self._failed(f"{program}: not found on PATH")
        return found

    def _copy(self, source: Path, target: Path, what: str) -> None:
        partial = target.with_name(f"{target.name}.partial")
        try:
            with self._disk(what):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, partial)
                os.replace(partial, target)  # whole or not at all
        except TrainerError:
            partial.unlink(missing_ok=True)
            raise
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise self._failed(f"{what} of {source} failed: {exc.strerror or exc}") from None

    @contextmanager
    def _disk(self, what: str) -> Iterator[None]:
        """ENOSPC becomes TrainerOutOfDisk (a user error naming the trainer)."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise TrainerOutOfDisk(self._name, f"the trainer {self._name} ran out of disk "
                                   f"space ({self.root}) during {what}: free some space "
                                   "there") from None

    def _failed(self, message: str) -> TrainerCommandFailed:
        return TrainerCommandFailed(self._name, f"the trainer {self._name}: {message}",
                                    RunResult(1, "", message, 0.0))


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group, SIGKILL to what is left after a grace."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_S)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its children, if the leader went first
