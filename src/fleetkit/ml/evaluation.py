"""Out-of-sample evaluation that can fail: a policy run greedily on the engine path
(`TradingEnv`: the bot's own trader, rails, fees and slippage) over bars it was not trained
on, beside buy-and-hold and flat on the same bars with the same costs.

    evaluate_policy         one policy over one stretch -> its Trajectory
    evaluate_out_of_sample  a trained model on the bars after its training -> a report
    evaluate_model_dir      the same from a model directory (verified before loading)
    walk_forward            train on a window, test on the bars after it, roll forward

The report (ml.evaluation_report) holds the metrics (ml.evaluation_metrics), the collapsed
flag and the chart. Each stretch is one episode from a fresh, flat bot, run to its last bar
(`episode_bars` None); a halted bot is stepped on without acting, its position marked, so
every strategy covers the same bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.core.signals import SignalLevel
from fleetkit.engine.assembly import BotRecipe
from fleetkit.features.batch import FeatureMatrix
from fleetkit.features.normalise import Normalisation, fit_normalisation
from fleetkit.features.observation import Float32Array
from fleetkit.ml.env import DEFAULT_VENUE, TradingEnv
from fleetkit.ml.evaluation_metrics import (
    NO_ACTION,
    Annualisation,
    Trajectory,
    annualisation,
    chain,
    strategy_metrics,
)
from fleetkit.ml.evaluation_report import (
    BUY_AND_HOLD,
    COLLAPSE_THRESHOLD,
    FLAT,
    POLICY,
    EvaluationReport,
    FoldReport,
    iso,
)
from fleetkit.ml.spec import EnvConfig

__all__ = ["BarsPerYear", "EvaluationReport", "FoldReport", "Policy", "Predictor", "RuleFn",
           "TrainFn", "Trajectory", "buy_and_hold", "evaluate_model_dir",
           "evaluate_out_of_sample", "evaluate_policy", "first_row_after", "flat_like",
           "walk_forward"]


@runtime_checkable
class Predictor(Protocol):
    """A stable-baselines3 model, `ml.model_dir.TrainedModel` or the like; the LSTM's
    `state` and `episode_start` are carried from step to step."""

    def predict(self, observation: Float32Array, state: Any = None,
                episode_start: npt.NDArray[np.bool_] | None = None,
                deterministic: bool = True) -> tuple[Any, Any]: ...


# (observation, the decision bar's open in Unix seconds) -> action index: a rule, or an
# oracle in a test, which may look the bar up in its own copy of the tape.
RuleFn = Callable[[Float32Array, int], int]
Policy = Predictor | RuleFn
# Bars a year for the Sharpe ratio: a number, an Annualisation (e.g. from the sessions:
# evaluation_metrics.session_annualisation), or None to infer it from the market and tape.
BarsPerYear = float | Annualisation | None
TrainFn = Callable[[BarTape, FeatureMatrix], Policy | tuple[Policy, Normalisation]]


class _Actor:
    """A policy asked one observation at a time, greedily."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._state: Any = None
        self._start = np.ones(1, dtype=bool)

    def __call__(self, observation: Float32Array, open_s: int) -> int:
        policy = self._policy
        if isinstance(policy, Predictor):
            action, self._state = policy.predict(observation[None, :], state=self._state,
                                                 episode_start=self._start,
                                                 deterministic=True)
            self._start = np.zeros(1, dtype=bool)
            return int(np.asarray(action).reshape(-1)[0])
        return int(policy(observation, open_s))


def evaluate_policy(policy: Policy, tape: BarTape, matrix: FeatureMatrix, recipe: BotRecipe,
                    *, config: EnvConfig, normalisation: Normalisation | None,
                    venue: VenueConfig = DEFAULT_VENUE, start_row: int | None = None
                    ) -> Trajectory:
    """`policy` deciding greedily at every bar from `start_row` (default: the first the
    window allows) to the tape's end, one episode on `TradingEnv`. `normalisation`: the one
    fitted on the policy's training rows (None: fitted on these rows, for rules that do
    not read the features)."""
    env = TradingEnv(recipe, tape, matrix, config=replace(config, episode_bars=None),
                     venue=venue, normalisation=normalisation)
    return _run(env, _Actor(policy), start_row)


def _run(env: TradingEnv, act: Callable[[Float32Array, int], int],
         start_row: int | None) -> Trajectory:
    tape = env.window.tape
    start = env.window.first_row if start_row is None else start_row
    observation, _ = env.reset(options={"start_row": start})
    levels = env.config.levels
    idle = levels.index(SignalLevel.HOLD) if SignalLevel.HOLD in levels else 0
    size = float(env.sim.recipe.sizing.position_size_usd / env.sim.recipe.usd_per_unit)
    steps = env.window.last_row - start + 1
    time_s = np.empty(steps, dtype=np.int64)
    equity, position, costs, traded = (np.zeros(steps) for _ in range(4))
    actions = np.full(steps, NO_ACTION, dtype=np.int64)
    fills = np.zeros(steps, dtype=np.int64)
    halts: list[tuple[int, str]] = []
    quantity = 0.0
    for i in range(steps):
        row = start + i
        if halts:  # the bot acts no more; its position is still marked every bar
            _, _, _, _, info = env.step(idle)
        else:
            action = act(observation, int(tape.ts_s[row]))
            if not 0 <= action < len(levels):  # levels[-1] would quietly be strong buy
                raise ValueError(f"the policy chose action {action}; actions are 0 .. "
                                 f"{len(levels) - 1}")
            actions[i] = action
            observation, _, _, _, info = env.step(action)
        mark = row + 1
        time_s[i] = int(tape.ts_s[mark]) + tape.interval_s
        equity[i] = info["equity"]
        position[i] = info["position"] * float(env.prices.close[mark]) / size
        fills[i] = info["fills"]
        costs[i] = info["cost"] / size
        traded[i] = abs(info["position"] - quantity) * float(env.prices.open[mark]) / size
        quantity = info["position"]
        if info["halt"] and not halts:
            halts.append((int(time_s[i]), str(info["halt"])))
    return Trajectory(int(tape.ts_s[start]) + tape.interval_s, time_s, equity, position,
                      actions, fills, costs, traded, tuple(halts))


def buy_and_hold(tape: BarTape, matrix: FeatureMatrix, recipe: BotRecipe, *,
                 config: EnvConfig, venue: VenueConfig = DEFAULT_VENUE,
                 normalisation: Normalisation | None = None,
                 start_row: int | None = None) -> Trajectory:
    """The top level (a full long) at the first decision, then hold, through the same
    environment: the same sizing, lots, rails, fees and slippage as the policy."""
    env = TradingEnv(recipe, tape, matrix, config=replace(config, episode_bars=None),
                     venue=venue, normalisation=normalisation)
    levels = config.levels
    top = levels.index(max(levels))
    # Without a hold level, repeating the top one changes nothing (a level repeated is not
    # acted on again).
    idle = levels.index(SignalLevel.HOLD) if SignalLevel.HOLD in levels else top
    first = env.window.first_row if start_row is None else start_row
    first_s = int(tape.ts_s[first])
    return _run(env, lambda _obs, open_s: top if open_s == first_s else idle, start_row)


def flat_like(run: Trajectory, levels: tuple[SignalLevel, ...]) -> Trajectory:
    """Always hold over the same steps: nothing is ever traded, so every amount is 0."""
    zeros = np.zeros(len(run))
    hold = levels.index(SignalLevel.HOLD) if SignalLevel.HOLD in levels else NO_ACTION
    return Trajectory(run.start_s, run.time_s.copy(), zeros, zeros.copy(),
                      np.full(len(run), hold, dtype=np.int64),
                      np.zeros(len(run), dtype=np.int64), zeros.copy(), zeros.copy())


@dataclass(frozen=True, slots=True)
class _Stretch:
    """One fold's runs, before the folds are chained."""

    runs: dict[str, Trajectory]
    train: tuple[int, int] | None  # the first and last training bars' opens (Unix s)
    normalisation: Normalisation | None


def _stretch(policy: Policy, tape: BarTape, matrix: FeatureMatrix, recipe: BotRecipe, *,
             config: EnvConfig, venue: VenueConfig, normalisation: Normalisation | None,
             start_row: int | None, train: tuple[int, int] | None) -> _Stretch:
    run = evaluate_policy(policy, tape, matrix, recipe, config=config, venue=venue,
                          normalisation=normalisation, start_row=start_row)
    held = buy_and_hold(tape, matrix, recipe, config=config, venue=venue,
                        normalisation=normalisation, start_row=start_row)
    return _Stretch({POLICY: run, BUY_AND_HOLD: held, FLAT: flat_like(run, config.levels)},
                    train, normalisation)


def _report(stretches: list[_Stretch], tape: BarTape, config: EnvConfig,
            bars_per_year: BarsPerYear, collapse_threshold: float) -> EvaluationReport:
    yearly = annualisation(tape, bars_per_year)
    levels = config.levels
    folds = tuple(
        FoldReport(index=k, train=s.train, test=(s.runs[POLICY].start_s,
                                                 int(s.runs[POLICY].time_s[-1])),
                   metrics={name: strategy_metrics(run, levels, yearly.bars_per_year)
                            for name, run in s.runs.items()},
                   normalisation=s.normalisation)
        for k, s in enumerate(stretches))
    curves = {name: chain([s.runs[name] for s in stretches]) for name in stretches[0].runs}
    return EvaluationReport(
        instrument=tape.instrument.key, interval_s=tape.interval_s,
        levels=tuple(levels), annualisation=yearly, curves=curves,
        metrics={name: strategy_metrics(run, levels, yearly.bars_per_year)
                 for name, run in curves.items()},
        folds=folds, collapse_threshold=collapse_threshold)


def evaluate_out_of_sample(model: Policy, tape: BarTape, matrix: FeatureMatrix,
                           recipe: BotRecipe, venue: VenueConfig,
                           normalisation: Normalisation, start_row: int, *,
                           config: EnvConfig | None = None, bars_per_year: BarsPerYear = None,
                           collapse_threshold: float = COLLAPSE_THRESHOLD) -> EvaluationReport:
    """A trained model on the bars from `start_row` (its first decision: the first bar
    after its training window) to the tape's end, beside buy-and-hold and flat: a
    walk-forward of one fold. `normalisation`: the model's (fitted on its training rows).
    `config` defaults to the window in the model's manifest (a TrainedModel)."""
    return _single_split(model, tape, matrix, recipe, venue, normalisation, start_row,
                         config=config or _model_config(model), train=None,
                         bars_per_year=bars_per_year, collapse_threshold=collapse_threshold)


def _single_split(model: Policy, tape: BarTape, matrix: FeatureMatrix, recipe: BotRecipe,
                  venue: VenueConfig, normalisation: Normalisation, start_row: int, *,
                  config: EnvConfig, train: tuple[int, int] | None,
                  bars_per_year: BarsPerYear, collapse_threshold: float) -> EvaluationReport:
    stretch = _stretch(model, tape, matrix, recipe, config=config, venue=venue,
                       normalisation=normalisation, start_row=start_row, train=train)
    return _report([stretch], tape, config, bars_per_year, collapse_threshold)


def _model_config(model: Policy) -> EnvConfig:
    manifest = getattr(model, "manifest", None)
    window = getattr(manifest, "window", None)
    if not isinstance(window, int):
        raise ValueError("pass config=EnvConfig(window=...): the policy carries no manifest "
                         "to read its observation window from")
    return EnvConfig(window=window, episode_bars=None)


def evaluate_model_dir(directory: Path, tape: BarTape, matrix: FeatureMatrix,
                       recipe: BotRecipe, venue: VenueConfig = DEFAULT_VENUE, *,
                       start_row: int | None = None, device: str = "cpu",
                       bars_per_year: BarsPerYear = None,
                       collapse_threshold: float = COLLAPSE_THRESHOLD) -> EvaluationReport:
    """The model in `directory` (every checksum, the feature set and the observation shape
    verified before it is loaded) evaluated with its own normalisation on the bars after its
    training window: `start_row` defaults to the first bar that opens after the window's
    last bar (or the first decision the features allow, if later). One call for a CLI."""
    # Imported here: loading a model needs torch, the metrics and reports do not.
    from fleetkit.ml.model_dir import ModelRefusedError
    from fleetkit.ml.policy_loader import load_policy

    loaded = load_policy(directory, matrix.feature_set, device=device)
    manifest = loaded.model.manifest
    if manifest.feature_set_hash != matrix.feature_set_hash:
        raise ModelRefusedError(f"{directory} was trained on feature set "
                                f"{manifest.feature_set_hash[:12]}, these features are "
                                f"{matrix.feature_set_hash[:12]}; compute the model's features")
    trained = manifest.training_window
    span = (_unix(trained.start), _unix(trained.end))
    if start_row is None:
        start_row = _after_training(tape, matrix, manifest.window, span[1])
    return _single_split(loaded.model, tape, matrix, recipe, venue, loaded.normalisation,
                         start_row, config=EnvConfig(window=manifest.window, episode_bars=None),
                         train=span, bars_per_year=bars_per_year,
                         collapse_threshold=collapse_threshold)


def _unix(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time).timestamp())


def first_row_after(tape: BarTape, matrix: FeatureMatrix, window: int, end_s: int
                    ) -> int | None:
    """The first decision row out of sample: the first bar that opens after `end_s` (the
    training window's last bar), or the first the features' window allows if later; None
    when no step is left after it (its order needs a next bar to fill on)."""
    row = int(np.searchsorted(tape.ts_s, end_s, side="right"))
    row = max(row, matrix.ready_from + window - 1)
    return None if row >= len(tape) - 1 else row


def _after_training(tape: BarTape, matrix: FeatureMatrix, window: int, end_s: int) -> int:
    row = first_row_after(tape, matrix, window, end_s)
    if row is None:
        raise ValueError(f"the tape has no bars after the model's training window (its last "
                         f"bar opens {iso(end_s)}); give bars after it, or start_row")
    return row


def walk_forward(train_fn: TrainFn, tape: BarTape, matrix: FeatureMatrix, recipe: BotRecipe,
                 *, folds: int | None, train_bars: int, test_bars: int, config: EnvConfig,
                 venue: VenueConfig = DEFAULT_VENUE, start_row: int = 0,
                 bars_per_year: BarsPerYear = None,
                 collapse_threshold: float = COLLAPSE_THRESHOLD) -> EvaluationReport:
    """Fold k trains on rows [s_k, s_k + train_bars) with s_k = start_row + k x test_bars:
    `train_fn(tape, matrix)` gets those rows alone (the matrix's rows depend on no later
    bar) and returns a policy, or (policy, normalisation). The normalisation is otherwise
    fitted on the same rows past the warm-up (what an environment built on them fits by
    default). The fold then decides at the next `test_bars` bars, e_k = s_k + train_bars
    on (the last one's order fills and is marked on bar e_k + test_bars), from a fresh bot
    with the features' window taken from the bars before e_k. `folds` None: as many as the
    tape holds. Folds' test stretches follow one another: their equity is chained."""
    if train_bars < 2 or test_bars < 1:
        raise ValueError(f"train_bars must be at least 2 and test_bars 1, got {train_bars} "
                         f"and {test_bars}")
    room = (len(tape) - 1 - start_row - train_bars) // test_bars
    folds = room if folds is None else folds
    if folds < 1 or folds > room:
        raise ValueError(f"{len(tape)} bars from row {start_row} hold {max(room, 0)} folds of "
                         f"{train_bars} training and {test_bars} test bars, not {folds}")
    stretches = []
    for k in range(folds):
        begin = start_row + k * test_bars
        end = begin + train_bars
        first = end - (config.window - 1)  # the test's first observation window
        if first < matrix.ready_from:
            raise ValueError(f"fold {k}'s first test decision (row {end}) needs the features "
                             f"warm from row {first}; they are from row {matrix.ready_from}: "
                             "start later or train on more bars")
        trained = train_fn(*_rows(tape, matrix, begin, end))
        policy, normalisation = trained if isinstance(trained, tuple) else (
            trained, _fitted(matrix, begin, end))
        test_tape, test_matrix = _rows(tape, matrix, first, end + test_bars + 1)
        stretches.append(_stretch(policy, test_tape, test_matrix, recipe, config=config,
                                  venue=venue, normalisation=normalisation, start_row=None,
                                  train=(int(tape.ts_s[begin]), int(tape.ts_s[end - 1]))))
    return _report(stretches, tape, config, bars_per_year, collapse_threshold)


def _fitted(matrix: FeatureMatrix, begin: int, end: int) -> Normalisation:
    rows = _matrix_rows(matrix, begin, end)
    return fit_normalisation(rows, slice(rows.ready_from, None))


def _rows(tape: BarTape, matrix: FeatureMatrix, begin: int, end: int
          ) -> tuple[BarTape, FeatureMatrix]:
    """Bars [begin, end) and their feature rows (copies: a train_fn may keep them)."""
    cut = slice(begin, end)
    return (replace(tape, ts_s=tape.ts_s[cut].copy(), open=tape.open[cut].copy(),
                    high=tape.high[cut].copy(), low=tape.low[cut].copy(),
                    close=tape.close[cut].copy(), volume=tape.volume[cut].copy()),
            _matrix_rows(matrix, begin, end))


def _matrix_rows(matrix: FeatureMatrix, begin: int, end: int) -> FeatureMatrix:
    cut = slice(begin, end)
    return replace(matrix, open_s=matrix.open_s[cut].copy(), close_s=matrix.close_s[cut].copy(),
                   values=matrix.values[cut].copy(),
                   ready_from=min(max(matrix.ready_from - begin, 0), end - begin))
