"""Out-of-sample evaluation (ml.evaluation): metrics on hand-computed series, buy-and-hold
against an independent computation, the collapsed flag, an oracle that must beat
buy-and-hold and a random policy that must not beat flat, walk-forward folds that see no
bar after their training window, the chart and the JSON."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.matching import fee_for, taker_price
from fleetkit.core.numbers import floor_to_step
from fleetkit.core.orders import Side
from fleetkit.core.signals import ACTION_LEVELS
from fleetkit.features.batch import FeatureMatrix, compute_features
from fleetkit.features.columns import BarColumns
from fleetkit.ml.env import FastTradingEnv
from fleetkit.ml.evaluation import (
    EvaluationReport,
    Trajectory,
    evaluate_model_dir,
    evaluate_out_of_sample,
    evaluate_policy,
    walk_forward,
)
from fleetkit.ml.evaluation_metrics import (
    NO_ACTION,
    annualisation,
    session_annualisation,
    strategy_metrics,
)
from fleetkit.ml.spec import EnvConfig
from fleetkit.ml.training import TrainedModel, train
from tests.unit.features.feature_bars import (
    always_sessions,
    nse_sessions,
    random_bars,
    with_future_changed,
)
from tests.unit.ml.envs import (
    COIN,
    VENUE,
    coin_market,
    feature_set,
    limits,
    recipe,
    share_market,
)

STRONG_SELL, HOLD, STRONG_BUY = 0, 3, 6
CONFIG = EnvConfig(window=4, episode_bars=None)
Market = tuple[Any, BarTape, FeatureMatrix]


def coin_bars(bars: int, seed: int = 3) -> tuple[BarColumns, list[Any]]:
    sessions = always_sessions(date(2024, 1, 1), bars // 24 + 2)
    return random_bars(sessions, "1h", seed=seed).tail(bars + 48), sessions


def market_of(columns: BarColumns, sessions: list[Any], bars: int) -> Market:
    cut = slice(0, bars)
    tape = BarTape(COIN, 3600, columns.open_s[cut], columns.open[cut], columns.high[cut],
                   columns.low[cut], columns.close[cut], columns.volume[cut])
    matrix = compute_features(feature_set("1h"), BarColumns(
        "1h", tape.ts_s, tape.open, tape.high, tape.low, tape.close, tape.volume), sessions)
    return recipe(COIN, 3600, Decimal(1), allow_short=True), tape, matrix


def rule(action: int) -> Any:
    return lambda _observation, _open_s: action


def report_for(policy: Any, market: Market, **kwargs: Any) -> EvaluationReport:
    bot, tape, matrix = market
    start = matrix.ready_from + CONFIG.window - 1
    return evaluate_out_of_sample(policy, tape, matrix, bot, VENUE, None,  # type: ignore[arg-type]
                                  start, config=CONFIG, **kwargs)


# -- metrics on hand-computed series ------------------------------------------------------

def test_metrics_of_a_known_series_are_exact() -> None:
    run = Trajectory(0, np.arange(1, 6, dtype=np.int64),
                     equity=np.array([0.02, 0.01, 0.04, 0.01, 0.03]),
                     position=np.array([1.0, 1.0, -1.0, -1.0, 0.0]),
                     actions=np.array([6, 3, 0, 3, 3]),
                     fills=np.array([1, 0, 1, 0, 1]),
                     costs=np.array([0.001, 0.0, 0.002, 0.0, 0.001]),
                     traded=np.array([1.0, 0.0, 2.0, 0.0, 1.0]))
    m = strategy_metrics(run, ACTION_LEVELS, bars_per_year=100.0)
    # r = 0.02, -0.01, 0.03, -0.03, 0.02: mean 0.006; squared deviations sum to 0.00252
    assert m.sharpe == pytest.approx(0.006 / math.sqrt(0.00252 / 4) * 10, rel=1e-12)
    assert m.total_return == pytest.approx(0.03)
    assert m.max_drawdown == pytest.approx(0.03)  # the peak 0.04 to 0.01
    assert m.turnover == 4.0 and m.turnover_per_year == pytest.approx(80.0)
    assert m.trades == 3 and m.costs == pytest.approx(0.004)
    assert m.exposure == pytest.approx(0.8)
    assert m.win_rate == pytest.approx(0.5)  # held on four steps, two of them gained
    assert m.actions == {"strong_sell": 0.2, "sell": 0.0, "weak_sell": 0.0, "hold": 0.6,
                         "weak_buy": 0.0, "buy": 0.0, "strong_buy": 0.2}
    assert m.top_action() == ("hold", 0.6)


def test_a_drawdown_counts_from_the_start_and_a_flat_series_has_no_sharpe() -> None:
    falling = Trajectory(0, np.arange(1, 3, dtype=np.int64), np.array([-0.01, -0.02]),
                         np.zeros(2), np.full(2, 3), np.zeros(2, dtype=np.int64),
                         np.zeros(2), np.zeros(2))
    m = strategy_metrics(falling, ACTION_LEVELS, 100.0)
    assert m.max_drawdown == pytest.approx(0.02)
    assert m.win_rate is None and m.exposure == 0.0
    flat = replace(falling, equity=np.zeros(2))
    assert strategy_metrics(flat, ACTION_LEVELS, 100.0).sharpe == 0.0


def test_annualisation_follows_the_market() -> None:
    assert annualisation(coin_market()[1]).bars_per_year == 365 * 24
    # NSE quarter-hours: 25 bars in a 375-minute session, 252 sessions.
    assert annualisation(share_market()[1]).bars_per_year == 252 * 25
    assert annualisation(coin_market()[1], 1000.0).bars_per_year == 1000.0
    # From the sessions themselves: NSE's 375 minutes (a short day and a holiday among
    # them) make 7 hourly bars, the last one cut short.
    sessions = nse_sessions(date(2024, 1, 1), 40)
    assert session_annualisation(sessions, 3600).bars_per_year == 252 * 7
    assert session_annualisation(sessions, 900).bars_per_year == 252 * 25


# -- baselines, collapse, oracle and random policies on the engine path ------------------

def test_buy_and_hold_on_a_rising_tape_beats_flat_by_the_move_less_costs() -> None:
    columns, sessions = coin_bars(300)
    trend = np.exp(0.002 * np.arange(len(columns)))
    rising = replace(columns, open=columns.open * trend, high=columns.high * trend,
                     low=columns.low * trend, close=columns.close * trend)
    market = market_of(rising, sessions, 300)
    report = report_for(rule(HOLD), market)
    held, flat = report.metrics["buy_and_hold"], report.metrics["flat"]
    assert held.total_return > 0.2 and flat.total_return == 0.0
    assert flat.turnover == 0.0 and flat.trades == 0
    # Independently: sized at the decision close, filled at the next open with slippage
    # and fee, marked at the last close.
    tape, first = market[1], market[2].ready_from + CONFIG.window - 1

    def tick(value: float) -> Decimal:
        return Decimal(repr(round(float(value), 2)))

    quantity = floor_to_step(Decimal(10_000) / tick(tape.close[first]), Decimal("0.001"))
    price = taker_price(tick(tape.open[first + 1]), Side.BUY, VENUE.slippage_bps,
                        Decimal("0.01"))
    fee = fee_for(quantity * price, VENUE.fee_bps)
    expected = (quantity * (tick(tape.close[-1]) - price) - fee) / Decimal(10_000)
    assert held.total_return == pytest.approx(float(expected), rel=1e-12, abs=1e-12)
    slippage = quantity * (price - tick(tape.open[first + 1]))
    assert held.costs == pytest.approx(float((fee + slippage) / 10_000), rel=1e-9)
    assert held.trades == 1 and held.actions["strong_buy"] == pytest.approx(1 / held.steps)
    assert held.turnover == pytest.approx(float(quantity * tick(tape.open[first + 1])) / 1e4)


def test_a_policy_that_always_holds_is_flagged_collapsed() -> None:
    report = report_for(rule(HOLD), coin_market())
    assert report.collapsed and report.collapsed_action == "hold"
    assert report.policy.actions["hold"] == 1.0
    assert "COLLAPSED POLICY: it chose hold at 100.0%" in report.render_text()
    assert report.to_json()["collapsed"] is True


def test_a_policy_that_alternates_is_not_collapsed_and_the_threshold_is_strict() -> None:
    market = coin_market()
    alternate = report_for(lambda _o, open_s: STRONG_BUY if open_s // 3600 % 2 else
                           STRONG_SELL, market)
    assert not alternate.collapsed and alternate.collapsed_action is None
    assert "COLLAPSED" not in alternate.render_text()
    # Holding at 90% of the decisions: collapsed under a threshold of 0.85, not of 0.95.
    mostly = report_for(lambda _o, open_s: STRONG_BUY if open_s // 3600 % 10 == 0 else HOLD,
                        market, collapse_threshold=0.85)
    share = mostly.policy.actions["hold"]
    assert 0.85 < share < 0.95 and mostly.collapsed
    assert not report_for(lambda _o, open_s: STRONG_BUY if open_s // 3600 % 10 == 0 else
                          HOLD, market).collapsed


def oracle(tape: BarTape) -> Any:
    """Long when the next bar closes above its open (where the order fills), else short:
    it reads the future from its own copy of the tape."""
    row_of = {int(t): i for i, t in enumerate(tape.ts_s.tolist())}

    def act(_observation: Any, open_s: int) -> int:
        row = row_of[open_s] + 1
        return STRONG_BUY if tape.close[row] > tape.open[row] else STRONG_SELL
    return act


def test_an_oracle_beats_buy_and_hold_and_a_random_policy_does_not_beat_flat() -> None:
    market = coin_market(seed=11, bars=1000)
    smart = report_for(oracle(market[1]), market)
    assert smart.beats_buy_and_hold and smart.beats_flat and not smart.collapsed
    assert smart.policy.total_return > 0.3
    assert smart.policy.sharpe > smart.metrics["buy_and_hold"].sharpe + 5
    rng = np.random.default_rng(5)
    noise = report_for(lambda _o, _t: int(rng.integers(0, 7)), market)
    m = noise.policy
    assert not noise.beats_flat and m.total_return < 0
    # Before costs it earns nothing: its gross P&L is within 4 standard errors of 0.
    gross = noise.curves["policy"].returns + noise.curves["policy"].costs
    assert abs(gross.sum()) < 4 * gross.std() * math.sqrt(len(gross))
    assert m.total_return == pytest.approx(gross.sum() - m.costs, abs=1e-12)


class Recording:
    """A recurrent policy's side of `predict`: what state and episode_start it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, bool]] = []

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        assert observation.shape[0] == 1 and deterministic
        self.calls.append((state, bool(episode_start[0])))
        return np.array([HOLD]), len(self.calls)


def test_a_recurrent_policys_state_and_episode_start_are_carried() -> None:
    bot, tape, matrix = coin_market()
    policy = Recording()
    run = evaluate_policy(policy, tape, matrix, bot, config=CONFIG, normalisation=None,
                          venue=VENUE)
    assert policy.calls[0] == (None, True)
    assert policy.calls[1:] == [(i, False) for i in range(1, len(run))]


def test_a_halted_bot_is_marked_to_the_end_without_acting() -> None:
    bot, tape, matrix = coin_market()
    tight = replace(bot, limits=limits(Decimal(20)))  # a $20 daily loss halts it
    run = evaluate_policy(lambda _o, open_s: STRONG_BUY if open_s // 3600 % 2 else
                          STRONG_SELL, tape, matrix, tight, config=CONFIG,
                          normalisation=None, venue=VENUE)
    assert len(run) == len(tape) - 1 - (matrix.ready_from + CONFIG.window - 1)
    [(at, why)] = run.halts
    assert "daily loss" in why
    after = run.time_s > at
    assert after.any() and (run.actions[after] == NO_ACTION).all()
    assert (run.actions[~after] != NO_ACTION).all()
    assert len(set(run.position[after].round(12))) >= 1 and run.fills[after].sum() == 0
    held = run.position[-1] != 0
    # Still marked: a position held through the halt moves the equity; flat keeps it still.
    assert (np.ptp(run.equity[after]) > 0) == held


# -- walk-forward -------------------------------------------------------------------------

def tiny_ppo(out: Path, bot: Any, record: list[Any]) -> Any:
    def train_fn(tape: BarTape, matrix: FeatureMatrix) -> TrainedModel:
        record.append((tape, matrix))
        return train(lambda: FastTradingEnv(bot, tape, matrix, config=replace(
            CONFIG, episode_bars=64), venue=VENUE), "mlp", 256, seed=0,
            out_dir=out / f"fold{len(record)}", n_envs=2)
    return train_fn


def test_walk_forward_trains_each_fold_on_bars_before_its_test_alone(tmp_path: Path) -> None:
    columns, sessions = coin_bars(560)
    market = market_of(columns, sessions, 560)
    bot, tape, matrix = market
    seen: list[Any] = []
    report = walk_forward(tiny_ppo(tmp_path / "a", bot, seen), tape, matrix, bot, folds=2,
                          train_bars=300, test_bars=120, config=CONFIG, venue=VENUE,
                          start_row=10)
    assert [len(t) for t, _ in seen] == [300, 300]
    assert [int(t.ts_s[0]) for t, _ in seen] == [int(tape.ts_s[10]), int(tape.ts_s[130])]
    fold = report.folds[0]
    assert fold.test == (int(tape.ts_s[310]) + 3600, int(tape.ts_s[430]) + 3600)
    assert report.folds[1].test[0] == fold.test[1]  # the folds follow one another
    assert report.policy.steps == 240
    chained = report.curves["policy"].equity
    assert chained[-1] == pytest.approx(sum(f.metrics["policy"].total_return
                                            for f in report.folds))
    # Every bar from the first test decision on changed (and the features recomputed over
    # the changed history): fold 0's training rows, normalisation and policy are the same.
    changed = market_of(with_future_changed(columns, after=309), sessions, 560)
    again: list[Any] = []
    other = walk_forward(tiny_ppo(tmp_path / "b", bot, again), changed[1], changed[2], bot,
                         folds=1, train_bars=300, test_bars=120, config=CONFIG, venue=VENUE,
                         start_row=10)
    (tape_a, matrix_a), (tape_b, matrix_b) = seen[0], again[0]
    np.testing.assert_array_equal(tape_a.close, tape_b.close)
    np.testing.assert_array_equal(matrix_a.values, matrix_b.values)
    assert other.folds[0].normalisation == fold.normalisation
    first, second = (load_policy_weights(tmp_path / d / "fold1") for d in ("a", "b"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # ... while its test, on the changed bars, is another.
    assert other.metrics["buy_and_hold"].total_return != pytest.approx(
        fold.metrics["buy_and_hold"].total_return)


def load_policy_weights(directory: Path) -> dict[str, torch.Tensor]:
    from fleetkit.ml.model_dir import load_model
    return dict(load_model(directory).model.policy.state_dict())


def test_walk_forward_refuses_more_folds_than_the_tape_holds() -> None:
    bot, tape, matrix = coin_market(bars=400)
    with pytest.raises(ValueError, match="hold 2 folds"):
        walk_forward(lambda _t, _m: rule(HOLD), tape, matrix, bot, folds=3,
                     train_bars=150, test_bars=100, config=CONFIG)
    with pytest.raises(ValueError, match="needs the features warm"):
        walk_forward(lambda _t, _m: rule(HOLD), tape, matrix, bot, folds=1,
                     train_bars=5, test_bars=100, config=CONFIG)


# -- a model directory, the chart and the JSON ---------------------------------------------

def test_a_model_directory_is_evaluated_on_the_bars_after_its_training(tmp_path: Path) -> None:
    bot, tape, matrix = coin_market(bars=400)
    train_tape, train_matrix = cut(tape, matrix, 250)
    model = train(lambda: FastTradingEnv(bot, train_tape, train_matrix, config=replace(
        CONFIG, episode_bars=64), venue=VENUE), "mlp", 256, seed=0, out_dir=tmp_path,
        n_envs=2)
    report = evaluate_model_dir(tmp_path, tape, matrix, bot, VENUE)
    assert report.span[0] == int(tape.ts_s[250]) + 3600  # first decision: the bar after
    assert report.policy.steps == 400 - 1 - 250
    first_decision = train_matrix.ready_from + CONFIG.window - 1
    assert report.folds[0].train == (int(tape.ts_s[first_decision]), int(tape.ts_s[249]))
    direct = evaluate_out_of_sample(model, tape, matrix, bot, VENUE,
                                    FastTradingEnv(bot, train_tape, train_matrix,
                                                   config=CONFIG).window.normalisation, 250)
    assert direct.to_json()["metrics"] == report.to_json()["metrics"]
    assert direct.folds[0].train is None  # a model in hand: its training is not known


def cut(tape: BarTape, matrix: FeatureMatrix, bars: int) -> tuple[BarTape, FeatureMatrix]:
    rows = slice(0, bars)
    return (replace(tape, ts_s=tape.ts_s[rows], open=tape.open[rows], high=tape.high[rows],
                    low=tape.low[rows], close=tape.close[rows], volume=tape.volume[rows]),
            replace(matrix, open_s=matrix.open_s[rows], close_s=matrix.close_s[rows],
                    values=matrix.values[rows]))


def folded_report() -> EvaluationReport:
    bot, tape, matrix = coin_market(bars=400)
    return walk_forward(lambda t, _m: oracle(tape), tape, matrix, bot, folds=3,
                        train_bars=100, test_bars=90, config=CONFIG, venue=VENUE)


def test_the_chart_is_a_png_of_the_asked_size(tmp_path: Path) -> None:
    path = folded_report().save_chart(tmp_path / "charts" / "eval.png", size_px=(1000, 700))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1000, 700)
    assert len(data) > 20_000  # three panels drawn, not an empty canvas
    collapsed = report_for(rule(HOLD), coin_market()).save_chart(tmp_path / "held.png")
    assert struct.unpack(">II", collapsed.read_bytes()[16:24]) == (1200, 900)


def test_to_json_round_trips_with_iso_times_and_plain_numbers() -> None:
    report = folded_report()
    body = report.to_json(curves=True)
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    assert body["collapsed"] is False and body["beats_buy_and_hold"] is True
    assert len(body["folds"]) == 3 and body["bars_per_year"] == 8760.0
    assert datetime.fromisoformat(body["start"]).tzinfo == UTC
    assert body["folds"][0]["train"]["first_bar"] == datetime.fromtimestamp(
        int(coin_market(bars=400)[1].ts_s[0]), UTC).isoformat()
    assert len(body["curves"]["policy"]["equity"]) == report.policy.steps == 270
    assert set(body["metrics"]) == {"policy", "buy_and_hold", "flat"}
    text = report.render_text()
    assert "buy_and_hold" in text and "beats buy-and-hold: yes" in text


def test_an_action_outside_the_levels_is_refused() -> None:
    # -1 would index the last level (strong buy) if it were passed on.
    for wrong in (-1, 7):
        with pytest.raises(ValueError, match=f"chose action {wrong}"):
            report_for(rule(wrong), coin_market())
