"""The fast path is allowed only because it does what the engine path does: over whole
episodes of random actions it must hold the same positions (exactly), make the same fills
at the same prices, end on the same step for the same reason, and pay the same rewards.

Where the two can differ: the engine keeps money in Decimal, the fast path in floats, so
equity (and everything computed from it) agrees to rounding, pinned here at 1e-9 of the
position size; quantities are whole lots in both and must be equal."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from fleetkit.ml.spec import EnvConfig
from tests.unit.ml.envs import (
    coin_market,
    engine_env,
    fast_env,
    limits,
    random_actions,
    share_market,
)

CONFIG = EnvConfig(window=8, episode_bars=200)


def _episode(env: Any, seed: int, actions: list[int]) -> list[dict[str, Any]]:
    _, info = env.reset(seed=seed)
    steps = [dict(info, reward=0.0, terminated=False, truncated=False)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append(dict(info, reward=reward, terminated=terminated, truncated=truncated,
                          obs=obs))
        if terminated or truncated:
            break
    return steps


def _markets() -> dict[str, Any]:
    coin = coin_market()
    bot, tape, matrix = coin
    return {
        "coin": coin,
        "coin-other-prices": coin_market(seed=8),
        "share-long-only": share_market(),
        "share-long-only-other-prices": share_market(seed=6),
        # Orders over $6,000 of position denied by the max-position rail.
        "coin-position-limit": (replace(bot, limits=limits(max_position_value_usd=Decimal(6000))),
                                tape, matrix),
        "coin-daily-loss-breaker": (replace(bot, limits=limits(Decimal(60))), tape, matrix),
    }


MARKETS = _markets()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", list(MARKETS))
def test_fast_path_gives_the_engine_paths_positions_and_rewards(name: str, seed: int) -> None:
    market = MARKETS[name]
    actions = random_actions(100 + seed, 200)
    engine = _episode(engine_env(market, CONFIG), seed, actions)
    fast = _episode(fast_env(market, CONFIG), seed, actions)
    assert len(engine) == len(fast)
    assert engine[0]["row"] == fast[0]["row"]
    for e, f in zip(engine, fast, strict=True):
        assert (e["row"], e["position"], e["fills"], e["terminated"], e["truncated"],
                bool(e["halt"])) == (f["row"], f["position"], f["fills"], f["terminated"],
                                     f["truncated"], bool(f["halt"]))
        assert e["fill_price"] == f["fill_price"] or (np.isnan(e["fill_price"]) and np.isnan(
            f["fill_price"]))
        assert f["reward"] == pytest.approx(e["reward"], rel=1e-9, abs=1e-9)
        assert f["equity"] == pytest.approx(e["equity"], rel=1e-9, abs=1e-9)
        assert f["fees"] == pytest.approx(e["fees"], abs=1e-7)
        if "obs" in e:
            np.testing.assert_allclose(f["obs"], e["obs"], rtol=1e-6, atol=1e-6)


def test_the_comparison_meets_fills_denials_shorts_and_a_breaker() -> None:
    """The cases above are not vacuous: trading happens in all, and the special ones do
    what they are there for."""
    actions = random_actions(101, 200)
    found = {name: _episode(fast_env(market, CONFIG), 1, actions)
             for name, market in MARKETS.items()}
    assert all(sum(s["fills"] for s in steps) >= 10 for steps in found.values())
    assert min(s["position"] for s in found["coin"]) < 0
    assert min(s["position"] for s in found["share-long-only"]) == 0
    coin_peak = max(abs(s["position"]) for s in found["coin"])
    capped_peak = max(abs(s["position"]) for s in found["coin-position-limit"])
    assert capped_peak < coin_peak
    assert "daily loss" in found["coin-daily-loss-breaker"][-1]["halt"]
