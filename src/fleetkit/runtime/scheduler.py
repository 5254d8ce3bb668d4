"""The scheduler: runs fleet jobs at their times, each period at most once fleet-wide.

The database decides what has run (job_runs); APScheduler only wakes the loop at fire
times. Every tick asks, per job: what is the last period recorded, which fire times have
come since, and — by the job's catch_up policy — which of them to run. Each one is claimed
(an INSERT that only one scheduler can win), run, and finished with its result, so a
restart or a second scheduler never runs a period twice. `tick(now)` takes the time as an
argument: tests drive it with a simulated clock and never sleep.

Runs of one job never overlap: while a job's newest period is running, the job waits; what
fired meanwhile is caught up (or skipped) by its policy once it is done.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from fleetkit.config.commands import declare_job_kind
from fleetkit.config.models import JobSettings
from fleetkit.engine.ports import Clock, SessionSource
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.schedule import Schedule, catch_up_plan, due_runs, schedule_for
from fleetkit.store.jobs import MAX_ATTEMPTS, JobRun, JobStore, RunOwner, RunStatus, period_key

log = get_logger("scheduler")

GRACE_S = 60.0  # a fire time this recent is on time, older ones were missed
STALE_AFTER_S = 60.0  # past its job's timeout by this much, a running claim's runner is dead
_KILL_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class RunOutcome:
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class JobCall:
    """What an in-process job kind is called with."""

    job: str
    period: datetime
    args: tuple[str, ...]
    timeout_s: float


# An in-process job: returns a line for the run's detail, raises to fail the run.
JobKind = Callable[[JobCall], str | None]
# Job kinds registered by plugins (`register_job_kind`); a command whose first word names
# one runs in the scheduler's process instead of as `python -m fleetkit ...`.
JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(name: str, kind: JobKind) -> None:
    JOB_KINDS[name] = kind
    declare_job_kind(name)  # so the config's job commands may name it


class JobRunner(Protocol):
    def run(self, job: JobSettings, period: datetime) -> RunOutcome: ...


class CallableRunner:
    """Runs commands whose first word is a registered kind in-process (tests, plugins);
    anything else goes to `fallback`. In-process calls cannot be killed: their timeout is
    only the point after which another scheduler may take the period over."""

    def __init__(self, kinds: Mapping[str, JobKind], fallback: JobRunner | None = None) -> None:
        self._kinds = kinds
        self._fallback = fallback

    def run(self, job: JobSettings, period: datetime) -> RunOutcome:
        words = shlex.split(job.command)
        kind = self._kinds.get(words[0])
        if kind is None:
            if self._fallback is not None:
                return self._fallback.run(job, period)
            return RunOutcome(False, f"no job kind {words[0]!r} is registered")
        try:
            detail = kind(JobCall(job.name, period, tuple(words[1:]), job.timeout_s))
        except Exception as exc:  # a job's failure is its run's result, not the scheduler's
            return RunOutcome(False, f"{type(exc).__name__}: {exc}")
        return RunOutcome(True, detail or "done")


class SubprocessRunner:
    """Runs `python -m fleetkit <command>` in its own process group, killed at the job's
    timeout (or when `stop` is set); the output's tail becomes the run's detail."""

    def __init__(self, env: Mapping[str, str], stop: threading.Event | None = None,
                 python: str = sys.executable) -> None:
        self._env = dict(env)
        self._stop = stop or threading.Event()
        self._python = python

    def run(self, job: JobSettings, period: datetime) -> RunOutcome:
        argv = [self._python, "-m", "fleetkit", *shlex.split(job.command)]
        env = {**os.environ, **self._env, "FLEET_JOB": job.name,
               "FLEET_JOB_PERIOD": period_key(period)}
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(  # noqa: S603 - argv from the validated config, no shell
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
            ending = self._wait(process, job.timeout_s)
            out.seek(0)
            tail = _tail(out.read())
        if ending is not None:
            return RunOutcome(False, f"{ending}: {tail}" if tail else ending)
        if process.returncode == 0:
            return RunOutcome(True, tail or "exit code 0")
        return RunOutcome(False, f"exit code {process.returncode}: {tail or 'no output'}")

    def _wait(self, process: subprocess.Popen[bytes], timeout_s: float) -> str | None:
        """None once the process exits by itself; otherwise why it was killed."""
        deadline = time.monotonic() + timeout_s
        while process.poll() is None:
            if self._stop.is_set():
                _kill_group(process)
                return "interrupted: the scheduler was stopped"
            if time.monotonic() >= deadline:
                _kill_group(process)
                return f"timed out after {timeout_s:g}s and was killed"
            self._stop.wait(0.2)
        return None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(output: bytes, lines: int = 20) -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    job: str
    period: datetime
    attempt: int


def run_inline(work: Callable[[], None]) -> None:
    work()


class Scheduler:
    """Decides and starts runs; `dispatch` runs each one (inline by default: a tick
    returns when its runs are done; the service passes a thread starter instead)."""

    def __init__(self, jobs: Sequence[JobSettings], store: JobStore, runner: JobRunner, *,
                 clock: Clock, owner: RunOwner | None = None,
                 sessions: SessionSource | None = None, grace_s: float = GRACE_S,
                 stale_after_s: float = STALE_AFTER_S,
                 dispatch: Callable[[Callable[[], None]], None] = run_inline,
                 on_done: Callable[[], None] = lambda: None,
                 first_seen: datetime | None = None) -> None:
        self.jobs = [job for job in jobs if job.enabled]
        self.schedules: dict[str, Schedule] = {
            job.name: schedule_for(job, sessions) for job in self.jobs}
        self._store = store
        self._runner = runner
        self._clock = clock
        self._owner = owner or RunOwner.this_process()
        self._grace_s = grace_s
        self._stale_after_s = stale_after_s
        self._dispatch = dispatch
        self._on_done = on_done
        # A job never run before first runs at its next fire time after this (default: the
        # first tick). A timer-started tick (`fleet scheduler tick`) passes a moment just
        # before the fire time that woke it, so that very period is due.
        self._first_seen: dict[str, datetime] = (
            {} if first_seen is None else {job.name: first_seen for job in self.jobs})
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self.ticks = 0

    def busy(self) -> list[str]:
        with self._lock:
            return sorted(self._busy)

    def next_fire(self, job: JobSettings, now: datetime) -> datetime | None:
        return self.schedules[job.name].next_after(now)

    def tick(self, now: datetime) -> list[ClaimedRun]:
        """Start every run that is due at `now`; returns what this scheduler claimed."""
        self.ticks += 1
        last = self._store.last_runs()
        started: list[ClaimedRun] = []
        for job in self.jobs:
            started += self._tick_job(job, last.get(job.name), now)
        return started

    def _tick_job(self, job: JobSettings, last: JobRun | None, now: datetime
                  ) -> list[ClaimedRun]:
        with self._lock:
            if job.name in self._busy:
                return []
        if last is not None and last.status is RunStatus.RUNNING:
            if now.timestamp() - last.started_at.timestamp() <= job.timeout_s + self._stale_after_s:
                return []  # its runner (here or elsewhere) is still on it
            resumed = self._recover(job, last, now)
            if resumed is not None:
                return resumed
        anchor = last.period if last is not None else self._first_seen.setdefault(job.name, now)
        plan = catch_up_plan(job, due_runs(self.schedules[job.name], anchor, now), now,
                             self._grace_s)
        if plan.skip is not None and self._store.skip(job.name, plan.skip, plan.skip_detail,
                                                      self._owner, now):
            log.warning("job periods skipped", action="job.skip", job=job.name,
                        detail=plan.skip_detail)
        started: list[ClaimedRun] = []
        for period in plan.run:
            with self._lock:
                if job.name in self._busy:
                    break  # dispatched to a thread: the rest waits for later ticks
            if not self._store.claim(job.name, period, self._owner, now):
                break  # another scheduler has it, and the job's runs never overlap
            run = ClaimedRun(job.name, period, 1)
            started.append(run)
            self._start(job, run)
        return started

    def _recover(self, job: JobSettings, stale: JobRun, now: datetime
                 ) -> list[ClaimedRun] | None:
        """A running claim past its timeout: take it over once, or close it as failed.
        None means "closed; plan the job as usual"."""
        newer = due_runs(self.schedules[job.name], stale.period, now, limit=1)
        lost = (f"its runner {stale.owner} stopped answering (attempt {stale.attempt} "
                f"started {stale.started_at:%Y-%m-%d %H:%M:%S} UTC, timeout "
                f"{job.timeout_s:g}s)")
        if stale.attempt >= MAX_ATTEMPTS or (newer and job.catch_up != "all"):
            why = ("it was already a takeover: not retried again" if stale.attempt >= MAX_ATTEMPTS
                   else "not rerun: a newer period is due")
            self._store.finish(job.name, stale.period, attempt=stale.attempt,
                               status=RunStatus.FAILED, detail=f"{lost}; {why}", now=now)
            return None
        if not self._store.take_over(stale, self._owner, now):
            return []  # another scheduler took it over first
        log.warning("job run taken over", action="job.take_over", job=job.name,
                    period=stale.period_key, previous=str(stale.owner))
        run = ClaimedRun(job.name, stale.period, stale.attempt + 1)
        self._start(job, run)
        return [run]

    def _start(self, job: JobSettings, run: ClaimedRun) -> None:
        with self._lock:
            self._busy.add(job.name)
        log.info("job started", action="job.start", job=job.name,
                 period=period_key(run.period), attempt=run.attempt)

        def work() -> None:
            try:
                self._execute(job, run)
            finally:
                with self._lock:
                    self._busy.discard(job.name)
                self._on_done()

        try:
            self._dispatch(work)
        except BaseException:
            with self._lock:
                self._busy.discard(job.name)
            raise

    def _execute(self, job: JobSettings, run: ClaimedRun) -> None:
        try:
            outcome = self._runner.run(job, run.period)
        except Exception as exc:  # a runner bug fails the run, never the scheduler
            outcome = RunOutcome(False, f"the runner failed: {type(exc).__name__}: {exc}")
        status = RunStatus.SUCCEEDED if outcome.ok else RunStatus.FAILED
        try:
            recorded = self._store.finish(job.name, run.period, attempt=run.attempt,
                                          status=status, detail=outcome.detail,
                                          now=self._clock.now())
        except Exception as exc:  # the claim stays running; a takeover reruns it later
            log.error("job result not recorded", action="job.lost", job=job.name,
                      period=period_key(run.period), error=str(exc))
            return
        fields: dict[str, Any] = {"job": job.name, "period": period_key(run.period),
                                  "attempt": run.attempt, "status": status.value}
        if not recorded:
            log.warning("job result discarded: the period was taken over meanwhile",
                        action="job.superseded", **fields)
        elif outcome.ok:
            log.info("job succeeded", action="job.finish", **fields)
        else:
            log.warning("job failed", action="job.fail", detail=outcome.detail[-500:], **fields)
