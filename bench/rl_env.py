"""Raw environment steps per second: the engine path (TradingEnv, the assembled bot) and
the fast path (FastTradingEnv) side by side, random actions, resetting as episodes end.

The BTC bot's shape: a 24/7 coin on hourly bars with the default 1h/4h feature set (every
indicator, every calendar feature; 1,504 bars of warm-up), a window of 32 rows, episodes
of 1,024 bars, shorting allowed, the backtest venue's costs:

    python bench/rl_env.py                          # 20,000 steps each
    python bench/rl_env.py --steps 2000             # a smoke run
    python bench/rl_env.py --json bench/results/rl_env.json

Steps are timed after the environment is built (features, normalisation, price columns);
the build is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.core.instruments import AssetClass, Instrument
from fleetkit.core.sessions import Session
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.trader import Sizing
from fleetkit.features import default_feature_set
from fleetkit.features.batch import compute_features
from fleetkit.features.columns import BarColumns
from fleetkit.ml.env import FastTradingEnv, TradingEnv
from fleetkit.ml.spec import EnvConfig
from fleetkit.risk.rails import RiskLimits

START = datetime(2024, 1, 1, tzinfo=UTC)
COIN = Instrument("BTC/USDT", "CRYPTO", AssetClass.CRYPTO, "USDT", Decimal("0.01"),
                  Decimal("0.001"), "24/7")


def market(bars: int) -> tuple[BotRecipe, BarTape, Any]:
    rng = np.random.default_rng(1)
    starts = int(START.timestamp()) + 3600 * np.arange(bars, dtype=np.int64)
    close = np.round(40_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, bars))), 2)
    open_ = np.round(np.r_[40_000.0, close[:-1]] * np.exp(rng.normal(0.0, 0.0005, bars)), 2)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.002, bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.002, bars)))
    volume = rng.lognormal(8.0, 0.5, bars)
    days = bars // 24 + 2
    sessions = [Session(START + timedelta(days=d), START + timedelta(days=d + 1))
                for d in range(days)]
    matrix = compute_features(default_feature_set(["1h", "4h"]),
                              BarColumns("1h", starts, open_, high, low, close, volume),
                              sessions)
    tape = BarTape(COIN, 3600, starts, open_, high, low, close, volume)
    recipe = BotRecipe(BotIdentity(1, "rl-bench", "CRYPTO", "USDT"), {COIN.key: COIN},
                       "rl_agent", {}, Sizing(Decimal(10_000), Decimal(1), allow_short=True),
                       RiskLimits(Decimal(10**6), Decimal(10**6), Decimal(10), 600.0, None,
                                  None), 3600, {"USDT": Decimal(1)})
    return recipe, tape, matrix


def steps_per_second(env: TradingEnv | FastTradingEnv, steps: int) -> dict[str, float]:
    actions = np.random.default_rng(7).integers(0, env.action_space.n, steps).tolist()
    env.reset(seed=0)
    fills = episodes = 0
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        fills += info["fills"]
        if terminated or truncated:
            episodes += 1
            env.reset()
    elapsed = time.perf_counter() - started
    return {"steps": steps, "seconds": round(elapsed, 3),
            "steps_per_s": round(steps / elapsed), "fills": fills, "episodes": episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--bars", type=int, default=6_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = EnvConfig(window=32, episode_bars=1024)
    venue = VenueConfig(partial_fill_probability=0.0)
    recipe, tape, matrix = market(args.bars)
    results: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "date": datetime.now(UTC).date().isoformat(),
        "bars": args.bars, "window": config.window, "episode_bars": config.episode_bars,
        "features": len(matrix.columns)}
    for name, kind in (("engine", TradingEnv), ("fast", FastTradingEnv)):
        built = time.perf_counter()
        env = kind(recipe, tape, matrix, config=config, venue=venue)
        build_s = time.perf_counter() - built
        results[name] = dict(steps_per_second(env, args.steps), build_s=round(build_s, 3))
        print(f"{name:>6}: {results[name]['steps_per_s']:>8,} steps/s "
              f"({args.steps:,} steps in {results[name]['seconds']} s, "
              f"{results[name]['fills']:,} fills, {results[name]['episodes']} episodes; "
              f"built in {build_s:.2f} s)")
    ratio = results["fast"]["steps_per_s"] / results["engine"]["steps_per_s"]
    print(f"fast / engine: {ratio:.1f}x")
    print(f"{results['command']}  |  {results['machine']}  |  {results['date']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
