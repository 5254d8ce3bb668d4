"""Supervisor: one OS process per bot (plus the broker), restarted on crash with backoff.

It does for the embedded fleet what systemd or Compose do in production: start children,
notice when one exits or hangs (its heartbeat goes stale), restart it after an
exponentially growing pause, and stop everything in order on SIGINT/SIGTERM — bots first,
then the broker — killing whatever is still alive after the grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetkit.runtime.logs import get_logger

USER_ERROR_EXIT = 2  # what fleet's CLI exits with for a UserError (bad config ...)
log = get_logger("supervisor")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    log_file: Path
    env: Mapping[str, str] = field(default_factory=dict)
    kind: str = "bot"  # stopped after everything else when kind == "broker"
    # Linux: the child gets SIGTERM when the supervisor dies, even by SIGKILL (parent_guard),
    # for children that hold no lease of their own and would otherwise run on as orphans.
    die_with_parent: bool = False


@dataclass(slots=True)
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.0
    restart_at: float | None = None
    last_exit: int | None = None


class Supervisor:
    """`on_exit(name, code, restarts)` and `heartbeat_age(name)` connect it to the database
    without this module knowing about one (heartbeat_age returns None when unknown)."""

    def __init__(self, specs: Sequence[ChildSpec], *, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, stable_after_s: float = 60.0,
                 hang_timeout_s: float = 180.0,
                 heartbeat_age: Callable[[str], float | None] = lambda name: None,
                 on_exit: Callable[[str, int, int], None] = lambda name, code, restarts: None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.children = {spec.name: Child(spec) for spec in specs}
        self._initial = backoff_initial_s
        self._max = backoff_max_s
        self._stable_after = stable_after_s
        self._hang_timeout = hang_timeout_s
        self._heartbeat_age = heartbeat_age
        self._on_exit = on_exit
        self._now = monotonic
        self.stopping = False

    def start(self, names: Sequence[str] | None = None) -> None:
        for name in names or list(self.children):
            self._spawn(self.children[name])

    def _spawn(self, child: Child) -> None:
        spec = child.spec
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = list(spec.argv)
        if spec.die_with_parent and sys.platform == "linux":
            argv = [sys.executable, "-m", "fleetkit.runtime.parent_guard", str(os.getpid()),
                    *argv]
        with spec.log_file.open("ab") as out:
            # A new session: Ctrl-C in the terminal reaches only the supervisor, which then
            # stops children in order instead of all of them dying at once.
            child.process = subprocess.Popen(  # noqa: S603 - argv built by us, no shell
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env}, start_new_session=True)
        child.started_at = self._now()
        child.restart_at = None
        log.info("started", action="process.start", child=spec.name, pid=child.process.pid)

    def poll(self) -> None:
        """Notice exits and hangs; restart what is due. Call about once a second."""
        now = self._now()
        for child in self.children.values():
            process = child.process
            if process is not None:
                code = process.poll()
                if code is None:
                    self._check_hang(child, now)
                    continue
                self._exited(child, code, now)
            elif child.restart_at is not None and now >= child.restart_at and not self.stopping:
                child.restarts += 1
                self._spawn(child)

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.process = None
        child.last_exit = code
        if self.stopping:
            return
        ran_for = now - child.started_at
        if code == USER_ERROR_EXIT:
            # A bad config or missing credential will not fix itself by quick retries:
            # retry slowly, and say why loudly (the process log has the one-line error).
            child.backoff_s = self._max
        elif ran_for >= self._stable_after:
            child.backoff_s = self._initial  # it had been healthy: start the ladder again
        else:
            child.backoff_s = min(self._max, child.backoff_s * 2 if child.backoff_s else
                                  self._initial)
        child.restart_at = now + child.backoff_s
        log.warning("exited; restarting" if code != USER_ERROR_EXIT else
                    "refused to start (user error: see its log); retrying slowly",
                    action="process.exit", child=child.spec.name,
                    code=code, restart_in_s=round(child.backoff_s, 1))
        self._on_exit(child.spec.name, code, child.restarts)

    def _check_hang(self, child: Child, now: float) -> None:
        if now - child.started_at < self._hang_timeout:
            return
        age = self._heartbeat_age(child.spec.name)
        if age is not None and age > self._hang_timeout and child.process is not None:
            log.error("no heartbeat; killing hung process", action="process.hung",
                      child=child.spec.name, heartbeat_age_s=round(age))
            child.process.kill()

    def alive(self) -> list[str]:
        return [n for n, c in self.children.items() if c.process and c.process.poll() is None]

    def stop(self, timeout_s: float = 8.0) -> None:
        """SIGTERM bots, then the broker; SIGKILL anything still alive at the deadline."""
        self.stopping = True
        deadline = self._now() + timeout_s
        bots = [c for c in self.children.values() if c.spec.kind != "broker"]
        others = [c for c in self.children.values() if c.spec.kind == "broker"]
        self._terminate(bots, deadline - timeout_s * 0.25)
        self._terminate(others, deadline)

    def stop_one(self, name: str, timeout_s: float = 8.0) -> int | None:
        """Stop one child on purpose (SIGTERM, SIGKILL at the deadline) and cancel any restart
        it had pending; the others run on. Returns its exit code, None if it was not running."""
        child = self.children[name]
        child.restart_at = None
        process = child.process
        if process is None:
            return None
        if process.poll() is None:
            self._terminate([child], self._now() + timeout_s)
        child.process = None
        child.last_exit = process.returncode
        child.backoff_s = 0.0
        return process.returncode

    def _terminate(self, children: list[Child], deadline: float) -> None:
        running = [(c, c.process) for c in children
                   if c.process is not None and c.process.poll() is None]
        for _, process in running:
            process.send_signal(signal.SIGTERM)
        for child, process in running:
            try:
                process.wait(max(0.0, deadline - self._now()))
            except subprocess.TimeoutExpired:
                log.error("did not stop in time; killing", action="process.kill",
                          child=child.spec.name)
                process.kill()
                process.wait()
