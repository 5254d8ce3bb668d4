"""The dashboard's read-only window on the training pipeline and the model registry (the
operations branch), for the Models & training page: the newest training runs with their
steps, the active version of every bot and timeframe beside the one active before it,
rejections (runs the pipeline rejected, versions rejected in the registry) and rollbacks.

Runs and versions are read through the stores' own readers (TrainingRunStore,
ModelRegistry), shared with `fleet train status` and `fleet model`; the history queries
below are narrowed in SQL (an action, newest first, a limit). Nothing here writes: on
PostgreSQL the reader group may SELECT these tables (operations_0002, operations_0003).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.model_registry import ModelRegistry, ModelState, ModelVersion
from fleetkit.store.schema import model_history, model_versions, training_runs
from fleetkit.store.training_runs import RunState, TrainingRun, TrainingRunStore

RUNS_LIMIT = 50
EVENTS_LIMIT = 100
# What an activation records its predecessor under (model_history.previous_active_id).
_MADE_ACTIVE = ("activated", "rolled_back")


@dataclass(frozen=True, slots=True)
class ActiveModel:
    """The active version of one bot and timeframe, and the version active before it
    (None for the first), each with the metrics the evaluation gate measured."""

    version: ModelVersion
    previous: ModelVersion | None
    how: str  # "activated" or "rolled_back": how the active version became active


@dataclass(frozen=True, slots=True)
class Rejection:
    at: datetime
    bot: str
    timeframe: str
    what: str  # "run <run id>" (the pipeline) or "version <id>" (the registry)
    step: str  # the run's step that rejected it; "" for the registry
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class Rollback:
    at: datetime
    bot: str
    timeframe: str
    to_version: int
    from_version: int | None
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class TrainingView:
    runs: tuple[TrainingRun, ...]  # newest first, with their steps
    active: tuple[ActiveModel, ...]  # by bot, then timeframe
    rejections: tuple[Rejection, ...]  # newest first
    rollbacks: tuple[Rollback, ...]  # newest first

    @property
    def empty(self) -> bool:
        return not (self.runs or self.active or self.rejections or self.rollbacks)


class TrainingQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._runs = TrainingRunStore(engine)
        self._registry = ModelRegistry(engine)

    def view(self, runs: int = RUNS_LIMIT, events: int = EVENTS_LIMIT) -> TrainingView:
        return TrainingView(runs=tuple(self._runs.runs(limit=runs)),
                            active=tuple(self.active_models()),
                            rejections=tuple(self.rejections(events)),
                            rollbacks=tuple(self.rollbacks(events)))

    def active_models(self) -> list[ActiveModel]:
        actives = sorted(self._registry.versions(states=(ModelState.ACTIVE,)),
                         key=lambda v: (v.bot, v.timeframe))
        if not actives:
            return []
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(model_history.c.version_id, model_history.c.action,
                                       model_history.c.previous_active_id)
                                .where(model_history.c.version_id.in_([v.id for v in actives]),
                                       model_history.c.action.in_(_MADE_ACTIVE))
                                .order_by(model_history.c.id))
            made: dict[int, tuple[str, int | None]] = {  # the latest activation wins
                int(r.version_id): (str(r.action), r.previous_active_id) for r in rows}
        found = []
        for version in actives:
            how, before = made.get(version.id, ("activated", None))
            previous = None if before is None else self._version(int(before))
            found.append(ActiveModel(version, previous, how))
        return found

    def rejections(self, limit: int = EVENTS_LIMIT) -> list[Rejection]:
        with read_transaction(self._engine) as conn:
            runs = conn.execute(
                select(training_runs).where(training_runs.c.state == RunState.REJECTED.value)
                .order_by(training_runs.c.id.desc()).limit(limit)).all()
            versions = conn.execute(
                select(model_history).where(model_history.c.action == "rejected")
                .order_by(model_history.c.id.desc()).limit(limit)).all()
        found = [Rejection(r.finished_at or r.started_at, r.bot, r.timeframe,
                           f"run {_run_id(r)}", r.failed_step or "", r.error, r.claimed_by)
                 for r in runs]
        found += [Rejection(h.at, h.bot, h.timeframe, f"version {h.version_id}", "",
                            h.reason, h.actor) for h in versions]
        found.sort(key=lambda r: r.at, reverse=True)
        return found[:limit]

    def rollbacks(self, limit: int = EVENTS_LIMIT) -> list[Rollback]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(model_history).where(model_history.c.action == "rolled_back")
                .order_by(model_history.c.id.desc()).limit(limit)).all()
        return [Rollback(r.at, r.bot, r.timeframe, int(r.version_id), r.previous_active_id,
                         r.actor, r.reason) for r in rows]

    def _version(self, version_id: int) -> ModelVersion | None:
        with read_transaction(self._engine) as conn:
            exists = conn.execute(select(model_versions.c.id)
                                  .where(model_versions.c.id == version_id)).first()
        return None if exists is None else self._registry.get(version_id)


def _run_id(row: Any) -> str:
    """TrainingRun.run_id for a bare row."""
    period = str(row.period).replace(":", "").replace("T", "-")
    return f"{row.bot}-{row.timeframe}-{period}-a{row.attempt}"
