"""`fleet model list | show | register | activate | reject | rollback | verify | prune`: the
model registry and its artifact store (docs/registry.md).

Bot processes load this module too: the database, the artifact store and fsspec are
imported inside the commands, never at import.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.artifacts import ArtifactStore
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.store.database import Database
    from fleetkit.store.model_registry import ModelRegistry, ModelVersion

model_app = typer.Typer(help="The model registry: every trained version of each learning "
                        "bot's models, their stored files, activation, rollback.",
                        no_args_is_help=True)

EVALUATION_FILE = "evaluation.json"  # `fleet ml evaluate`'s report beside the model


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


BotArgument = Annotated[str, typer.Argument(help="a bot of the config", show_default=False)]
VersionArgument = Annotated[int, typer.Argument(help="a model version id (`fleet model list`)",
                                                show_default=False)]
TimeframeOption = Annotated[str | None, typer.Option("--timeframe", "-t",
                                                     help="only this timeframe")]
ReasonOption = Annotated[str, typer.Option("--reason", help="why (kept in the audit)",
                                           show_default=False)]


@model_app.command("list")
def list_command(bot: BotArgument, timeframe: TimeframeOption = None,
                 config: ConfigOption = None, db: DbOption = None,
                 as_json: JsonOption = False) -> None:
    """BOT's model versions, newest first: state, policy, when, key metrics, where stored."""
    with _registry(config, db) as (_, registry):
        versions = registry.versions(bot, timeframe)
    if as_json:
        typer.echo(json.dumps({"bot": bot, "versions": [v.as_json() for v in versions]},
                              indent=2))
        return
    if not versions:
        typer.echo(f"{bot}: no model versions" + (f" of {timeframe}" if timeframe else "")
                   + " (register one with `fleet model register`)")
        return
    rows = [("id", "tf", "state", "policy", "created (UTC)", "metrics", "stored at")]
    rows += [(str(v.id), v.timeframe, v.state.value, v.policy,
              v.created_at.strftime("%Y-%m-%d %H:%M"), key_metrics(v.metrics) or "-",
              v.location) for v in versions]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
                   + "  " + row[-1])


@model_app.command("show")
def show_command(version: VersionArgument, config: ConfigOption = None, db: DbOption = None,
                 as_json: JsonOption = False) -> None:
    """Everything about one version: its training, metrics, files and history."""
    with _registry(config, db) as (_, registry):
        found = registry.get(version)
        history = registry.history(version_id=version)
    if as_json:
        typer.echo(json.dumps({**found.as_json(), "history": [h.as_json() for h in history]},
                              indent=2))
        return
    lines = [f"model version {found.id}: {found.bot} {found.timeframe}, {found.state.value}"
             + (f" ({found.reason})" if found.reason else ""),
             f"  policy     {found.policy} ({found.algorithm}), features "
             f"{found.feature_set_hash[:12]}",
             f"  trained on {found.window_bars} bars, {found.window_start.isoformat()} .. "
             f"{found.window_end.isoformat()}",
             f"  created    {found.created_at.isoformat()}"
             + (f", last activated {found.activated_at.isoformat()}"
                if found.activated_at else ""),
             f"  metrics    {json.dumps(found.metrics, sort_keys=True) if found.metrics else '-'}",
             f"  stored at  {found.location}", "  files:"]
    lines += [f"    {f.name}  {f.size:,} bytes  sha256 {f.sha256}" for f in found.files]
    lines.append("  history:")
    lines += [f"    {h.at.strftime('%Y-%m-%d %H:%M:%S')}  {h.action:<11} "
              f"{h.from_state or '-'} -> {h.to_state}"
              + (f" (over version {h.previous_active_id})" if h.previous_active_id else "")
              + f"  by {h.actor}" + (f": {h.reason}" if h.reason else "") for h in history]
    typer.echo("\n".join(lines))


@model_app.command("register")
def register_command(
        bot: BotArgument,
        directory: Annotated[Path, typer.Argument(help="the model directory (`fleet ml "
                                                  "train` writes <models_dir>/<tf>/)",
                                                  show_default=False)],
        timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="the model's "
                                               "timeframe", show_default=False)],
        store: Annotated[str | None, typer.Option(
            "--store", metavar="URL", help="artifact store (default: models.store, else "
            "file://<fleet home>/model-store)")] = None,
        metrics: Annotated[Path | None, typer.Option(
            "--metrics", metavar="FILE", help="JSON metrics or an evaluation report (default: "
            "DIR/evaluation.json when there is one)")] = None,
        reason: Annotated[str, typer.Option("--reason", help="a note for the audit")] = "",
        config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Put a model directory into the artifact store and register it as a candidate. Its
    files must match its manifest's sha256s: a changed file is refused, nothing stored."""
    from fleetkit.artifacts import sha256_file
    from fleetkit.cli.fleet_cmds import actor
    from fleetkit.config.model_store import open_model_store, store_url
    from fleetkit.store.model_registry import MANIFEST, ModelFile, read_manifest

    with _registry(config, db) as (loaded, registry):
        _check_bot(loaded, bot, timeframe)
        if not directory.is_dir():
            fail(f"{directory} is not a directory: give the model directory (`fleet ml train "
                 f"{bot}` writes it)")
        manifest, raw = read_manifest(directory)
        if manifest.timeframe is not None and manifest.timeframe != timeframe:
            fail(f"{directory} holds a {manifest.timeframe} model, not {timeframe}: pass "
                 f"--timeframe {manifest.timeframe}")
        for name, sha in sorted(manifest.files.items()):
            path = directory / name
            if Path(name).name != name or not path.is_file():
                fail(f"{path} is missing: {MANIFEST} lists it; train the model again")
            if (found := sha256_file(path)) != sha:
                fail(f"{path} has sha256 {found}, {MANIFEST} says {sha}: it changed since "
                     "training; refusing to register it (train the model again)")
        summary = _metrics(metrics, directory)
        url = store_url(loaded, store)
        with _artifacts():
            artifacts = open_model_store(loaded, url)
            manifest_sha = _sha256_bytes(raw)
            # Unique per registration (the same directory may be registered twice): two
            # versions never share files, so retiring one never deletes the other's.
            key = (f"{bot}/{timeframe}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-"
                   f"{manifest_sha[:12]}-{uuid.uuid4().hex[:6]}")
            stored = artifacts.put_dir(directory, key, [*sorted(manifest.files), MANIFEST])
        version = registry.register(
            bot, timeframe, manifest, manifest_sha,
            [ModelFile(f.name, f.size, f.sha256) for f in stored], store_url=artifacts.url,
            store_key=key, actor=actor(), metrics=summary, reason=reason)
    if as_json:
        typer.echo(json.dumps(version.as_json(), indent=2))
        return
    size = sum(f.size for f in version.files)
    typer.echo(f"registered {bot} {timeframe} as model version {version.id} (candidate): "
               f"{len(version.files)} files, {size:,} bytes at {version.location}")


@model_app.command("activate")
def activate_command(version: VersionArgument, reason: ReasonOption,
                     config: ConfigOption = None, db: DbOption = None,
                     as_json: JsonOption = False) -> None:
    """Make VERSION the active model of its bot and timeframe (the active one before it is
    archived, in the same transaction); its stored files are verified first."""
    from fleetkit.cli.fleet_cmds import actor

    with _registry(config, db) as (loaded, registry):
        target = registry.get(version)
        _refuse_if_corrupt(loaded, target, "activated")
        before = registry.active(target.bot, target.timeframe)
        done = registry.activate(version, actor=actor(), reason=_reason(reason))
    _changed(done, before, "activated", as_json)


@model_app.command("reject")
def reject_command(version: VersionArgument, reason: ReasonOption,
                   config: ConfigOption = None, db: DbOption = None,
                   as_json: JsonOption = False) -> None:
    """Mark a candidate rejected: it can never be activated."""
    from fleetkit.cli.fleet_cmds import actor

    with _registry(config, db) as (_, registry):
        done = registry.reject(version, actor=actor(), reason=_reason(reason))
    if as_json:
        typer.echo(json.dumps(done.as_json(), indent=2))
        return
    typer.echo(f"model version {done.id} ({done.bot} {done.timeframe}) rejected: {done.reason}")


@model_app.command("rollback")
def rollback_command(
        bot: BotArgument, reason: ReasonOption, timeframe: TimeframeOption = None,
        to: Annotated[int | None, typer.Option("--to", metavar="VERSION", help="an archived "
                                               "version of this bot and timeframe (default: "
                                               "the one active before)")] = None,
        config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Make an earlier version of BOT's model active again (audited). Its stored files are
    re-hashed first; running bots switch at their next bar."""
    from fleetkit.cli.fleet_cmds import actor

    with _registry(config, db) as (loaded, registry):
        frame = timeframe or _only_timeframe(registry, bot)
        before = registry.active(bot, frame)
        done = registry.rollback(bot, frame, actor=actor(), reason=_reason(reason), to=to,
                                 verify=lambda v: _verify_one(loaded, v))
    _changed(done, before, "rolled back to", as_json)


@model_app.command("verify")
def verify_command(bot: Annotated[str | None, typer.Argument(
                       help="only this bot (default: every bot)", show_default=False)] = None,
                   config: ConfigOption = None, db: DbOption = None,
                   as_json: JsonOption = False) -> None:
    """Re-hash every stored file of every version that is not retired against the
    registry's sha256s. Exit 1 when any disagrees, naming it."""
    from fleetkit.store.model_registry import ModelState

    with _registry(config, db) as (loaded, registry):
        versions = [v for v in registry.versions(bot) if v.state is not ModelState.RETIRED]
        results = [(v, _verify_one(loaded, v)) for v in versions]
    bad = [(v, problems) for v, problems in results if problems]
    if as_json:
        typer.echo(json.dumps({"checked": len(results), "ok": not bad, "versions": [
            {"id": v.id, "bot": v.bot, "timeframe": v.timeframe, "state": v.state.value,
             "files": len(v.files), "problems": problems} for v, problems in results]},
            indent=2))
    else:
        for version, problems in results:
            verdict = "ok" if not problems else f"{len(problems)} problem(s)"
            typer.echo(f"version {version.id} {version.bot} {version.timeframe} "
                       f"({version.state.value}): {len(version.files)} files {verdict}")
            for problem in problems:
                typer.echo(f"  {problem}")
        files = sum(len(v.files) for v, _ in results)
        typer.echo(f"{len(results)} versions, {files} files: " + (
            "every file matches the registry" if not bad else
            f"{len(bad)} version(s) disagree with the registry: "
            + ", ".join(str(v.id) for v, _ in bad)))
    if bad:
        raise typer.Exit(1)


@model_app.command("prune")
def prune_command(bot: BotArgument, timeframe: TimeframeOption = None,
                  keep: Annotated[int | None, typer.Option(
                      "--keep", min=0, help="archived versions to keep per timeframe "
                      "(default: models.keep_archived)")] = None,
                  config: ConfigOption = None, db: DbOption = None,
                  as_json: JsonOption = False) -> None:
    """Retire BOT's archived versions beyond the newest KEEP per timeframe and delete their
    stored files (what the training pipeline does after each run)."""
    from fleetkit.cli.fleet_cmds import actor

    with _registry(config, db) as (loaded, registry):
        count = loaded.config.models.keep_archived if keep is None else keep
        frames = [timeframe] if timeframe else sorted({v.timeframe
                                                       for v in registry.versions(bot)})
        retired: list[ModelVersion] = []
        with _artifacts():
            for frame in frames:
                retired += registry.retire_old(
                    bot, frame, keep=count, actor=actor(),
                    delete=lambda v: _store_of(loaded, v).delete(v.store_key))
    if as_json:
        typer.echo(json.dumps({"bot": bot, "retired": [v.id for v in retired]}, indent=2))
        return
    typer.echo(f"{bot}: retired {len(retired)} version(s)"
               + (f" ({', '.join(str(v.id) for v in retired)})" if retired else "")
               + f", keeping the newest {count} archived per timeframe")


# --- helpers ---------------------------------------------------------------------------


@contextmanager
def _registry(config: Path | None, db: str | None
              ) -> Iterator[tuple[LoadedConfig, ModelRegistry]]:
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store import migrate
    from fleetkit.store.database import open_database
    from fleetkit.store.model_registry import ModelRegistry

    loaded = load_config(config)
    database: Database = open_database(database_url(loaded, db),
                                       branches=(migrate.OPERATIONS,), home=loaded.home)
    try:
        yield loaded, ModelRegistry(database.engine)
    finally:
        database.dispose()


@contextmanager
def _artifacts() -> Iterator[None]:
    """Artifact-store failures as one line, exit 2: a store that cannot be reached, a file
    that disagrees."""
    from fleetkit.artifacts import ArtifactError

    try:
        yield
    except ArtifactError as exc:
        fail(str(exc))


_stores: dict[str, ArtifactStore] = {}


def _store_of(loaded: LoadedConfig, version: ModelVersion) -> ArtifactStore:
    """The store a version was put in (not necessarily today's models.store)."""
    from fleetkit.config.model_store import open_model_store

    if version.store_url not in _stores:
        _stores[version.store_url] = open_model_store(loaded, version.store_url)
    return _stores[version.store_url]


def _verify_one(loaded: LoadedConfig, version: ModelVersion) -> list[str]:
    with _artifacts():
        return _store_of(loaded, version).verify(version.store_key, version.expected)


def _refuse_if_corrupt(loaded: LoadedConfig, version: ModelVersion, doing: str) -> None:
    problems = _verify_one(loaded, version)
    if problems:
        fail(f"model version {version.id} not {doing}: its stored files disagree with the "
             f"registry: {problems[0]}")


def _check_bot(loaded: LoadedConfig, bot: str, timeframe: str) -> None:
    from fleetkit.artifacts.port import check_segment
    from fleetkit.config.ml import ml_timeframes

    settings = next((b for b in loaded.config.bots if b.name == bot), None)
    if settings is None:
        known = ", ".join(b.name for b in loaded.config.bots) or "none"
        fail(f"no bot named {bot!r} in {loaded.source} (bots: {known})")
    if settings.ml is not None:
        frames = ml_timeframes(settings, loaded.config.defaults.bar_interval)
        if timeframe not in frames:
            fail(f"{bot} has no {timeframe} model: its ml.timeframes are {', '.join(frames)}")
    check_segment("the bot name", bot)
    check_segment("the timeframe", timeframe)


def _only_timeframe(registry: ModelRegistry, bot: str) -> str:
    frames = sorted({v.timeframe for v in registry.versions(bot)})
    if not frames:
        fail(f"{bot} has no model versions (see `fleet model list {bot}`)")
    if len(frames) > 1:
        fail(f"{bot} has models of {', '.join(frames)}: pass --timeframe")
    return frames[0]


def _reason(reason: str) -> str:
    if not reason.strip():
        fail("--reason must say why (it is kept in the audit)")
    return reason.strip()


def _changed(done: ModelVersion, before: ModelVersion | None, what: str,
             as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**done.as_json(), "previous_active":
                               before.id if before else None}, indent=2))
        return
    typer.echo(f"{done.bot} {done.timeframe}: {what} model version {done.id}"
               + (f" (version {before.id} archived)" if before and before.id != done.id
                  else "") + "; running bots switch at their next bar")


def key_metrics(metrics: dict[str, Any]) -> str:
    """A few numbers for the list: the evaluation's return, Sharpe and drawdown first."""
    preferred = ("total_return", "sharpe", "max_drawdown")
    chosen = [k for k in preferred if k in metrics]
    chosen += [k for k, v in sorted(metrics.items())
               if k not in chosen and isinstance(v, int | float) and not isinstance(v, bool)]
    return " ".join(f"{k}={_short(metrics[k])}" for k in chosen[:3])


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics(path: Path | None, directory: Path) -> dict[str, Any]:
    """The metrics to keep: a JSON object's scalars, or an evaluation report's summary."""
    chosen = path or (directory / EVALUATION_FILE)
    if path is None and not chosen.is_file():
        return {}
    try:
        body = json.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"--metrics {chosen}: not a readable JSON object ({exc})")
    if not isinstance(body, dict):
        fail(f"--metrics {chosen}: not a JSON object")
    strategies = body.get("metrics")
    if isinstance(strategies, dict) and isinstance(strategies.get("policy"), dict):
        summary = {k: v for k, v in strategies["policy"].items() if _scalar(v)}
        bench = strategies.get("buy_and_hold")
        if isinstance(bench, dict) and _scalar(bench.get("total_return")):
            summary["buy_and_hold_return"] = bench["total_return"]
        summary.update({k: body[k] for k in ("beats_buy_and_hold", "beats_flat", "collapsed",
                                             "start", "end") if k in body})
        return summary
    return {k: v for k, v in body.items() if _scalar(v)}


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
