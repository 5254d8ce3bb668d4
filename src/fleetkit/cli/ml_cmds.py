"""`fleet ml train | features`: a learning bot's models, one per timeframe of its `ml:`
section, and the feature row they read (docs/ml.md, "Commands").

Plain commands and bot processes load this module too: numpy, TA-Lib, torch and
stable-baselines3 (the `ml` extra) are imported inside the commands, never at import.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.ml.bot_bars import Source
    from fleetkit.ml.bot_features import FeatureRow
    from fleetkit.ml.bot_training import TrainedBotModel
    from fleetkit.ml.training import ProgressCallback

ml_app = typer.Typer(help="Learning bots: train their models (one per timeframe), show "
                     "the features they read.", no_args_is_help=True)

# The packages of the `ml` extra: an ImportError naming one means the extra is missing.
ML_EXTRA = ("torch", "talib", "stable_baselines3", "sb3_contrib", "gymnasium", "numpy")
INSTALL = "pip install -e '.[ml]' -c constraints/torch-cpu.txt"


def register(app: typer.Typer) -> None:
    app.add_typer(ml_app, name="ml")


BotArgument = Annotated[str, typer.Argument(help="a bot of the config with an ml: section",
                                            show_default=False)]
TimeframeOption = Annotated[str | None, typer.Option(
    "--timeframe", "-t", help="one of the bot's ml.timeframes (default: train every one; "
    "features: the finest)")]
SourceOption = Annotated[str, typer.Option(
    "--source", help="where the bars come from: auto (the bar store when it holds enough, "
    "else the sandbox's invented history for a sandbox bot), store or sandbox")]


@ml_app.command("train")
def train_command(
        bot: BotArgument, timeframe: TimeframeOption = None,
        policy: Annotated[str | None, typer.Option(
            help="mlp, lstm or tft (default: ml.policy)")] = None,
        steps: Annotated[int | None, typer.Option(
            min=1, help="environment steps per model (default: ml.steps)")] = None,
        device: Annotated[str | None, typer.Option(
            help="cpu, cuda or auto (default: ml.device)")] = None,
        seed: Annotated[int | None, typer.Option(help="default: ml.seed")] = None,
        source: SourceOption = "auto", config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                               help="show a progress bar")] = True) -> None:
    """Train BOT's model for each of its timeframes (PPO on the fast path) into
    <models_dir>/<timeframe>/, replacing the previous model only once the new one is
    complete. The last ml.holdout_fraction of the history is left out for evaluation."""
    with _ml_extra():
        from fleetkit.config.loader import load_config
        from fleetkit.ml.bot_data import bot_settings, check_timeframe, load_bot_training_data
        from fleetkit.ml.bot_training import (
            TrainingRun,
            check_run,
            tensorboard_missing,
            train_bot_model,
        )
    bars_from = _check_source(source)
    loaded = load_config(config)
    settings = bot_settings(loaded, bot)
    ml = settings.ml
    if ml is None:  # bot_settings refuses a bot without one
        fail(f"bot {bot} has no ml: section")
    run = TrainingRun(policy or ml.policy, steps or ml.steps, ml.seed if seed is None else seed,
                      device or ml.device, ml.n_envs, ml.tensorboard)
    check_run(run)
    if timeframe is not None:
        check_timeframe(loaded, settings, timeframe)
    if run.tensorboard and tensorboard_missing():
        typer.echo("warning: ml.tensorboard is on but the tensorboard package is not "
                   "installed (pip install tensorboard): training without its logs", err=True)
    from fleetkit.config.ml import ml_timeframes

    chosen = [timeframe] if timeframe else ml_timeframes(settings,
                                                         loaded.config.defaults.bar_interval)
    done: list[TrainedBotModel] = []
    for frame in chosen:
        data = load_bot_training_data(loaded, settings, frame, source=bars_from, db=db,
                                      market_data_db=market_data_db)
        for note in data.notes:
            typer.echo(f"note: {settings.name} {frame}: {note}", err=True)
        with _progress(f"{settings.name} {frame}", run.steps,
                       progress and not as_json) as report:
            result = train_bot_model(data, run, report)
        done.append(result)
        if not as_json:
            typer.echo(_summary(result))
    if as_json:
        typer.echo(json.dumps({"bot": settings.name, "models": [m.as_json() for m in done]},
                              indent=2))


@ml_app.command("features")
def features_command(
        bot: BotArgument,
        at: Annotated[str | None, typer.Option(
            "--at", metavar="ISO-TIME", help="the bar complete at or just before this time "
            "(UTC unless it has an offset; default: now)")] = None,
        timeframe: TimeframeOption = None, source: SourceOption = "auto",
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False) -> None:
    """BOT's feature row for its last complete base bar: each column's raw value, and its
    normalised value when a trained model of that timeframe exists (its saved
    normalisation); and whether the features are past their warm-up."""
    moment = _moment(at)
    with _ml_extra():
        from fleetkit.config.loader import load_config
        from fleetkit.config.ml import ml_timeframes
        from fleetkit.ml.bot_data import bot_settings, check_timeframe
        from fleetkit.ml.bot_features import feature_row
    bars_from = _check_source(source)
    loaded = load_config(config)
    settings = bot_settings(loaded, bot)
    if timeframe is not None:
        check_timeframe(loaded, settings, timeframe)
    frame = timeframe or ml_timeframes(settings, loaded.config.defaults.bar_interval)[0]
    row = feature_row(loaded, settings, frame, at=moment, source=bars_from, db=db,
                      market_data_db=market_data_db)
    if as_json:
        typer.echo(json.dumps(row.as_json(), indent=2))
        return
    _print_row(row)


# --- helpers ----------------------------------------------------------------------------


@contextmanager
def _ml_extra() -> Iterator[None]:
    """Imports of the ml stack: its absence is one line with the install command."""
    try:
        yield
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in ML_EXTRA:
            raise
        fail(f"the ml extra is not installed ({missing} is missing): {INSTALL}")


def _check_source(source: str) -> Source:
    from fleetkit.ml.bot_bars import SOURCES

    for known in SOURCES:
        if source == known:
            return known
    fail(f"--source {source!r}: use one of {', '.join(SOURCES)}")


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"--at {text!r} is not an ISO time: write e.g. 2024-03-01T10:00 (UTC) or "
             "2024-03-01T15:30+05:30")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


@contextmanager
def _progress(label: str, total: int, show: bool) -> Iterator[ProgressCallback | None]:
    """A rich bar of steps, steps/s and the mean episode reward, on stderr (stdout keeps
    the summary); nothing when hidden."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fleetkit.ml.training import TrainingProgress

    with Progress(TextColumn(f"training {label}"), BarColumn(),
                  TextColumn("{task.completed:,}/{task.total:,} steps"),
                  TextColumn("{task.fields[rate]} steps/s"),
                  TextColumn("reward {task.fields[reward]}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("train", total=total, rate="-", reward="-")

        def report(update: TrainingProgress) -> None:
            reward = update.mean_episode_reward
            bar.update(task, completed=update.steps, rate=f"{update.steps_per_s:,.0f}",
                       reward="-" if reward is None else f"{reward:.4f}")

        yield report


def _summary(result: TrainedBotModel) -> str:
    m = result.manifest
    reward = "n/a" if result.mean_reward is None else f"{result.mean_reward:.4f}"
    return (f"{result.directory}: {m.policy}, {m.steps:,} steps in {result.seconds:.1f} s, "
            f"mean episode reward {reward}, features {m.feature_set_hash[:12]} "
            f"({m.training_window.bars:,} {result.timeframe} bars from {result.source})")


def _print_row(row: FeatureRow) -> None:
    from rich.console import Console
    from rich.table import Table

    state = "ready" if row.ready else "warming up (not every feature has its warm-up yet)"
    typer.echo(f"{row.bot} {row.timeframe} features of {row.instrument}, bar {row.bar_open} "
               f"to {row.bar_close} ({row.source}): {state}")
    table = Table("column", "raw", *(["normalised"] if row.normalised is not None else []))
    for i, column in enumerate(row.columns):
        cells = [column, f"{row.raw[i]:.6g}"]
        if row.normalised is not None:
            cells.append(f"{row.normalised[i]:.4f}")
        table.add_row(*cells)
    Console().print(table)
    if row.model_note:
        typer.echo(row.model_note)
