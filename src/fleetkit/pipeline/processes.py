"""Running a trainer's command and streaming its output: both trainers start a local
process (the command itself, or `ssh`) and read its two pipes here.

Why threads: a training writes on both stdout and stderr; reading one pipe to its end while
the other fills up would deadlock, and the pipeline wants each line as it comes (progress).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from fleetkit.pipeline.trainers import TAIL_CHARS, LineCallback

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Finished:
    code: int | None  # None: killed at its time limit
    stdout: str  # the last TAIL_CHARS of each stream
    stderr: str
    seconds: float


def guarded(argv: Sequence[str]) -> list[str]:
    """argv run through runtime.parent_guard on Linux, as ml_bootstrap.spawn_guarded does:
    the process gets SIGTERM when this one dies, however it dies (argv[0] must be a path:
    the guard execs it without a PATH search)."""
    if sys.platform != "linux":
        return list(argv)
    return [sys.executable, "-m", "fleetkit.runtime.parent_guard", str(os.getpid()), *argv]


class _Reader(threading.Thread):
    """Reads one pipe to its end: keeps its tail, hands each complete line on."""

    def __init__(self, pipe: IO[bytes], stream: str, on_line: LineCallback | None) -> None:
        super().__init__(name=f"trainer-{stream}", daemon=True)
        self.pipe = pipe
        self.stream = stream
        self.on_line = on_line
        self.tail = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        pending = ""
        read = getattr(self.pipe, "read1", self.pipe.read)
        try:
            while chunk := read(65536):
                text = chunk.decode("utf-8", "replace")
                self.tail = (self.tail + text)[-TAIL_CHARS:]
                pending = self._lines(pending + text)
            if pending:
                self._emit(pending)
        except BaseException as exc:
            self.error = exc
            self._drain(read)

    def _lines(self, text: str) -> str:
        """Emit the complete lines of text; the incomplete rest."""
        parts = _LINE_END.split(text)
        for line in parts[:-1]:
            if line:
                self._emit(line)
        return parts[-1][-TAIL_CHARS:]

    def _emit(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(self.stream, line)

    def _drain(self, read: Callable[[int], bytes]) -> None:
        # The callback failed: keep reading (and the tail) so the process never blocks.
        try:
            while chunk := read(65536):
                self.tail = (self.tail + chunk.decode("utf-8", "replace"))[-TAIL_CHARS:]
        except OSError:
            pass


def stream_process(process: subprocess.Popen[bytes], *, timeout_s: float,
                   on_line: LineCallback | None,
                   stop: Callable[[subprocess.Popen[bytes]], None]) -> Finished:
    """Wait for `process` (started with stdout and stderr piped) streaming its lines; past
    `timeout_s`, or if this thread is interrupted, `stop(process)` kills it. An exception
    raised by on_line is raised here once the process has ended (it is not stopped: a
    progress display's failure is no reason to lose a training)."""
    if process.stdout is None or process.stderr is None:
        raise ValueError("stream_process: start the process with stdout and stderr piped")
    started = time.monotonic()
    readers = [_Reader(process.stdout, "stdout", on_line),
               _Reader(process.stderr, "stderr", on_line)]
    for reader in readers:
        reader.start()
    code: int | None = None
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(process)
    except BaseException:
        stop(process)
        raise
    finally:
        process.wait()
        for reader in readers:
            reader.join(timeout=10.0)  # a grandchild may hold a pipe open: do not hang
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    for reader in readers:
        if reader.error is not None:
            raise reader.error
    return Finished(code, readers[0].tail, readers[1].tail, time.monotonic() - started)
