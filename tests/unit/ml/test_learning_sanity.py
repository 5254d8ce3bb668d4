"""Sanity tests that can fail: trained on the fast path and evaluated out of sample on the
engine path (another random walk), an agent whose observation leaks the next bar's return
must earn clearly more than its costs; with the feature rows shuffled in time it must not.

The reward is the P&L alone (`sharpe=0`): the question is whether the pipeline (features,
environment, PPO, model) learns a signal, not how the risk terms shape it. A one-bar signal
wants a short horizon and a higher learning rate than the shipped defaults (gamma 0.9,
1e-3, 10 epochs of 256), which make it learnable in ~33,000 steps (a few seconds)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from fleetkit.features.normalise import Normalisation
from fleetkit.ml.env import FastTradingEnv
from fleetkit.ml.evaluation import evaluate_policy
from fleetkit.ml.spec import EnvConfig, RewardWeights
from fleetkit.ml.training import TrainedModel, train
from tests.unit.ml.envs import VENUE, coin_market

STEPS = 32_768
SIGNAL_COLUMN = 1  # 1h.ret_4, overwritten
CONFIG = EnvConfig(window=4, episode_bars=128, reward=RewardWeights(sharpe=0.0))
ONE_BAR_SIGNAL = {"gamma": 0.9, "learning_rate": 1e-3, "n_epochs": 10, "batch_size": 256}

Market = tuple  # (recipe, tape, feature matrix), as tests.unit.ml.envs builds it


def leaked(market: Market) -> Market:
    """Bar t's row carries ln(close[t+1] / close[t]): what the position decided at t earns."""
    recipe, tape, matrix = market
    close = np.asarray(tape.close, dtype=np.float64)
    values = matrix.values.copy()
    values[:, SIGNAL_COLUMN] = 0.0
    values[:-1, SIGNAL_COLUMN] = np.log(close[1:] / close[:-1])
    return recipe, tape, replace(matrix, values=values)


def shuffled(market: Market, seed: int) -> Market:
    """The same leaked rows past the warm-up in a random order: no row says anything about
    its own bar any more."""
    recipe, tape, matrix = leaked(market)
    values, ready = matrix.values.copy(), matrix.ready_from
    values[ready:] = values[ready:][np.random.default_rng(seed).permutation(len(values) - ready)]
    return recipe, tape, replace(matrix, values=values)


def trained_on(market: Market, out: Path) -> tuple[TrainedModel, Normalisation]:
    recipe, tape, matrix = market
    model = train(lambda: FastTradingEnv(recipe, tape, matrix, config=CONFIG, venue=VENUE),
                  "mlp", STEPS, seed=0, out_dir=out, n_envs=4,
                  hyperparameters=ONE_BAR_SIGNAL)
    normalisation = FastTradingEnv(recipe, tape, matrix, config=CONFIG,
                                   venue=VENUE).window.normalisation
    return model, normalisation


def out_of_sample_pnl(model: TrainedModel, normalisation: Normalisation,
                      market: Market) -> tuple[float, float]:
    """Mean step P&L net of fees and slippage (a fraction of the position size) over a
    whole other window on the engine path, greedy actions (ml.evaluation); and its
    standard error."""
    recipe, tape, matrix = market
    run = evaluate_policy(model, tape, matrix, recipe, config=CONFIG,
                          normalisation=normalisation, venue=VENUE)
    pnl = run.returns
    return float(np.mean(pnl)), float(np.std(pnl) / np.sqrt(len(pnl)))


def test_a_leaked_next_return_is_learned_to_a_clearly_positive_pnl(tmp_path: Path) -> None:
    model, normalisation = trained_on(leaked(coin_market(seed=3, bars=1500)), tmp_path)
    mean, error = out_of_sample_pnl(model, normalisation, leaked(coin_market(seed=11,
                                                                           bars=1500)))
    # Knowing the sign of every next bar earns ~0.0011 a bar here; costs are 5 bp a side.
    assert mean > 2e-4 and mean > 5 * error, (mean, error)


def test_with_shuffled_features_the_agent_does_not_beat_its_costs(tmp_path: Path) -> None:
    model, normalisation = trained_on(shuffled(coin_market(seed=3, bars=1500), 1), tmp_path)
    mean, error = out_of_sample_pnl(model, normalisation,
                                    shuffled(coin_market(seed=11, bars=1500), 2))
    assert mean < 2 * error, (mean, error)
