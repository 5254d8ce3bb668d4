"""One training run of a (bot, timeframe, period), step by step (docs/pipeline.md, "Runs and
steps").

Every step is recorded before it starts and after it ends (store.training_runs), and each
is idempotent, so a process killed at any instant leaves a run that the next `fleet train
run` takes over (once its lease has passed) and continues from its last step done; a
period that succeeded or was rejected is skipped, unless forced (a new attempt).

A step that refuses the model (a checksum that differs, a failed evaluation gate) raises
`ModelRejected`: the run ends `rejected`. Any other error ends it `failed`, with the step
and the reason; both alert the infrastructure concern, a success the brief. The active
model is only ever changed by the `activate` step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import BotSettings
from fleetkit.config.pipeline import BotTrainingSettings
from fleetkit.core.errors import FleetError, UserError
from fleetkit.pipeline.trainers import Backoff, Trainer
from fleetkit.store.model_registry import ModelRegistry
from fleetkit.store.training_runs import (
    Claim,
    ClaimOutcome,
    RunState,
    StepState,
    TrainingRun,
    TrainingRunStore,
)

STEPS = ("export", "ship", "train", "hash", "fetch", "evaluate", "archive", "activate",
         "publish")
RUNS_FOLDER = "training/runs"  # <fleet home>/training/runs/<run id>/
TRAIN_LEASE_MARGIN_S = 300.0  # the train step's lease: its timeout and this


class ModelRejected(FleetError):
    """The trained model must not be activated (checksum, gate): the run ends rejected.
    `detail` (the gate's measurements) is recorded with the step."""

    def __init__(self, message: str, detail: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = dict(detail or {})


class StepSkipped(Exception):
    """The step has nothing to do here (publish without a remote)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# (step, state, run): a step "started", "done", "skipped" or "failed".
ProgressHook = Callable[[str, str, TrainingRun], None]
LineHook = Callable[[str, str], None]


@dataclass
class RunContext:
    """Everything the steps use; built by the CLI (or a test)."""

    loaded: LoadedConfig
    bot: BotSettings
    timeframe: str
    settings: BotTrainingSettings
    trainer: Trainer
    runs: TrainingRunStore
    registry: ModelRegistry
    store_url: str
    backoff: Backoff
    attempts: int
    actor: str
    db: str | None = None
    market_data_db: str | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    on_step: ProgressHook | None = None
    on_line: LineHook | None = None
    # Called after each step is recorded done: tests inject a kill at a step boundary.
    between_steps: Callable[[str], None] | None = None

    @property
    def home(self) -> Path:
        return self.loaded.home

    @property
    def models_dir(self) -> Path:
        ml = self.bot.ml
        return Path((ml and ml.models_dir) or self.home / "models" / self.bot.name)

    def run_dir(self, run: TrainingRun) -> Path:
        return self.home / RUNS_FOLDER / run.run_id


@dataclass(frozen=True, slots=True)
class RunResult:
    claim: Claim
    run: TrainingRun | None

    @property
    def state(self) -> str:
        if self.claim.outcome is ClaimOutcome.DONE:
            return "skipped"
        if self.claim.outcome is ClaimOutcome.HELD:
            return "held"
        return self.run.state.value if self.run is not None else "unknown"


def period_of(moment: datetime, hours: int) -> str:
    """The period `moment` falls in: the UTC date, or the start of its `hours` slot."""
    moment = moment.astimezone(UTC)
    if hours >= 24:
        return moment.strftime("%Y-%m-%d")
    slot = moment.replace(hour=moment.hour - moment.hour % hours, minute=0, second=0,
                          microsecond=0)
    return slot.strftime("%Y-%m-%dT%H:%MZ")


def period_named(text: str, hours: int, now: datetime) -> str:
    """The period `text` names: a moment in it — what the scheduler passes a job in
    FLEET_JOB_PERIOD, its fire time (`2026-12-07T10:45:00Z`) — or a period's own name
    (`2026-12-07`, `2026-12-07T14:00Z`); a time without a zone is UTC. A period that has not
    begun by `now` is refused (UserError: exit 2)."""
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise UserError(f"--period {text!r}: give a UTC date (2026-12-07), a period start "
                        "(2026-12-07T14:00Z) or a moment in it (2026-12-07T10:45:00Z)"
                        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > now:
        at = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        raise UserError(f"--period {text!r} is in the future (now {at} UTC): a period is "
                        "trained once it has begun")
    return period_of(moment, hours)


def run_training(ctx: RunContext, *, period: str | None = None,
                 force: bool = False) -> RunResult:
    """Claim the period and run (or resume) it to its end; what became of it."""
    from fleetkit.pipeline import steps

    now = ctx.clock()
    hours = ctx.settings.period_hours
    chosen = period_of(now, hours) if period is None else period_named(period, hours, now)
    claim = ctx.runs.claim(ctx.bot.name, ctx.timeframe, chosen, trainer=ctx.trainer.name,
                           owner=ctx.owner, lease_s=_lease(ctx, "export"), now=now,
                           force=force)
    if not claim.mine or claim.run is None:
        return RunResult(claim, claim.run)
    run = claim.run
    for name in STEPS:
        run = ctx.runs.get(run.id)
        if run.done(name):
            continue
        if not ctx.runs.renew(run, ctx.owner, _lease(ctx, name), ctx.clock()):
            break  # taken over meanwhile: the other process finishes it
        ctx.runs.step_started(run, name, ctx.clock())
        _tell(ctx, name, "started", run)
        try:
            detail = steps.STEP_FUNCTIONS[name](ctx, run)
        except StepSkipped as skipped:
            ctx.runs.step_finished(run, name, StepState.SKIPPED, {"reason": skipped.reason},
                                   ctx.clock())
            _tell(ctx, name, "skipped", run)
        except ModelRejected as exc:
            _end_badly(ctx, run, name, RunState.REJECTED, str(exc), exc.detail)
            break
        except Exception as exc:
            # Recorded and alerted, then raised: the CLI says it in one line (a trainer
            # that does not answer or refuses the key: exit 2).
            _end_badly(ctx, run, name, RunState.FAILED, _reason(exc))
            raise
        else:
            ctx.runs.step_finished(run, name, StepState.DONE, detail, ctx.clock())
            _tell(ctx, name, "done", run)
        if ctx.between_steps is not None:
            ctx.between_steps(name)
    else:
        run = ctx.runs.get(run.id)
        version = run.version_id
        ctx.runs.finish(run, RunState.SUCCEEDED, now=ctx.clock(), owner=ctx.owner,
                        version_id=version,
                        message=f"training {run.bot} {run.timeframe} ({run.period}): model "
                                f"version {version} activated, trained on {run.trainer}")
    return RunResult(claim, ctx.runs.get(run.id))


def _lease(ctx: RunContext, step: str) -> float:
    lease = ctx.loaded.config.training.lease_s
    if step in ("train", "evaluate"):
        return lease + ctx.settings.timeout_s + TRAIN_LEASE_MARGIN_S
    return lease


def _end_badly(ctx: RunContext, run: TrainingRun, step: str, state: RunState,
               reason: str, detail: Mapping[str, Any] | None = None) -> None:
    ctx.runs.step_finished(run, step, StepState.FAILED, {**(detail or {}), "error": reason},
                           ctx.clock())
    _tell(ctx, step, "failed", run)
    verb = "rejected the model" if state is RunState.REJECTED else "failed"
    ctx.runs.finish(run, state, now=ctx.clock(), owner=ctx.owner, error=reason,
                    failed_step=step, severity="warning" if state is RunState.REJECTED
                    else "error",
                    message=f"training {run.bot} {run.timeframe} ({run.period}) {verb} at "
                            f"{step}: {reason}; the active model is unchanged"
                            if step != "publish" else
                            f"training {run.bot} {run.timeframe} ({run.period}): publishing "
                            f"failed: {reason} (the new model is active)")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, FleetError) else f"{type(exc).__name__}: {text}"


def _tell(ctx: RunContext, step: str, state: str, run: TrainingRun) -> None:
    if ctx.on_step is not None:
        ctx.on_step(step, state, run)
