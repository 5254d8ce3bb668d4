"""Job runs: claiming a scheduled period exactly once, fleet-wide, and what became of it.

A period is one fire time of a job. Its row is inserted before the job runs (the claim);
the unique (job, period_key) makes the insert the lock, so a restarted scheduler or a
second one on another host finds the period taken and leaves it alone. A claim whose runner
died stays `running`; after its timeout one other scheduler may take it over (attempt 2),
once — a run that dies twice is marked failed rather than retried for ever.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, and_, func, select, update

from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import insert_if_absent
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import job_runs

MAX_ATTEMPTS = 2  # the first runner, and at most one takeover
_DETAIL_CHARS = 4000


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class RunOwner:
    """Who runs a period: the host and process id recorded on its row."""

    host: str
    pid: int | None

    @classmethod
    def this_process(cls) -> RunOwner:
        return cls(socket.gethostname(), os.getpid())

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True, slots=True)
class JobRun:
    job: str
    period: datetime
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    attempt: int
    host: str
    pid: int | None
    detail: str

    @property
    def period_key(self) -> str:
        return period_key(self.period)

    @property
    def owner(self) -> RunOwner:
        return RunOwner(self.host, self.pid)

    def as_json(self) -> dict[str, Any]:
        return {"job": self.job, "period": self.period_key, "status": self.status.value,
                "started_at": self.started_at.isoformat(),
                "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
                "attempt": self.attempt, "host": self.host, "pid": self.pid,
                "detail": self.detail}


def period_key(moment: datetime) -> str:
    """A fire time as the row's key: UTC, whole seconds, fixed width (sorts as time)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a period needs a timezone-aware time, got {moment.isoformat()}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_period_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class JobStore:
    def __init__(self, engine: Engine, actor: str = "scheduler") -> None:
        self._engine = engine
        self._actor = actor

    def claim(self, job: str, period: datetime, owner: RunOwner, now: datetime) -> bool:
        """Take `period` of `job` to run it; False if anyone ever claimed it before."""
        with write_transaction(self._engine) as conn:
            return insert_if_absent(conn, job_runs, _row(
                job, period, RunStatus.RUNNING, owner, now, "running"), ["job", "period_key"])

    def skip(self, job: str, period: datetime, detail: str, owner: RunOwner,
             now: datetime) -> bool:
        """Record `period` as deliberately not run (missed while down, catch-up policy)."""
        with write_transaction(self._engine) as conn:
            return insert_if_absent(conn, job_runs, {
                **_row(job, period, RunStatus.SKIPPED, owner, now, detail),
                "finished_at": now}, ["job", "period_key"])

    def take_over(self, stale: JobRun, owner: RunOwner, now: datetime) -> bool:
        """Claim a period whose runner stopped answering; True for exactly one caller, and
        only while the run is on its first attempt. Recorded on the row and as an event."""
        if stale.status is not RunStatus.RUNNING or stale.attempt >= MAX_ATTEMPTS:
            return False
        detail = (f"taken over from {stale.owner} (attempt {stale.attempt} started "
                  f"{stale.started_at.isoformat()} and never finished)")
        with write_transaction(self._engine) as conn:
            taken = conn.execute(update(job_runs).where(
                job_runs.c.job == stale.job, job_runs.c.period_key == stale.period_key,
                job_runs.c.status == RunStatus.RUNNING.value,
                job_runs.c.attempt == stale.attempt,
            ).values(attempt=stale.attempt + 1, started_at=now, host=owner.host,
                     pid=owner.pid, detail=detail)).rowcount == 1
            if taken:
                insert_event(conn, bot_id=None, kind="job.taken_over", severity="warning",
                             message=f"job {stale.job} period {stale.period_key}: {detail}",
                             now=now, actor=self._actor,
                             data={"job": stale.job, "period": stale.period_key,
                                   "attempt": stale.attempt + 1, "previous_host": stale.host,
                                   "previous_pid": stale.pid})
        return taken

    def finish(self, job: str, period: datetime, *, attempt: int, status: RunStatus,
               detail: str, now: datetime) -> bool:
        """Record how the run ended; a failure writes a `job.failed` event in the same
        transaction. False (nothing written) if this attempt no longer owns the period —
        it was taken over, or finished already."""
        if status is RunStatus.RUNNING:
            raise ValueError("finish needs a final status")
        detail = _clip(detail)
        key = period_key(period)
        with write_transaction(self._engine) as conn:
            done = conn.execute(update(job_runs).where(
                job_runs.c.job == job, job_runs.c.period_key == key,
                job_runs.c.status == RunStatus.RUNNING.value, job_runs.c.attempt == attempt,
            ).values(status=status.value, finished_at=now, detail=detail)).rowcount == 1
            if done and status is RunStatus.FAILED:
                first_line = (detail.strip().splitlines() or ["no detail"])[0][:300]
                insert_event(conn, bot_id=None, kind="job.failed", severity="warning",
                             message=f"job {job} failed (period {key}, attempt {attempt}): "
                                     f"{first_line}",
                             now=now, actor=self._actor,
                             data={"job": job, "period": key, "attempt": attempt,
                                   "detail": detail})
        return done

    def last_runs(self) -> dict[str, JobRun]:
        """Each job's run with the newest period, whatever its status."""
        newest = (select(job_runs.c.job, func.max(job_runs.c.period_key).label("period_key"))
                  .group_by(job_runs.c.job).subquery())
        query = select(job_runs).join(newest, and_(job_runs.c.job == newest.c.job,
                                                   job_runs.c.period_key == newest.c.period_key))
        with read_transaction(self._engine) as conn:
            rows = conn.execute(query).all()
        return {row.job: _run(row._mapping) for row in rows}

    def runs(self, job: str, limit: int = 100) -> list[JobRun]:
        """`job`'s runs, newest period first."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(job_runs).where(job_runs.c.job == job)
                                .order_by(job_runs.c.period_key.desc()).limit(limit)).all()
        return [_run(row._mapping) for row in rows]

    def failures(self, since: datetime) -> list[JobRun]:
        """Runs that failed at or after `since`, newest first."""
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(job_runs).where(
                job_runs.c.status == RunStatus.FAILED.value, job_runs.c.finished_at >= since,
            ).order_by(job_runs.c.finished_at.desc(), job_runs.c.id.desc())).all()
        return [_run(row._mapping) for row in rows]


def _row(job: str, period: datetime, status: RunStatus, owner: RunOwner, now: datetime,
         detail: str) -> dict[str, Any]:
    return {"job": job, "period_key": period_key(period), "status": status.value,
            "started_at": now, "attempt": 1, "host": owner.host, "pid": owner.pid,
            "detail": _clip(detail)}


def _clip(detail: str) -> str:
    """Keep the end of a long detail (the end of a log is where the error is)."""
    return detail if len(detail) <= _DETAIL_CHARS else "…" + detail[-(_DETAIL_CHARS - 1):]


def _run(m: Any) -> JobRun:
    return JobRun(m["job"], parse_period_key(m["period_key"]), RunStatus(m["status"]),
                  m["started_at"], m["finished_at"], m["attempt"], m["host"], m["pid"],
                  m["detail"])
