"""`fleet train run | status`: the training pipeline (docs/pipeline.md, "Runs and steps").

Bot processes load this module too: the pipeline, the database and the learning stack are
imported inside the commands, never at import.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.pipeline.runs import RunContext, RunResult
    from fleetkit.store.database import Database
    from fleetkit.store.training_runs import TrainingRun

train_app = typer.Typer(help="The training pipeline: export, train on a trainer, verify, "
                        "evaluate, archive and activate a learning bot's model.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


@train_app.command("run")
def run_command(
        bot: Annotated[str, typer.Argument(help="a bot of the config with an ml: section",
                                           show_default=False)],
        timeframe: Annotated[str | None, typer.Option(
            "--timeframe", "-t", help="one of the bot's ml.timeframes (default: each)")
        ] = None,
        force: Annotated[bool, typer.Option(
            "--force", help="run a period that already succeeded or was rejected again, as "
            "a new attempt")] = False,
        trainer: Annotated[str | None, typer.Option(
            "--trainer", help="a name of training.trainers (default: the bot's, "
            "training.trainer, else the only one)")] = None,
        period: Annotated[str | None, typer.Option(
            "--period", envvar="FLEET_JOB_PERIOD", show_envvar=False,
            help="the period to train, named by a moment in it (2026-12-07T10:45:00Z) or "
            "itself (2026-12-07, 2026-12-07T14:00Z); default: the current one. A scheduled "
            "job passes its fire time (FLEET_JOB_PERIOD), so a catch-up trains the missed "
            "period")] = None,
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False) -> None:
    """Run this period's training of BOT (each timeframe in turn): export, ship, train,
    hash, fetch, evaluate, archive, activate, publish. A period already done is skipped; a
    run that was killed is resumed from its last step done."""
    from fleetkit.config.loader import load_config
    from fleetkit.ml.bot_data import bot_settings, check_timeframe

    loaded = load_config(config)
    settings = bot_settings(loaded, bot)
    if timeframe is not None:
        check_timeframe(loaded, settings, timeframe)
    from fleetkit.config.ml import ml_timeframes

    frames = [timeframe] if timeframe else ml_timeframes(settings,
                                                         loaded.config.defaults.bar_interval)
    if period is not None:  # a bad one in one line before anything is opened
        from datetime import UTC, datetime

        from fleetkit.pipeline.runs import period_named

        period_named(period, loaded.config.training.for_bot(bot).period_hours,
                     datetime.now(UTC))
    results: list[RunResult] = []
    with _database(loaded, db) as database:
        for frame in frames:
            ctx = _context(loaded, database, bot, frame, trainer, db, market_data_db,
                           quiet=as_json)
            results.append(_run_one(ctx, force, as_json, period))
    if as_json:
        typer.echo(json.dumps({"bot": bot, "runs": [
            {"outcome": r.state, **(r.run.as_json() if r.run else {})} for r in results]},
            indent=2))
    if any(r.state in ("failed", "rejected") for r in results):
        raise typer.Exit(1)


@train_app.command("status")
def status_command(
        bot: Annotated[str | None, typer.Argument(help="only this bot", show_default=False)
                       ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, help="runs shown")] = 20,
        config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Training runs, newest first, with their steps, durations and failures."""
    from fleetkit.config.loader import load_config
    from fleetkit.store.training_runs import TrainingRunStore

    loaded = load_config(config)
    with _database(loaded, db) as database:
        runs = TrainingRunStore(database.engine).runs(bot, limit)
    if as_json:
        typer.echo(json.dumps({"runs": [r.as_json() for r in runs]}, indent=2))
        return
    if not runs:
        typer.echo("no training runs yet (`fleet train run BOT`)")
        return
    for run in runs:
        typer.echo(_run_line(run))
        for step in run.steps:
            seconds = "-" if step.seconds is None else f"{step.seconds:.1f} s"
            error = step.detail.get("error")
            typer.echo(f"    {step.step:<9} {step.state.value:<8} {seconds:>9}"
                       + (f"  {error}" if error else ""))


# --- helpers ---------------------------------------------------------------------------


def _run_line(run: TrainingRun) -> str:
    took = ("" if run.finished_at is None else
            f" in {(run.finished_at - run.started_at).total_seconds():.1f} s")
    version = f", version {run.version_id}" if run.version_id else ""
    failure = f" at {run.failed_step}: {run.error}" if run.failed_step else ""
    return (f"{run.id}  {run.bot} {run.timeframe} {run.period} attempt {run.attempt} on "
            f"{run.trainer}: {run.state.value}{took}{version}{failure}")


@contextmanager
def _database(loaded: LoadedConfig, db: str | None) -> Iterator[Database]:
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store import migrate
    from fleetkit.store.database import open_database

    # Trading too: the runs' alerts are events, and events live there.
    database = open_database(database_url(loaded, db),
                             branches=(migrate.TRADING, migrate.OPERATIONS), home=loaded.home)
    try:
        yield database
    finally:
        database.dispose()


def _context(loaded: LoadedConfig, database: Database, bot: str, frame: str,
             trainer_name: str | None, db: str | None, market_data_db: str | None, *,
             quiet: bool) -> RunContext:
    from fleetkit.cli.fleet_cmds import actor
    from fleetkit.config.model_store import store_url
    from fleetkit.ml.bot_data import bot_settings
    from fleetkit.pipeline.runs import RunContext
    from fleetkit.pipeline.trainer_factory import retry_backoff, trainer_named
    from fleetkit.store.model_registry import ModelRegistry
    from fleetkit.store.training_runs import TrainingRunStore

    training = loaded.config.training
    name = trainer_name or training.trainer_for(bot)
    who = actor()
    return RunContext(
        loaded=loaded, bot=bot_settings(loaded, bot), timeframe=frame,
        settings=training.for_bot(bot), trainer=trainer_named(training, name,
                                                               home=loaded.home),
        runs=TrainingRunStore(database.engine, actor=who),
        registry=ModelRegistry(database.engine), store_url=store_url(loaded),
        backoff=retry_backoff(training), attempts=training.retries.attempts, actor=who,
        db=db, market_data_db=market_data_db, on_step=None if quiet else _show_step,
        on_line=None if quiet else _show_line)


def _run_one(ctx: RunContext, force: bool, as_json: bool,
             period: str | None = None) -> RunResult:
    from fleetkit.pipeline.runs import run_training

    label = f"{ctx.bot.name} {ctx.timeframe}"
    if not as_json:
        typer.echo(f"training {label} on {ctx.trainer.name} ({ctx.trainer.describe()})",
                   err=True)
    result = run_training(ctx, period=period, force=force)
    if not as_json:
        typer.echo(_summary(label, result))
    return result


def _summary(label: str, result: RunResult) -> str:
    run = result.run
    if run is None:
        return f"{label}: nothing recorded"
    if result.state == "skipped":
        return (f"{label}: period {run.period} already {run.state.value} (attempt "
                f"{run.attempt}); skipped — --force runs it again")
    if result.state == "held":
        return (f"{label}: period {run.period} is being run by {run.claimed_by} (its lease "
                f"ends {run.lease_expires.isoformat()}); left to it")
    return _run_line(run)


def _show_step(step: str, state: str, run: Any) -> None:
    from rich.console import Console

    marks = {"started": "…", "done": "✓", "skipped": "-", "failed": "✗"}
    Console(stderr=True, highlight=False).print(f"  {marks.get(state, '?')} {step} {state}")


def _show_line(stream: str, line: str) -> None:
    if line.strip():
        typer.echo(f"    trainer: {line}", err=True)
