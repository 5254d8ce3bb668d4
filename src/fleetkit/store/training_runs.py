"""Training runs and their steps (docs/pipeline.md, "Runs and steps"): claiming a (bot,
timeframe, period) once fleet-wide, recording each step before and after, and ending a run
with its alert.

As with scheduled jobs (store.jobs), the row is the claim: inserting attempt 1 of a period
is taking it, and the unique (bot, timeframe, period, attempt) makes a second process's
insert fail. Unlike a job, a run holds a *lease* (claimed_by, lease_expires) renewed at
every step: a process that died mid-run leaves its claim to expire, and the next `fleet
train run` takes it over and resumes from the last step done. A finished period
(succeeded, rejected) is skipped; `force` starts a new attempt of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import training_runs, training_steps

_ERROR_CHARS = 4000


class RunState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class StepState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class ClaimOutcome(StrEnum):
    NEW = "new"  # this process inserted the attempt
    RESUMED = "resumed"  # a failed attempt, run again from its last step done
    TAKEN_OVER = "taken_over"  # a claim past its lease (its process died)
    DONE = "done"  # the period succeeded or was rejected: nothing to do without force
    HELD = "held"  # another process holds a live claim


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    state: StepState
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "state": self.state.value,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at and self.finished_at.isoformat(),
                "seconds": self.seconds, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class TrainingRun:
    id: int
    bot: str
    timeframe: str
    period: str
    attempt: int
    trainer: str
    state: RunState
    started_at: datetime
    finished_at: datetime | None
    failed_step: str | None
    error: str
    version_id: int | None
    claimed_by: str
    lease_expires: datetime
    steps: tuple[StepRecord, ...] = field(default=())

    @property
    def run_id(self) -> str:
        """The run's folder name on the trainer and under the fleet home."""
        period = self.period.replace(":", "").replace("T", "-")
        return f"{self.bot}-{self.timeframe}-{period}-a{self.attempt}"

    def step(self, name: str) -> StepRecord | None:
        return next((s for s in self.steps if s.step == name), None)

    def done(self, name: str) -> bool:
        found = self.step(name)
        return found is not None and found.state in (StepState.DONE, StepState.SKIPPED)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "bot": self.bot, "timeframe": self.timeframe,
                "period": self.period, "attempt": self.attempt, "trainer": self.trainer,
                "state": self.state.value, "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at and self.finished_at.isoformat(),
                "failed_step": self.failed_step, "error": self.error,
                "version_id": self.version_id, "claimed_by": self.claimed_by,
                "lease_expires": self.lease_expires.isoformat(),
                "steps": [s.as_json() for s in self.steps]}


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    run: TrainingRun | None  # None only when nothing was ever recorded (never happens)

    @property
    def mine(self) -> bool:
        return self.outcome in (ClaimOutcome.NEW, ClaimOutcome.RESUMED,
                                ClaimOutcome.TAKEN_OVER)


class TrainingRunStore:
    def __init__(self, engine: Engine, actor: str = "pipeline") -> None:
        self._engine = engine
        self._actor = actor

    # --- claiming ---------------------------------------------------------------------

    def claim(self, bot: str, timeframe: str, period: str, *, trainer: str, owner: str,
              lease_s: float, now: datetime, force: bool = False) -> Claim:
        """Take the period to run it (see the module docstring for who wins)."""
        lease = now + timedelta(seconds=lease_s)
        try:
            with write_transaction(self._engine) as conn:
                latest = _latest(conn, bot, timeframe, period)
                if latest is None or (force and not _live(latest, now)):
                    attempt = 1 if latest is None else latest.attempt + 1
                    conn.execute(insert(training_runs).values(
                        bot=bot, timeframe=timeframe, period=period, attempt=attempt,
                        trainer=trainer, state=RunState.RUNNING.value, started_at=now,
                        finished_at=None, failed_step=None, error="", version_id=None,
                        claimed_by=owner[:128], lease_expires=lease))
                    outcome = ClaimOutcome.NEW
                elif latest.state in (RunState.SUCCEEDED, RunState.REJECTED,
                                      RunState.SKIPPED):
                    return Claim(ClaimOutcome.DONE, latest)
                elif _live(latest, now):
                    return Claim(ClaimOutcome.HELD, latest)
                else:
                    # A failed attempt, or a running one whose process died: compare and
                    # set on what we read, so of two processes only one takes it.
                    taken = conn.execute(update(training_runs).where(
                        training_runs.c.id == latest.id,
                        training_runs.c.state == latest.state.value,
                        training_runs.c.claimed_by == latest.claimed_by,
                        training_runs.c.lease_expires == latest.lease_expires,
                    ).values(state=RunState.RUNNING.value, claimed_by=owner[:128],
                             lease_expires=lease, trainer=trainer, finished_at=None,
                             failed_step=None, error="")).rowcount == 1
                    if not taken:
                        return Claim(ClaimOutcome.HELD, latest)
                    outcome = (ClaimOutcome.RESUMED if latest.state is RunState.FAILED
                               else ClaimOutcome.TAKEN_OVER)
                    if outcome is ClaimOutcome.TAKEN_OVER:
                        insert_event(conn, bot_id=None, kind="training.taken_over",
                                     severity="warning", now=now, actor=self._actor,
                                     message=f"training run {latest.run_id}: taken over "
                                             f"from {latest.claimed_by} (its lease ended "
                                             f"{latest.lease_expires.isoformat()})")
        except IntegrityError:
            # Another process inserted this attempt between our read and our insert.
            found = self.latest(bot, timeframe, period)
            return Claim(ClaimOutcome.HELD, found)
        return Claim(outcome, self.latest(bot, timeframe, period))

    def renew(self, run: TrainingRun, owner: str, lease_s: float, now: datetime) -> bool:
        """Extend the lease; False when this process no longer holds the run."""
        with write_transaction(self._engine) as conn:
            return conn.execute(update(training_runs).where(
                training_runs.c.id == run.id, training_runs.c.claimed_by == owner[:128],
                training_runs.c.state == RunState.RUNNING.value,
            ).values(lease_expires=now + timedelta(seconds=lease_s))).rowcount == 1

    # --- steps ------------------------------------------------------------------------

    def step_started(self, run: TrainingRun, step: str, now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            exists = conn.execute(select(training_steps.c.step).where(
                training_steps.c.run_id == run.id, training_steps.c.step == step)).first()
            values = {"state": StepState.RUNNING.value, "started_at": now,
                      "finished_at": None, "seconds": None}
            if exists is None:
                conn.execute(insert(training_steps).values(run_id=run.id, step=step,
                                                           detail={}, **values))
            else:
                conn.execute(update(training_steps).where(
                    training_steps.c.run_id == run.id, training_steps.c.step == step)
                    .values(**values))

    def step_finished(self, run: TrainingRun, step: str, state: StepState,
                      detail: Mapping[str, Any], now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            started = conn.execute(select(training_steps.c.started_at).where(
                training_steps.c.run_id == run.id, training_steps.c.step == step)
            ).scalar_one()
            conn.execute(update(training_steps).where(
                training_steps.c.run_id == run.id, training_steps.c.step == step,
            ).values(state=state.value, finished_at=now, detail=dict(detail),
                     seconds=round((now - started).total_seconds(), 3)))

    # --- ending -----------------------------------------------------------------------

    def finish(self, run: TrainingRun, state: RunState, *, now: datetime, owner: str,
               message: str, error: str = "", failed_step: str | None = None,
               version_id: int | None = None, severity: str = "info") -> bool:
        """End the run and write its `training.<state>` event (the alert: succeeded to the
        brief concern, failed or rejected to infrastructure) in one transaction. False
        when this process no longer holds it."""
        with write_transaction(self._engine) as conn:
            done = conn.execute(update(training_runs).where(
                training_runs.c.id == run.id, training_runs.c.claimed_by == owner[:128],
                training_runs.c.state == RunState.RUNNING.value,
            ).values(state=state.value, finished_at=now, error=_clip(error),
                     failed_step=failed_step,
                     **({} if version_id is None else {"version_id": version_id}))
            ).rowcount == 1
            if done:
                insert_event(conn, bot_id=None, kind=f"training.{state.value}",
                             severity=severity, message=message, now=now, actor=self._actor,
                             code=f"{run.bot}:{run.timeframe}:{failed_step or ''}",
                             data={"run": run.run_id, "bot": run.bot,
                                   "timeframe": run.timeframe, "period": run.period,
                                   "attempt": run.attempt, "step": failed_step,
                                   "error": _clip(error), "version": version_id})
        return done

    def set_version(self, run: TrainingRun, version_id: int) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(update(training_runs).where(training_runs.c.id == run.id)
                         .values(version_id=version_id))

    # --- reading ----------------------------------------------------------------------

    def get(self, run_id: int) -> TrainingRun:
        with read_transaction(self._engine) as conn:
            found = _runs(conn, select(training_runs).where(training_runs.c.id == run_id))
        if not found:
            raise KeyError(run_id)
        return found[0]

    def latest(self, bot: str, timeframe: str, period: str) -> TrainingRun | None:
        with read_transaction(self._engine) as conn:
            return _latest(conn, bot, timeframe, period)

    def runs(self, bot: str | None = None, limit: int = 20) -> list[TrainingRun]:
        """Newest first, with their steps."""
        query = select(training_runs).order_by(training_runs.c.id.desc()).limit(limit)
        if bot is not None:
            query = query.where(training_runs.c.bot == bot)
        with read_transaction(self._engine) as conn:
            return _runs(conn, query)

    def count(self) -> int:
        with read_transaction(self._engine) as conn:
            return int(conn.execute(select(func.count()).select_from(training_runs))
                       .scalar_one())


def _live(run: TrainingRun, now: datetime) -> bool:
    return run.state is RunState.RUNNING and _aware(run.lease_expires) > now


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _latest(conn: Connection, bot: str, timeframe: str, period: str) -> TrainingRun | None:
    found = _runs(conn, select(training_runs).where(
        training_runs.c.bot == bot, training_runs.c.timeframe == timeframe,
        training_runs.c.period == period).order_by(training_runs.c.attempt.desc()).limit(1))
    return found[0] if found else None


def _runs(conn: Connection, query: Any) -> list[TrainingRun]:
    rows = list(conn.execute(query))
    if not rows:
        return []
    steps: dict[int, list[StepRecord]] = {}
    for s in conn.execute(select(training_steps).where(
            training_steps.c.run_id.in_([r.id for r in rows]))
            .order_by(training_steps.c.run_id, training_steps.c.started_at)):
        steps.setdefault(int(s.run_id), []).append(StepRecord(
            s.step, StepState(s.state), s.started_at, s.finished_at, s.seconds,
            dict(s.detail or {})))
    return [TrainingRun(int(r.id), r.bot, r.timeframe, r.period, int(r.attempt), r.trainer,
                        RunState(r.state), r.started_at, r.finished_at, r.failed_step,
                        r.error, r.version_id, r.claimed_by, r.lease_expires,
                        tuple(steps.get(int(r.id), ()))) for r in rows]


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else "…" + text[-(_ERROR_CHARS - 1):]
