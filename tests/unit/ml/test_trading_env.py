"""The engine-path environment: gymnasium's checks, next-open execution, long-only
clipping, configurable levels, halts that end an episode, seeded reproducibility and
vectorised stepping."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from fleetkit.brokers.sandbox.matching import taker_price
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.orders import Side
from fleetkit.core.signals import SignalLevel
from fleetkit.ml.env import FastTradingEnv, TradingEnv
from fleetkit.ml.spec import EnvConfig
from tests.unit.ml.envs import (
    CONFIG,
    VENUE,
    coin_market,
    engine_env,
    fast_env,
    limits,
    random_actions,
    share_market,
)

STRONG_SELL, HOLD, BUY, STRONG_BUY = 0, 3, 5, 6


@pytest.mark.parametrize("make", [engine_env, fast_env], ids=["engine", "fast"])
def test_gymnasiums_env_checker_passes(make: object) -> None:
    env = make(coin_market())  # type: ignore[operator]
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("make", [engine_env, fast_env], ids=["engine", "fast"])
def test_an_order_decided_at_a_close_fills_at_the_next_bars_open(make: object) -> None:
    market = coin_market()
    tape = market[1]
    env = make(market)  # type: ignore[operator]
    row = env.window.first_row + 10
    env.reset(options={"start_row": row})
    _, _, _, _, info = env.step(STRONG_BUY)
    opening = Decimal(repr(round(float(tape.open[row + 1]), 2)))
    expected = float(taker_price(opening, Side.BUY, VENUE.slippage_bps, Decimal("0.01")))
    closing = float(taker_price(Decimal(repr(round(float(tape.close[row]), 2))), Side.BUY,
                                VENUE.slippage_bps, Decimal("0.01")))
    assert expected != closing  # the test can tell the two apart
    assert info["fills"] == 1
    assert info["fill_price"] == expected
    assert info["row"] == row + 1
    # Sized at the decision bar's close: a full position of $10,000 in 0.001 lots.
    assert info["position"] == pytest.approx(
        float(int(10_000 / float(tape.close[row]) / 0.001) * 0.001))


def test_the_engine_paths_fill_is_stamped_after_the_decision_bar() -> None:
    market = coin_market()
    env = engine_env(market)
    row = env.window.first_row + 3
    env.reset(options={"start_row": row})
    env.step(STRONG_BUY)
    [fill] = env.sim.ledger.fills(1)
    decided_at = datetime.fromtimestamp(int(market[1].ts_s[row]) + 3600, UTC)
    assert fill.ts > decided_at


@pytest.mark.parametrize("make", [engine_env, fast_env], ids=["engine", "fast"])
def test_a_long_only_market_clips_sells_to_flat(make: object) -> None:
    env = make(share_market())  # type: ignore[operator]
    env.reset(seed=4)
    _, _, _, _, info = env.step(STRONG_SELL)
    assert info["position"] == 0 and info["fills"] == 0
    _, _, _, _, info = env.step(STRONG_BUY)
    assert info["position"] > 0
    assert info["position"] == int(info["position"])  # whole lots of one share
    _, _, _, _, info = env.step(STRONG_SELL)
    assert info["position"] == 0 and info["fills"] == 1


@pytest.mark.parametrize("make", [engine_env, fast_env], ids=["engine", "fast"])
def test_a_market_that_allows_shorting_goes_short_on_a_sell(make: object) -> None:
    env = make(coin_market())  # type: ignore[operator]
    env.reset(seed=4)
    _, _, _, _, info = env.step(STRONG_SELL)
    assert info["position"] < 0


def test_hold_changes_nothing_and_levels_are_configurable() -> None:
    config = EnvConfig(window=8, episode_bars=50, levels=(SignalLevel.HOLD,
                                                          SignalLevel.WEAK_BUY))
    env = engine_env(coin_market(), config)
    assert env.action_space == gymnasium.spaces.Discrete(2)
    env.reset(seed=2)
    _, _, _, _, info = env.step(0)
    assert info["position"] == 0
    _, _, _, _, info = env.step(1)
    third = info["position"]
    assert third > 0
    _, _, _, _, info = env.step(0)
    assert info["position"] == third and info["fills"] == 0


def test_the_kill_switch_ends_the_episode_without_trading() -> None:
    env = engine_env(coin_market())
    env.reset(seed=1)
    _, _, _, _, info = env.step(STRONG_BUY)
    held = info["position"]
    env.sim.ledger.set_control(1, TradingState.HALTED, "operator stop", HaltSource.OPERATOR,
                               "test", datetime(2024, 1, 1, tzinfo=UTC))
    _, _, terminated, truncated, info = env.step(STRONG_SELL)
    assert terminated and not truncated
    assert "operator stop" in info["halt"]
    assert info["position"] == held and info["fills"] == 0


@pytest.mark.parametrize("make", [engine_env, fast_env], ids=["engine", "fast"])
def test_the_daily_loss_breaker_ends_the_episode(make: object) -> None:
    bot, tape, matrix = coin_market()
    tight = replace(bot, limits=limits(Decimal(20)))
    env = make((tight, tape, matrix))  # type: ignore[operator]
    env.reset(seed=1)
    steps, terminated, info = 0, False, {}
    while not terminated:
        _, _, terminated, truncated, info = env.step(STRONG_BUY if steps % 2 else STRONG_SELL)
        steps += 1
        assert not truncated
    assert "daily loss" in info["halt"]


def test_an_episode_ends_at_the_window_end_or_its_length() -> None:
    env = fast_env(coin_market(), EnvConfig(window=8, episode_bars=None))
    env.reset(options={"start_row": env.window.last_row - 2})
    flags = [env.step(HOLD)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (True, False)]
    env = fast_env(coin_market(), EnvConfig(window=8, episode_bars=5))
    env.reset(seed=0)
    flags = [env.step(HOLD)[2:4] for _ in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def _trajectory(env: TradingEnv | FastTradingEnv, seed: int) -> tuple[list[float], ...]:
    obs, info = env.reset(seed=seed)
    rows, rewards, observations = [info["row"]], [], [obs.sum()]
    for action in random_actions(seed, 40):
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        observations.append(obs.sum())
        if terminated or truncated:
            break
    return rows, rewards, observations


def test_a_seed_gives_the_same_episode_and_another_seed_another() -> None:
    market = coin_market()
    first, again = _trajectory(engine_env(market), 11), _trajectory(engine_env(market), 11)
    assert first == again
    assert _trajectory(engine_env(market), 12)[0] != first[0]


def test_four_vectorised_envs_step_together_reproducibly() -> None:
    market = coin_market()

    def run() -> tuple[np.ndarray, np.ndarray]:
        envs = gymnasium.vector.SyncVectorEnv([lambda: engine_env(market)] * 4)
        obs, _ = envs.reset(seed=[0, 1, 2, 3])
        actions = np.random.default_rng(9).integers(0, 7, (30, 4))
        rewards = []
        for step in actions:
            obs, reward, _, _, _ = envs.step(step)
            rewards.append(reward)
        envs.close()
        return obs, np.array(rewards)

    obs_a, rewards_a = run()
    obs_b, rewards_b = run()
    assert obs_a.shape == (4, CONFIG.window * 9 + 2)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rewards_a, rewards_b)
    assert len({tuple(column) for column in rewards_a.T}) == 4  # four different episodes
