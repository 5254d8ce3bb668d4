"""`fleet ml train | evaluate | features`: a learning bot's models, one per timeframe of its
`ml:` section, judged out of sample, and the feature row they read (docs/ml.md, "Commands").

Plain commands and bot processes load this module too: numpy, TA-Lib, torch and
stable-baselines3 (the `ml` extra) are imported inside the commands, never at import.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption, MarketDataDbOption

if TYPE_CHECKING:
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.config.models import BotSettings
    from fleetkit.ml.bot_bars import Source
    from fleetkit.ml.bot_data import BotTrainingData
    from fleetkit.ml.bot_features import FeatureRow
    from fleetkit.ml.bot_training import TrainedBotModel, TrainingRun
    from fleetkit.ml.evaluation import BarsPerYear, EvaluationReport
    from fleetkit.ml.training import ProgressCallback

ml_app = typer.Typer(help="Learning bots: train their models (one per timeframe), evaluate "
                     "them out of sample, show the features they read.", no_args_is_help=True)

# The packages of the `ml` extra: an ImportError naming one means the extra is missing.
ML_EXTRA = ("torch", "talib", "stable_baselines3", "sb3_contrib", "gymnasium", "numpy")
INSTALL = "pip install -e '.[ml]' -c constraints/torch-cpu.txt"


def register(app: typer.Typer) -> None:
    app.add_typer(ml_app, name="ml")


BotArgument = Annotated[str, typer.Argument(help="a bot of the config with an ml: section",
                                            show_default=False)]
TimeframeOption = Annotated[str | None, typer.Option(
    "--timeframe", "-t", help="one of the bot's ml.timeframes (default: every one; "
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
        source: SourceOption = "auto",
        bars_file: Annotated[Path | None, typer.Option(
            "--bars", metavar="FILE", help="train on these exported bars (a `fleet train "
            "run` export; needs --timeframe) instead of reading --source")] = None,
        config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                               help="show a progress bar")] = True) -> None:
    """Train BOT's model for each of its timeframes (PPO on the fast path) into
    <models_dir>/<timeframe>/, replacing the previous model only once the new one is
    complete. The last ml.holdout_fraction of the history is left out for evaluation."""
    with _ml_extra():
        from fleetkit.ml.bar_file import read_bar_file
        from fleetkit.ml.bot_data import load_bot_training_data
        from fleetkit.ml.bot_training import (
            tensorboard_missing,
            train_bot_model,
        )
    bars_from = _check_source(source)
    loaded, settings, run = _learning_bot(config, bot, timeframe,
                                          (policy, steps, seed, device), tensorboard=True)
    if run.tensorboard and tensorboard_missing():
        typer.echo("warning: ml.tensorboard is on but the tensorboard package is not "
                   "installed (pip install tensorboard): training without its logs", err=True)
    from fleetkit.config.ml import ml_timeframes

    if bars_file is not None and timeframe is None:
        fail("--bars holds one timeframe's bars: add --timeframe")
    # Read before training anything: a file that is not one is refused in one line.
    exported = None if bars_file is None else read_bar_file(bars_file)
    chosen = [timeframe] if timeframe else ml_timeframes(settings,
                                                         loaded.config.defaults.bar_interval)
    done: list[TrainedBotModel] = []
    for frame in chosen:
        data = load_bot_training_data(loaded, settings, frame, source=bars_from, db=db,
                                      market_data_db=market_data_db,
                                      end=None if exported is None else exported[1],
                                      bars=None if exported is None else exported[0])
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


# What --fail-on can name: each is a verdict that exits 1 when it fails.
FAIL_ON = ("collapsed", "flat", "buy-and-hold")
EVALUATIONS_FOLDER = "evaluations"  # <models_dir>/evaluations/: walk-forward charts
CHART_FILE = "evaluation.png"  # beside the model it judges (the manifest ignores it)


@ml_app.command("evaluate")
def evaluate_command(
        bot: BotArgument, timeframe: TimeframeOption = None,
        walk_forward: Annotated[int | None, typer.Option(
            "--walk-forward", min=1, metavar="K", help="K folds over the history instead, "
            "each training a fresh policy (in a temporary folder) on its window and testing "
            "it on the bars after; the trained model is not used or touched")] = None,
        chart: Annotated[Path | None, typer.Option(
            "--chart", metavar="PATH", help="where to write the chart (PNG; the JSON report "
            "goes beside it); one timeframe only. Default: <models_dir>/<tf>/evaluation.png, "
            "walk-forward: <models_dir>/evaluations/<tf>-walk-forward.png")] = None,
        fail_on: Annotated[str | None, typer.Option(
            "--fail-on", metavar="LIST", help="exit 1 when a named verdict fails, "
            "comma-separated: collapsed (the policy collapsed to one action), flat (does "
            "not beat flat), buy-and-hold (does not beat buy-and-hold)")] = None,
        policy: Annotated[str | None, typer.Option(
            help="--walk-forward: mlp, lstm or tft (default: ml.policy)")] = None,
        steps: Annotated[int | None, typer.Option(
            min=1, help="--walk-forward: environment steps per fold (default: ml.steps)")
        ] = None,
        seed: Annotated[int | None, typer.Option(
            help="--walk-forward: default ml.seed")] = None,
        device: Annotated[str | None, typer.Option(
            help="cpu, cuda or auto (default: ml.device)")] = None,
        source: SourceOption = "auto", config: ConfigOption = None, db: DbOption = None,
        market_data_db: MarketDataDbOption = None, as_json: JsonOption = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                               help="show a progress bar")] = True) -> None:
    """Evaluate BOT's model of each timeframe out of sample, on the engine path, beside
    buy-and-hold and flat with the same costs: the trained model on the bars after its
    training window, or (--walk-forward K) K freshly trained folds. Prints the report,
    writes a chart and the JSON report; exits 0 whatever the verdict unless --fail-on."""
    with _ml_extra():
        from fleetkit.config.ml import ml_timeframes
        from fleetkit.ml.bot_data import load_bot_training_data
    bars_from = _check_source(source)
    conditions = _fail_on(fail_on)
    if walk_forward is None and (policy, steps, seed) != (None, None, None):
        fail("--policy, --steps and --seed train the folds of --walk-forward; the trained "
             "model is evaluated as it is (add --walk-forward K, or drop them)")
    loaded, settings, run = _learning_bot(config, bot, timeframe,
                                          (policy, steps, seed, device), tensorboard=False)
    chosen = [timeframe] if timeframe else ml_timeframes(settings,
                                                         loaded.config.defaults.bar_interval)
    _check_chart(settings.name, chosen, chart)
    models_dir = Path((settings.ml and settings.ml.models_dir) or "")
    if walk_forward is None:
        for frame in chosen:  # before any bars are read: a missing or changed model
            _verified(settings.name, models_dir / frame, frame)
    done: list[dict[str, object]] = []
    failures: list[str] = []
    for frame in chosen:
        data = load_bot_training_data(loaded, settings, frame, source=bars_from, db=db,
                                      market_data_db=market_data_db)
        for note in data.notes:
            typer.echo(f"note: {settings.name} {frame}: {note}", err=True)
        label = f"{settings.name} {frame}"
        heading, model, report, written = _evaluate_one(
            data, label, walk_forward, run, chart, progress and not as_json)
        failures += _failed(label, report, conditions)
        done.append({"timeframe": frame, "model": None if model is None else str(model),
                     "chart": str(written), "report": report.to_json()})
        if not as_json:
            typer.echo(("\n" if len(done) > 1 else "") + f"{heading}\n{report.render_text()}"
                       f"\nchart: {written} (report: {written.with_suffix('.json')})")
    _finish(settings.name, done, failures, as_json)


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


def _learning_bot(config: Path | None, bot: str, timeframe: str | None,
                  overrides: tuple[str | None, int | None, int | None, str | None], *,
                  tensorboard: bool) -> tuple[LoadedConfig, BotSettings, TrainingRun]:
    """The config, the bot's settings (refused without an ml: section) and the training
    run its ml: section and the command's options (policy, steps, seed, device) make,
    every part checked; the ml extra missing is one line."""
    from fleetkit.config.loader import load_config

    with _ml_extra():
        from fleetkit.ml.bot_data import bot_settings, check_timeframe
        from fleetkit.ml.bot_training import TrainingRun, check_run

    policy, steps, seed, device = overrides
    loaded = load_config(config)
    settings = bot_settings(loaded, bot)
    ml = settings.ml
    if ml is None:  # bot_settings refuses a bot without one
        fail(f"bot {bot} has no ml: section")
    run = TrainingRun(policy or ml.policy, steps or ml.steps, ml.seed if seed is None else seed,
                      device or ml.device, ml.n_envs, tensorboard and ml.tensorboard)
    check_run(run)
    if timeframe is not None:
        check_timeframe(loaded, settings, timeframe)
    return loaded, settings, run


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


def _evaluate_one(data: BotTrainingData, label: str, folds: int | None, run: TrainingRun,
                  chart: Path | None, show: bool
                  ) -> tuple[str, Path | None, EvaluationReport, Path]:
    """One timeframe evaluated, its chart and JSON report written: (heading, the model
    evaluated or None for walk-forward, the report, the chart)."""
    model: Path | None
    if folds is None:
        heading, model, report = _holdout(data, label, run.device)
        target = chart or data.model_dir / CHART_FILE
    else:
        heading, report = _walk_forward(data, label, folds, run, show)
        model = None
        target = chart or (data.models_dir / EVALUATIONS_FOLDER
                           / f"{data.timeframe}-walk-forward.png")
    written = report.save_chart(target)
    written.with_suffix(".json").write_text(
        json.dumps(report.to_json(curves=True), indent=1) + "\n", encoding="utf-8")
    return heading, model, report, written


def _check_chart(bot: str, timeframes: list[str], chart: Path | None) -> None:
    if chart is not None and len(timeframes) > 1:
        fail(f"--chart names one file: add --timeframe (bot {bot} has "
             f"{', '.join(timeframes)})")


def _finish(bot: str, done: list[dict[str, object]], failures: list[str],
            as_json: bool) -> None:
    """The --json object; exit 1 with one line if a --fail-on verdict failed."""
    if as_json:
        typer.echo(json.dumps({"bot": bot, "evaluations": done, "failures": failures},
                              indent=2))
    if failures:
        typer.echo(f"--fail-on: {'; '.join(failures)}", err=True)
        raise typer.Exit(1)


def _fail_on(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if name not in FAIL_ON:
            fail(f"--fail-on {name!r}: name any of {', '.join(FAIL_ON)}, comma-separated")
    if not names:
        fail(f"--fail-on is empty: name any of {', '.join(FAIL_ON)}, comma-separated")
    return names


def _verified(bot: str, directory: Path, timeframe: str) -> None:
    """The model directory checked byte for byte (nothing unpickled); one line if it is
    missing, changed or incomplete."""
    from fleetkit.ml.model_dir import MANIFEST, verify_model_dir

    if not (directory / MANIFEST).is_file():
        fail(f"no trained model for {bot} {timeframe} at {directory}: run `fleet ml train "
             f"{bot} -t {timeframe}` first")
    verify_model_dir(directory)


def _bars_per_year(data: BotTrainingData) -> BarsPerYear:
    """A market with sessions: counted from its sessions; 24/7: 365 days of bars."""
    from fleetkit.ml.evaluation_metrics import ALWAYS_OPEN, session_annualisation

    if data.tape.instrument.calendar == ALWAYS_OPEN or not data.sessions:
        return None
    return session_annualisation(data.sessions, data.tape.interval_s)


def _holdout(data: BotTrainingData, label: str, device: str
             ) -> tuple[str, Path, EvaluationReport]:
    """The trained model on the bars after its training window."""
    from fleetkit.ml.evaluation import evaluate_model_dir, first_row_after
    from fleetkit.ml.evaluation_report import iso
    from fleetkit.ml.model_dir import verify_model_dir

    directory = data.model_dir
    manifest = verify_model_dir(directory, feature_set_hash=data.matrix.feature_set_hash)
    trained = manifest.training_window
    end_s = int(datetime.fromisoformat(trained.end).timestamp())
    start = first_row_after(data.tape, data.matrix, manifest.window, end_s)
    if start is None:
        fail(f"{label}: no bars after the model's training window (its last bar opens "
             f"{trained.end}, the history's last {iso(int(data.tape.ts_s[-1]))}): nothing "
             "is held out; wait for new bars, or train with ml.holdout_fraction above 0")
    report = evaluate_model_dir(directory, data.tape, data.matrix, data.recipe, data.venue,
                                start_row=start, device=device,
                                bars_per_year=_bars_per_year(data))
    heading = (f"{label}: model {directory} ({manifest.policy}, {manifest.steps:,} steps, "
               f"trained on {trained.bars:,} bars to {trained.end}); "
               f"{len(data.tape) - 1 - start:,} held-out bars from {data.source}")
    return heading, directory, report


def _walk_forward(data: BotTrainingData, label: str, folds: int, run: TrainingRun,
                  show: bool) -> tuple[str, EvaluationReport]:
    """`folds` folds over the history past the warm-up: the tests share the held-out
    tail's length (ml.holdout_fraction) and end at the last bar; each fold trains a fresh
    policy on the bars before its test, in a temporary folder deleted after."""
    import tempfile

    from fleetkit.backtest.tape import BarTape
    from fleetkit.core.errors import ConfigError
    from fleetkit.features.batch import FeatureMatrix
    from fleetkit.features.normalise import Normalisation, fit_normalisation
    from fleetkit.ml.env import FastTradingEnv
    from fleetkit.ml.evaluation import walk_forward
    from fleetkit.ml.model_dir import TrainedModel
    from fleetkit.ml.training import train

    first = data.matrix.ready_from
    held = len(data.tape) - data.holdout_start
    test_bars = held // folds
    if test_bars < 1:
        fail(f"{label}: --walk-forward {folds} splits the {held} held-out bars (the last "
             f"ml.holdout_fraction of the history) into tests of {folds}; raise "
             "ml.holdout_fraction or ml.history_bars, or ask for fewer folds")
    train_bars = len(data.tape) - 1 - first - folds * test_bars
    if train_bars < data.env_config.window + 2:
        fail(f"{label}: --walk-forward {folds} leaves {train_bars} training bars a fold, "
             f"too few for a window of {data.env_config.window}; ask for fewer folds")
    try:  # refuses what the fast path cannot model, before any training
        FastTradingEnv(data.recipe, data.training_tape, data.training_matrix,
                       config=data.env_config, venue=data.venue,
                       normalisation=data.normalisation)
    except ValueError as exc:
        raise ConfigError(f"bot {data.bot.name}: {exc}") from None
    done = [0]

    def train_fold(tape: BarTape, matrix: FeatureMatrix
                   ) -> tuple[TrainedModel, Normalisation]:
        done[0] += 1
        scale = fit_normalisation(matrix, slice(matrix.ready_from, None))

        def env() -> FastTradingEnv:
            return FastTradingEnv(data.recipe, tape, matrix, config=data.env_config,
                                  venue=data.venue, normalisation=scale)

        with (tempfile.TemporaryDirectory(prefix=f"fleet-walk-forward-{data.timeframe}-")
              as folder,
              _progress(f"{label} fold {done[0]}/{folds}", run.steps, show) as report):
            trained = train(env, run.policy, run.steps, run.seed, out_dir=Path(folder),
                            device=run.device, n_envs=run.n_envs, progress_callback=report)
        return trained, scale

    report = walk_forward(train_fold, data.tape, data.matrix, data.recipe, folds=folds,
                          train_bars=train_bars, test_bars=test_bars,
                          config=data.env_config, venue=data.venue, start_row=first,
                          bars_per_year=_bars_per_year(data))
    heading = (f"{label}: walk-forward, {folds} folds of {train_bars:,} training and "
               f"{test_bars:,} test bars, {run.policy} with {run.steps:,} steps each "
               f"({data.source} bars)")
    return heading, report


def _failed(label: str, report: EvaluationReport, conditions: tuple[str, ...]) -> list[str]:
    """A line for each --fail-on verdict that failed."""
    from fleetkit.ml.evaluation_report import BUY_AND_HOLD

    policy = report.policy.total_return
    reasons = []
    if "collapsed" in conditions and report.collapsed:
        action = report.collapsed_action or ""
        reasons.append(f"{label}: the policy collapsed to {action} "
                       f"({report.policy.actions.get(action, 0.0):.1%} of its decisions)")
    if "flat" in conditions and not report.beats_flat:
        reasons.append(f"{label}: does not beat flat (return {policy:+.2%})")
    if "buy-and-hold" in conditions and not report.beats_buy_and_hold:
        reasons.append(f"{label}: does not beat buy-and-hold ({policy:+.2%} against "
                       f"{report.metrics[BUY_AND_HOLD].total_return:+.2%})")
    return reasons


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
