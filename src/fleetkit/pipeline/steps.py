"""The nine steps of a training run (docs/pipeline.md, "Runs and steps"). Each takes the run's
context and the run (with the details earlier steps recorded) and returns its own detail,
recorded when it ends. Each is idempotent: run again after a kill, it does the same work
again or finds it done (the archive finds the version it registered by its store key), so
nothing is done twice and nothing is lost.

Files: `<fleet home>/training/runs/<run id>/` here (export/, model/, active/), and
`<trainer root>/<run id>/` on the trainer (bars.npz, fleet.yaml, export.json, models/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from fleetkit.artifacts import sha256_file
from fleetkit.core.errors import FleetError
from fleetkit.pipeline.runs import ModelRejected, RunContext, StepSkipped
from fleetkit.pipeline.trainers import ml_train_argv, require_free_bytes, with_retries
from fleetkit.store.training_runs import TrainingRun

T = TypeVar("T")
EXPORT_FORMAT = "fleetkit.pipeline.export/1"
BARS, CONFIG, EXPORT_MANIFEST = "bars.npz", "fleet.yaml", "export.json"
SHIPPED = (BARS, CONFIG, EXPORT_MANIFEST)
TRAINER_MODELS = "models"  # pipeline.trainer_config.TRAINER_MODELS_DIR, under the run folder
_FREE_MARGIN = 256 * 1024 * 1024  # room for the model and the training's own files


def _retry(ctx: RunContext, op: Callable[[], T]) -> T:
    return with_retries(op, ctx.attempts, ctx.backoff)


def _detail(run: TrainingRun, step: str) -> dict[str, Any]:
    found = run.step(step)
    if found is None:
        raise FleetError(f"run {run.run_id}: step {step} has no record; run it again with "
                         "--force")
    return found.detail


def export(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """The bot's training bars (up to the run's start) into a compressed file, the
    trainer's config beside it, and a manifest of their sha256s."""
    from fleetkit.ml.bar_file import write_bar_file
    from fleetkit.ml.bot_data import training_bars
    from fleetkit.pipeline.trainer_config import trainer_config_text

    end = run.started_at
    bars = training_bars(ctx.loaded, ctx.bot, ctx.timeframe, end, db=ctx.db,
                         market_data_db=ctx.market_data_db)
    folder = ctx.run_dir(run) / "export"
    folder.mkdir(parents=True, exist_ok=True)
    write_bar_file(folder / BARS, bars, end)
    (folder / CONFIG).write_text(trainer_config_text(ctx.loaded, ctx.bot.name),
                                 encoding="utf-8")
    files = {name: sha256_file(folder / name) for name in (BARS, CONFIG)}
    manifest = {"format": EXPORT_FORMAT, "bot": ctx.bot.name, "timeframe": ctx.timeframe,
                "instrument": bars.instrument, "source": bars.source,
                "end": end.isoformat(), "bars": len(bars), "files": files}
    (folder / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return {"bars": len(bars), "source": bars.source, "end": end.isoformat(),
            "bytes": sum((folder / n).stat().st_size for n in SHIPPED), "files": files}


def ship(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """The export uploaded to the trainer and its sha256s checked there, before training."""
    folder = ctx.run_dir(run) / "export"
    trainer, rid = ctx.trainer, run.run_id
    remote_root = _retry(ctx, lambda: trainer.prepare(rid))
    size = sum((folder / name).stat().st_size for name in SHIPPED)
    _retry(ctx, lambda: require_free_bytes(trainer, size + _FREE_MARGIN))
    for name in SHIPPED:
        _retry(ctx, lambda name=name: trainer.upload(folder / name, f"{rid}/{name}"))  # type: ignore[misc]
    expected = _detail(run, "export")["files"]
    there = _retry(ctx, lambda: trainer.sha256([f"{rid}/{n}" for n in expected]))
    for name, sha in expected.items():
        if there.get(f"{rid}/{name}") != sha:
            raise FleetError(f"{name} arrived on the trainer {trainer.name} with sha256 "
                             f"{there.get(f'{rid}/{name}')}, the export's manifest says {sha}:"
                             " changed in transit (the next run ships it again)")
    return {"remote": remote_root, "bytes": size}


def train(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """`fleet ml train BOT -t TF --bars … --json` on the trainer, lines streamed."""
    remote_root = _detail(run, "ship")["remote"]
    argv = ml_train_argv(ctx.trainer, ctx.bot.name, config_path=f"{remote_root}/{CONFIG}",
                         timeframe=ctx.timeframe, extra=["--bars", f"{remote_root}/{BARS}"])
    # FLEET_HOME is the run's folder: the config's relative models_dir lands there.
    result = _retry(ctx, lambda: ctx.trainer.run(
        argv, timeout_s=ctx.settings.timeout_s, on_line=ctx.on_line, cwd=run.run_id,
        env={"FLEET_HOME": remote_root}))
    report = _json_object(result.stdout_tail, "fleet ml train --json")
    models = report.get("models") or [{}]
    return {"seconds": round(result.seconds, 3), "model": f"{run.run_id}/{TRAINER_MODELS}/"
            f"{ctx.timeframe}", "report": models[0]}


def hash_files(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """The sha256 of every file the training produced, computed on the trainer."""
    model = _detail(run, "train")["model"]
    names = _retry(ctx, lambda: ctx.trainer.list_files(model))
    if not names:
        raise FleetError(f"the trainer {ctx.trainer.name} has no files under {model}: the "
                         "training wrote no model")
    hashes = _retry(ctx, lambda: ctx.trainer.sha256(names))
    return {"model": model, "files": {n.removeprefix(model + "/"): sha
                                      for n, sha in sorted(hashes.items())}}


def fetch(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """Every file downloaded and its sha256 checked against the trainer's: a file changed
    in transit rejects the model."""
    from fleetkit.store.model_registry import read_manifest

    hashed = _detail(run, "hash")
    target = ctx.run_dir(run) / "model"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, expected in hashed["files"].items():
        local = target / name
        local.parent.mkdir(parents=True, exist_ok=True)
        _retry(ctx, lambda name=name, local=local: ctx.trainer.download(  # type: ignore[misc]
            f"{hashed['model']}/{name}", local))
        found = sha256_file(local)
        if found != expected:
            raise ModelRejected(f"{name} arrived with sha256 {found}, the trainer "
                                f"{ctx.trainer.name} computed {expected}: changed in transit")
    manifest, _ = read_manifest(target)
    for name, expected in manifest.files.items():
        if not (target / name).is_file() or sha256_file(target / name) != expected:
            raise ModelRejected(f"{name} does not match the model's manifest: the training "
                                "wrote an inconsistent model")
    return {"files": len(hashed["files"]),
            "bytes": sum(p.stat().st_size for p in target.rglob("*") if p.is_file())}


def evaluate(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """The candidate and the active version on the same held-out bars (a subprocess: this
    process never imports the learning stack), then the gate's thresholds."""
    from fleetkit.pipeline.gate import gate_failures

    folder = ctx.run_dir(run)
    active = ctx.registry.active(ctx.bot.name, ctx.timeframe)
    argv = [sys.executable, "-m", "fleetkit.ml.gate", "--config",
            str(folder / "export" / CONFIG), "--bot", ctx.bot.name, "--timeframe",
            ctx.timeframe, "--bars", str(folder / "export" / BARS), "--candidate",
            str(folder / "model"), "--device", "cpu"]
    if active is not None:
        from fleetkit.config.model_store import open_model_store

        # Verified on the way (get_dir checks every sha256 before it is in place).
        open_model_store(ctx.loaded, active.store_url).get_dir(
            active.store_key, folder / "active", active.expected)
        argv += ["--active", str(folder / "active")]
    try:
        done = subprocess.run(argv,  # noqa: S603 - argv built here, no shell
                              capture_output=True, text=True, check=False,
                              timeout=ctx.settings.timeout_s,
                              env={**_environ(), "FLEET_HOME": str(folder)})
    except subprocess.TimeoutExpired:
        raise FleetError(f"the evaluation ran past {ctx.settings.timeout_s:.0f} s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise FleetError(f"the evaluation failed: {lines[-1][:300]}")
    measured = _json_object(done.stdout, "python -m fleetkit.ml.gate")
    detail = {"measured": measured, "active_version": None if active is None else active.id}
    failures = gate_failures(ctx.settings.gate, measured)
    if failures:
        raise ModelRejected("the evaluation gate: " + "; ".join(failures), detail)
    return detail


def archive(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """Stored in the artifact store and registered as a candidate (once: a rerun finds it
    by its key), then retention (models.keep_archived)."""
    from fleetkit.config.model_store import open_model_store
    from fleetkit.store.model_registry import MANIFEST, ModelFile, read_manifest

    model = ctx.run_dir(run) / "model"
    manifest, raw = read_manifest(model)
    manifest_sha = _sha256(raw)
    bot, frame = ctx.bot.name, ctx.timeframe
    key = f"{bot}/{frame}/{run.run_id}-{manifest_sha[:12]}"
    store = open_model_store(ctx.loaded, ctx.store_url)
    existing = [v for v in ctx.registry.versions(bot, frame) if v.store_key == key]
    if existing:
        version = existing[0]
    else:
        stored = store.put_dir(model, key, [*sorted(manifest.files), MANIFEST])
        metrics = _detail(run, "evaluate")["measured"]["candidate"]
        version = ctx.registry.register(
            bot, frame, manifest, manifest_sha,
            [ModelFile(f.name, f.size, f.sha256) for f in stored], store_url=store.url,
            store_key=key, actor=ctx.actor, metrics=metrics,
            reason=f"training run {run.run_id}")
    ctx.runs.set_version(run, version.id)
    retired = ctx.registry.retire_old(
        bot, frame, keep=ctx.loaded.config.models.keep_archived, actor=ctx.actor,
        delete=lambda v: open_model_store(ctx.loaded, v.store_url).delete(v.store_key))
    return {"version_id": version.id, "key": key, "retired": [v.id for v in retired]}


def activate(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """The version made active (its stored files verified first), its files put where the
    bot reads them, older local copies pruned (models.keep_local)."""
    from fleetkit.config.model_store import open_model_store
    from fleetkit.pipeline.local_models import keep_version, make_current, prune, version_dir
    from fleetkit.store.model_registry import MANIFEST, ModelState, read_manifest

    version = ctx.registry.get(int(_detail(run, "archive")["version_id"]))
    model = ctx.run_dir(run) / "model"
    manifest, _ = read_manifest(model)
    local = version_dir(ctx.models_dir, ctx.timeframe, version.id)
    keep_version(model, [*manifest.files, MANIFEST], local)
    before = ctx.registry.active(ctx.bot.name, ctx.timeframe)
    if version.state is ModelState.CANDIDATE:
        problems = open_model_store(ctx.loaded, version.store_url).verify(
            version.store_key, version.expected)
        if problems:
            raise FleetError(f"version {version.id}'s stored files disagree with the "
                             f"registry: {problems[0]}")
        ctx.registry.activate(version.id, actor=ctx.actor,
                              reason=f"training run {run.run_id}")
    elif version.state is not ModelState.ACTIVE:
        raise FleetError(f"version {version.id} is {version.state.value} (changed by hand "
                         "since it was archived): not activated")
    make_current(ctx.models_dir, ctx.timeframe, local)
    pruned = prune(ctx.models_dir, ctx.timeframe, ctx.loaded.config.models.keep_local,
                   version.id)
    return {"version_id": version.id, "local": str(local), "pruned": pruned,
            "previous_active": None if before is None or before.id == version.id
            else before.id}


def publish(ctx: RunContext, run: TrainingRun) -> dict[str, Any]:
    """The model files pushed to `training.publish.remote`, when one is configured."""
    from fleetkit.pipeline.local_models import version_dir
    from fleetkit.pipeline.publish import publish as push
    from fleetkit.store.model_registry import MANIFEST, read_manifest

    settings = ctx.loaded.config.training.publish
    if settings.remote is None:
        raise StepSkipped("no training.publish.remote configured")
    version_id = int(_detail(run, "archive")["version_id"])
    local = version_dir(ctx.models_dir, ctx.timeframe, version_id)
    manifest, _ = read_manifest(local)
    commit = push(ctx.home / "training" / "publish", settings.remote, settings.branch,
                  ctx.bot.name, ctx.timeframe, local, [*manifest.files, MANIFEST],
                  f"{ctx.bot.name} {ctx.timeframe}: model version {version_id} "
                  f"(training run {run.run_id})")
    return {"commit": commit, "remote": settings.remote, "branch": settings.branch}


STEP_FUNCTIONS: dict[str, Callable[[RunContext, TrainingRun], dict[str, Any]]] = {
    "export": export, "ship": ship, "train": train, "hash": hash_files, "fetch": fetch,
    "evaluate": evaluate, "archive": archive, "activate": activate, "publish": publish}


def _json_object(text: str, what: str) -> dict[str, Any]:
    """The JSON object a command printed (its output may end with a newline or more)."""
    start = text.find("{")
    try:
        body = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise FleetError(f"{what} printed no JSON report (its output ends: "
                         f"{text.strip()[-200:]!r})")
    return body


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
