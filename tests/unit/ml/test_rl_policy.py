"""The rl_policy strategy: what it trades in a backtest is what the policy picks on the
environment's own observations (a 24/7 coin; an NSE share with a holiday and a short day;
an LSTM with its state carried); a changed model, another feature set's model and NaN
features stop it with one line instead of a trade."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO

from fleetkit.backtest.run import BacktestSpec, run_backtest
from fleetkit.core.errors import StrategyError
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.core.signals import SignalLevel
from fleetkit.features.errors import FeatureError
from fleetkit.ml.model_dir import MANIFEST, MODEL_FILE
from fleetkit.ml.policy_loader import VerifiedPolicy
from fleetkit.ml.training import TrainedModel, train
from fleetkit.strategy import learned
from fleetkit.strategy.base import StrategyContext, build_strategy
from fleetkit.strategy.learned import RlPolicyStrategy, combine_levels
from tests.unit.features.feature_bars import HOLIDAY, SHORT_DAY, nse_sessions
from tests.unit.ml.envs import (
    COIN,
    VENUE,
    coin_market,
    engine_env,
    fast_env,
    feature_set,
    share_market,
)

Acts = list[tuple[str, np.ndarray, int]]


@pytest.fixture(scope="module")
def market():  # type: ignore[no-untyped-def]
    return coin_market(bars=400)


@pytest.fixture(scope="module")
def trained(market: Any, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train(lambda: fast_env(market), "mlp", 256, 3,
                 out_dir=tmp_path_factory.mktemp("model"), n_envs=1)


def _params(directory: Path, **more: Any) -> dict[str, Any]:
    return {"model": str(directory), **more}


def _spec(market: Any, params: dict[str, Any]) -> BacktestSpec:
    recipe = market[0]
    return BacktestSpec("rl_policy", params, recipe.sizing, recipe.limits, VENUE)


def record_acts(monkeypatch: pytest.MonkeyPatch) -> Acts:
    """Every decision: the model's timeframe, the observation it saw and its action."""
    acts: Acts = []
    act = VerifiedPolicy.act

    def acting(self: VerifiedPolicy, obs: np.ndarray) -> int:
        action = act(self, obs)
        acts.append((self.feature_set.base, obs.copy(), action))
        return action

    monkeypatch.setattr(VerifiedPolicy, "act", acting)
    return acts


def _same_as_the_environment(market: Any, trained: TrainedModel, acts: Acts) -> None:
    """Every bar from the environment's first decision row on: the observation the
    environment builds for it, bit for bit, and the policy's action on it."""
    _, tape, _ = market
    env = engine_env(market)
    first = env.window.first_row
    assert len(acts) == len(tape) - first
    held = 0
    for row, (_, obs, action) in zip(range(first, len(tape)), acts, strict=True):
        expected = env.window.observation(row, float(obs[-2]), float(obs[-1]))
        assert np.array_equal(obs, expected), f"row {row}"
        assert action == int(trained.predict(expected)[0])
        held += obs[-2] != 0
    assert held > 0  # the position part was exercised: the bot traded


def test_the_backtest_trades_what_the_policy_picks_on_the_environments_observations(
        market: Any, trained: TrainedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    acts = record_acts(monkeypatch)
    _, tape, _ = market
    run_backtest(_spec(market, _params(trained.directory)), tape)  # the manifest's set
    _same_as_the_environment(market, trained, acts)


def test_the_features_may_be_given_and_must_be_the_manifests(trained: TrainedModel) -> None:
    good = build_strategy("rl_policy", _params(
        trained.directory, features=feature_set("1h").to_mapping()))
    assert isinstance(good, RlPolicyStrategy) and good.refused is None
    other = build_strategy("rl_policy", _params(
        trained.directory, features=feature_set("4h").to_mapping()))
    assert isinstance(other, RlPolicyStrategy) and other.refused is not None
    assert "params.features is not the feature set" in other.refused
    assert "\n" not in other.refused


def test_an_old_manifest_without_its_feature_set_needs_the_features(
        trained: TrainedModel, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained.directory, old)
    body = json.loads((old / MANIFEST).read_text())
    body["feature_set"] = body["timeframe"] = None
    (old / MANIFEST).write_text(json.dumps(body))
    refused = build_strategy("rl_policy", _params(old))
    assert isinstance(refused, RlPolicyStrategy) and refused.refused is not None
    assert "does not declare its feature set" in refused.refused
    assert "params.features" in refused.refused
    given = build_strategy("rl_policy", _params(old, features=feature_set("1h").to_mapping()))
    assert isinstance(given, RlPolicyStrategy) and given.refused is None


def test_a_model_changed_by_one_byte_halts_the_bot_with_the_reason_and_is_never_loaded(
        market: Any, trained: TrainedModel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(trained.directory, changed)
    data = bytearray((changed / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (changed / MODEL_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(PPO, "load", lambda *a, **k: pytest.fail("unpickled a changed model"))
    strategy = build_strategy("rl_policy", _params(changed))
    assert isinstance(strategy, RlPolicyStrategy)
    assert strategy.refused is not None and "\n" not in strategy.refused
    assert "model.zip has sha256" in strategy.refused
    _, tape, _ = market
    with pytest.raises(StrategyError, match=r"model\.zip has sha256"):
        run_backtest(_spec(market, _params(changed)), tape)


def test_a_directory_without_a_model_is_refused_naming_it(
        trained: TrainedModel, tmp_path: Path) -> None:
    empty = build_strategy("rl_policy", _params(tmp_path))
    assert isinstance(empty, RlPolicyStrategy) and empty.refused is not None
    assert f"{tmp_path} holds no model" in empty.refused
    shutil.copytree(trained.directory, tmp_path / "1h")
    (tmp_path / "4h").mkdir()  # a training that never finished
    unfinished = build_strategy("rl_policy", _params(tmp_path))
    assert isinstance(unfinished, RlPolicyStrategy) and unfinished.refused is not None
    assert f"{tmp_path / '4h'} has no manifest.json" in unfinished.refused
    (tmp_path / "4h").rmdir()
    shutil.copytree(trained.directory, tmp_path / "4h")
    misplaced = build_strategy("rl_policy", _params(tmp_path))
    assert isinstance(misplaced, RlPolicyStrategy) and misplaced.refused is not None
    assert f"{tmp_path / '4h'} holds a 1h model" in misplaced.refused
    shutil.rmtree(tmp_path / "4h")
    one = build_strategy("rl_policy", _params(tmp_path))
    assert isinstance(one, RlPolicyStrategy) and one.refused is None
    assert one.timeframe == "1h" and len(one.models) == 1


def test_nan_features_raise_naming_the_column_never_a_signal(
        market: Any, trained: TrainedModel) -> None:
    _, tape, _ = market
    strategy = build_strategy("rl_policy", _params(trained.directory))
    ctx = _ctx(market)
    for i in range(300):
        strategy.on_bar(_bar(tape, i), ctx)
    bad = _bar(tape, 300)
    bad = Bar(bad.ts, bad.open, bad.high, bad.low, float("nan"), bad.volume)
    with pytest.raises(FeatureError, match=r"feature 1h\.\w+ is nan"):
        strategy.on_bar(bad, ctx)


def test_bars_longer_than_the_models_are_refused(market: Any, trained: TrainedModel) -> None:
    """A 1h model fed every other hour's bar (as a 2h bot's would be): refused once it
    would first decide, before any signal."""
    _, tape, _ = market
    strategy = build_strategy("rl_policy", _params(trained.directory))
    ctx = _ctx(market)
    with pytest.raises(StrategyError, match=r"bars are 120 minutes apart .* decides on 1h"):
        for i in range(0, len(tape), 2):
            assert strategy.on_bar(_bar(tape, i), ctx) is None


def test_combine_rules() -> None:
    S = SignalLevel
    assert combine_levels([S.STRONG_BUY, S.WEAK_BUY], "mean") is S.BUY
    assert combine_levels([S.STRONG_BUY, S.HOLD], "mean") is S.WEAK_BUY  # 1.5 -> 1
    assert combine_levels([S.STRONG_SELL, S.HOLD], "mean") is S.WEAK_SELL  # -1.5 -> -1
    assert combine_levels([S.BUY, S.BUY], "agree") is S.BUY
    assert combine_levels([S.BUY, S.WEAK_BUY], "agree") is S.HOLD
    assert combine_levels([S.STRONG_BUY, S.WEAK_BUY, S.BUY], "finest_confirmed") is S.STRONG_BUY
    assert combine_levels([S.STRONG_BUY, S.WEAK_BUY, S.HOLD], "finest_confirmed") is S.HOLD
    assert combine_levels([S.SELL, S.WEAK_SELL], "finest_confirmed") is S.SELL
    assert combine_levels([S.SELL, S.BUY], "finest_confirmed") is S.HOLD
    assert combine_levels([S.STRONG_BUY, S.HOLD, S.WEAK_BUY], "finest_unopposed") is S.STRONG_BUY
    assert combine_levels([S.STRONG_BUY, S.HOLD, S.SELL], "finest_unopposed") is S.HOLD
    assert combine_levels([S.SELL, S.HOLD, S.HOLD], "finest_unopposed") is S.SELL
    assert combine_levels([S.HOLD, S.BUY, S.SELL], "finest_unopposed") is S.HOLD


class _Calendar:
    """A session source over fixed sessions, noting what it was asked."""

    def __init__(self, sessions: list[Session]) -> None:
        self._sessions = sessions
        self.asked: list[tuple[str, date, date]] = []

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        self.asked.append((calendar, start, end))
        return [s for s in self._sessions if start <= s.open.date() <= end]


def test_an_nse_share_trades_on_its_sessions_rows_equal_to_the_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quarter-hours over 29 sessions with a holiday and a short day: the calendar is asked
    a month at a time, every row is compute_features' row with the same sessions, and the
    observations and actions are the environment's and the policy's."""
    share = share_market(bars=10_000)  # every bar of the sessions
    _, tape, matrix = share
    assert date(2024, 1, 25) < HOLIDAY < SHORT_DAY
    assert datetime.fromtimestamp(int(tape.ts_s[-1]), UTC).date() == SHORT_DAY
    model = train(lambda: fast_env(share), "mlp", 256, 5, out_dir=tmp_path / "m", n_envs=1)
    calendar = _Calendar(nse_sessions(date(2024, 1, 1), 40))
    monkeypatch.setattr(learned, "calendar_sessions", lambda: calendar)
    rows: list[tuple[int, np.ndarray]] = []
    checked = learned.require_finite

    def finite(values: np.ndarray, columns: Any, open_s: int) -> None:
        rows.append((open_s, values.copy()))
        checked(values, columns, open_s)

    monkeypatch.setattr(learned, "require_finite", finite)
    acts = record_acts(monkeypatch)
    run_backtest(_spec(share, _params(model.directory)), tape)
    assert {c for c, _, _ in calendar.asked} == {"XNSE"} and len(calendar.asked) == 2
    assert len(rows) > 400 and {datetime.fromtimestamp(s, UTC).date()
                                for s, _ in rows} >= {SHORT_DAY, date(2024, 1, 25)}
    where = {int(s): i for i, s in enumerate(matrix.open_s)}
    for open_s, values in rows:
        assert np.array_equal(values, matrix.values[where[open_s]]), open_s
    _same_as_the_environment(share, model, acts)


def test_an_lstm_trades_with_its_state_carried_from_bar_to_bar(
        market: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its actions are `predict`'s called in sequence with the state and episode_start."""
    model = train(lambda: fast_env(market), "lstm", 128, 3, out_dir=tmp_path / "lstm",
                  n_envs=1)
    acts = record_acts(monkeypatch)
    _, tape, _ = market
    run_backtest(_spec(market, _params(model.directory)), tape)
    assert len(acts) > 100
    state: Any = None
    for i, (_, obs, action) in enumerate(acts):
        step, state = model.predict(obs[None, :], state=state,
                                    episode_start=np.array([i == 0]))
        assert action == int(step[0]), f"decision {i}"
    assert state is not None


def test_inference_per_bar_is_far_inside_the_bar(market: Any, trained: TrainedModel) -> None:
    """Features update + predict, p99 over the decision bars (printed for the docs)."""
    _, tape, _ = market
    strategy = build_strategy("rl_policy", _params(trained.directory))
    ctx = _ctx(market)
    times = []
    for i in range(len(tape)):
        started = time.perf_counter()
        strategy.on_bar(_bar(tape, i), ctx)
        times.append(time.perf_counter() - started)
    decided = np.array(times[100:]) * 1000
    p50, p99 = np.percentile(decided, [50, 99])
    print(f"rl_policy MLP per bar: p50 {p50:.3f} ms, p99 {p99:.3f} ms over {len(decided)}")
    assert p99 < 50  # generous for a shared CI machine; the goal (5 ms) is in docs/ml.md


def _ctx(market: Any) -> StrategyContext:
    recipe = market[0]
    return StrategyContext(COIN, position_size_usd=recipe.sizing.position_size_usd,
                           usd_per_unit=recipe.sizing.usd_per_unit)


def _bar(tape: Any, i: int) -> Bar:
    return Bar(datetime.fromtimestamp(int(tape.ts_s[i]), UTC), float(tape.open[i]),
               float(tape.high[i]), float(tape.low[i]), float(tape.close[i]),
               float(tape.volume[i]))
