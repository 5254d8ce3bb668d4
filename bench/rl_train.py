"""PPO training time: MLP, LSTM and TFT policies side by side, each for the same
environment steps on CPU, plus the MLP with stable-baselines3's default hyperparameters
(n_steps 2,048 per environment, minibatches of 64, 10 epochs) for the ratio.

The BTC bot's shape, as bench/rl_env.py: a 24/7 coin on hourly bars, the default 1h/4h
feature set (27 columns), a window of 32 rows (866 observation values), episodes of 1,024
bars, on the fast path (FastTradingEnv), 8 environments:

    python bench/rl_train.py                                    # 100,000 steps each
    python bench/rl_train.py --steps 20000 --policies lstm tft  # fewer, some policies
    python bench/rl_train.py --json bench/results/rl_train.json

Goals (issue 16, 2 cores): MLP < 30 s, LSTM < 3 min, TFT < 5 min for 100,000 steps.
Seconds are the whole `train` call: building the environments, learning, saving the model
directory and loading it back verified.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.ml.env import FastTradingEnv
from fleetkit.ml.spec import EnvConfig
from fleetkit.ml.training import TrainingProgress, train
from report import publish
from rl_env import market

GOALS_S = {"mlp": 30.0, "lstm": 180.0, "tft": 300.0, "mlp_sb3_defaults": None}


def run(name: str, policy: str, steps: int, envs: int, factory: Any,
        sb3_defaults: bool, threads: int) -> dict[str, Any]:
    last: list[TrainingProgress] = []
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        train(factory, policy, steps, seed=0, out_dir=Path(out), n_envs=envs,
              progress_callback=last.append, sb3_defaults=sb3_defaults, threads=threads)
        seconds = time.perf_counter() - started
    done = last[-1]
    result = {"policy": policy, "sb3_defaults": sb3_defaults, "steps": done.steps,
              "seconds": round(seconds, 1), "steps_per_s": round(done.steps / seconds),
              "mean_episode_reward": done.mean_episode_reward,
              "goal_s_per_100k": GOALS_S[name],
              "seconds_per_100k": round(seconds * 100_000 / done.steps, 1)}
    print(f"{name:>17}: {result['seconds']:>7} s for {done.steps:,} steps, "
          f"{result['steps_per_s']:>6,} steps/s, {result['seconds_per_100k']} s per "
          f"100,000 (goal {GOALS_S[name]})", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--bars", type=int, default=6_000)
    parser.add_argument("--policies", nargs="+", default=list(GOALS_S),
                        choices=list(GOALS_S))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    recipe, tape, matrix = market(args.bars)
    config = EnvConfig(window=32, episode_bars=1024)
    venue = VenueConfig(partial_fill_probability=0.0)

    def factory() -> FastTradingEnv:
        return FastTradingEnv(recipe, tape, matrix, config=config, venue=venue)

    results: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (2-core dev VM shared "
                   f"with other work), Python {platform.python_version()}, torch "
                   f"{torch.__version__}",
        "date": "2026-12-07", "envs": args.envs, "torch_threads": args.threads,
        "window": config.window,
        "features": len(matrix.columns), "observation": config.window * len(matrix.columns)
        + 2, "runs": {}}
    for name in args.policies:
        policy = name.removesuffix("_sb3_defaults")
        results["runs"][name] = run(name, policy, args.steps, args.envs, factory,
                                    sb3_defaults=name.endswith("_sb3_defaults"),
                                    threads=args.threads)
    runs = results["runs"]
    if "mlp" in runs and "mlp_sb3_defaults" in runs:
        results["sb3_defaults_over_ours"] = round(
            runs["mlp_sb3_defaults"]["seconds"] / runs["mlp"]["seconds"], 1)
        print(f"MLP, SB3 defaults / ours: {results['sb3_defaults_over_ours']}x")
    print(f"{results['command']}  |  {results['machine']}  |  {results['date']}")
    publish(results, args.json)


if __name__ == "__main__":
    main()
