"""Live inference per bot bar: the `rl_policy` strategy's whole `on_bar` (each model's
LiveFeatures update, the finiteness check, normalisation, the observation, the policy's
predict, the levels combined) timed bar by bar, for MLP, LSTM and TFT models and for the
built-in demo's two learning bots' layouts.

The models are the demo's own (its config, feature sets, windows and bars: the sandbox's
invented history, as `fleet ml train` finds it for a sandbox bot), trained for only a few
thousand steps — the training is not what is measured:

    rl-btc    MLP per 1h / 4h (1h: returns, returns(4), rsi, bollinger, atr, macd; 4h:
              returns, rsi, bollinger; time of day, day of week), window 16, 24/7 UTC days
    rl-nifty  TFT per 15m / 1h / 1d (NIFTY 50 on NSE sessions), window 16

Timed layouts: one MLP (rl-btc's 1h model alone), one LSTM (the same features, trained as
an LSTM), one TFT (rl-nifty's 15m model alone), rl-btc (1h + 4h) and rl-nifty (15m + 1h
+ 1d), each over the finest timeframe's bars after every model has decided once (at least
2,000), with torch's thread count as a bot leaves it (torch's default: one per core) and
with one thread:

    python bench/rl_inference.py                                  # both thread settings
    python bench/rl_inference.py --steps 2048 --repeat 3 --json bench/results/rl_inference.json

Bars where a slower model decides too are reported apart ("slow bars"); so are the bars
where the strategy asks the calendar for another month of sessions (NSE only: pandas,
once a month).

Goals (issue 16, 2-core VM): p99 under 5 ms for MLP, under 20 ms for TFT.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fleetkit.config.loader import LoadedConfig, demo_config_text, parse_config
from fleetkit.core.market_data import Bar
from fleetkit.ml.bot_data import BotTrainingData, bot_settings, load_bot_training_data
from fleetkit.ml.bot_training import TrainingRun, train_bot_model
from fleetkit.strategy.base import StrategyContext
from fleetkit.strategy.learned import RlPolicyStrategy, build_rl_policy
from report import publish

GOALS_MS = {"mlp": 5.0, "lstm": None, "tft": 20.0, "rl-btc": 5.0, "rl-nifty": 20.0}
DEFAULT_THREADS = torch.get_num_threads()  # what a bot runs with: nothing sets it


def percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"bars": 0}
    ms = np.asarray(values) * 1000
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"bars": len(values), "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3),
            "p99_ms": round(float(p99), 3), "max_ms": round(float(ms.max()), 3)}


def bars_of(data: BotTrainingData) -> list[Bar]:
    tape = data.tape
    return [Bar(datetime.fromtimestamp(int(tape.ts_s[i]), UTC), float(tape.open[i]),
                float(tape.high[i]), float(tape.low[i]), float(tape.close[i]),
                float(tape.volume[i])) for i in range(len(tape))]


def time_layout(directories: list[Path], combine: str, data: BotTrainingData,
                bars: list[Bar]) -> dict[str, Any]:
    """Every bar through a freshly built strategy; timings kept from the first bar on which
    every model has a level."""
    strategy = build_rl_policy([str(d) for d in directories], None, combine)
    assert isinstance(strategy, RlPolicyStrategy)
    if strategy.refused:
        raise SystemExit(strategy.refused)
    recipe = data.recipe
    instrument = next(iter(recipe.instruments.values()))
    ctx = StrategyContext(instrument, position_size_usd=recipe.sizing.position_size_usd,
                          usd_per_unit=recipe.sizing.usd_per_unit)
    finest_only: list[float] = []
    slow: list[float] = []
    calendar: list[float] = []
    every: list[float] = []
    warm_bars = 0
    for bar in bars:
        before = [m.decisions for m in strategy.models]
        asks_calendar = int(bar.ts.timestamp()) >= strategy._known_until_s
        started = time.perf_counter()
        signal = strategy.on_bar(bar, ctx)
        took = time.perf_counter() - started
        if signal is None:
            warm_bars += 1
            continue
        every.append(took)
        if asks_calendar and strategy._book is not None and warm_bars:
            calendar.append(took)
        decided = [m.decisions - b for m, b in zip(strategy.models, before, strict=True)]
        (slow if any(decided[1:]) else finest_only).append(took)
    return {"models": [f"{m.timeframe} {m.policy.model.manifest.policy}"  # type: ignore[attr-defined]
                       for m in strategy.models],
            "combine": combine, "warmup_bars": warm_bars, "all": percentiles(every),
            "finest_only": percentiles(finest_only), "slow_bars": percentiles(slow),
            "calendar_bars": percentiles(calendar) | {"count": len(calendar)}}


def main() -> int:
    args = arguments()
    home = Path(tempfile.mkdtemp(prefix="rl-inference-"))
    try:
        result = measure(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    publish(result, args.json)
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2048, help="training steps per model")
    parser.add_argument("--history-bars", type=int, default=3000,
                        help="bars of the finest timeframe (after the features' warm-up)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({DEFAULT_THREADS, 1},
                                                                         reverse=True))
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of every layout per thread setting, interleaved")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def measure(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """Trains the models under `home`, then times every layout."""
    loaded = LoadedConfig(parse_config(demo_config_text(), "demo", home=home), "demo", home)
    started = time.perf_counter()
    trained: dict[str, Path] = {}
    finest: dict[str, BotTrainingData] = {}
    for name, extra in (("rl-btc", None), ("rl-nifty", None), ("rl-btc", "lstm")):
        bot = bot_settings(loaded, name)
        assert bot.ml is not None
        timeframes = bot.ml.timeframes if extra is None else bot.ml.timeframes[:1]
        key = name if extra is None else f"{name}-{extra}"
        for timeframe in timeframes:
            data = load_bot_training_data(loaded, bot, timeframe, source="sandbox",
                                          history_bars=args.history_bars)
            data = replace(data, models_dir=home / "models" / key)
            finest.setdefault(key, data)
            run = TrainingRun(policy=extra or bot.ml.policy, steps=args.steps, seed=0,
                              device="cpu", n_envs=bot.ml.n_envs, tensorboard=False)
            model = train_bot_model(data, run)
            print(f"trained {key} {timeframe} ({run.policy}, {args.steps} steps, "
                  f"{len(data.tape)} bars) in {model.seconds:.1f} s", flush=True)
        trained[key] = home / "models" / key
    setup_s = time.perf_counter() - started
    btc, nifty, lstm = trained["rl-btc"], trained["rl-nifty"], trained["rl-btc-lstm"]
    combine = {n: str(bot_settings(loaded, n).params.get("combine", "mean"))
               for n in ("rl-btc", "rl-nifty")}
    layouts = {  # name: (model directories, combine rule, whose bars)
        "mlp": ([btc / "1h"], "mean", "rl-btc"),
        "lstm": ([lstm / "1h"], "mean", "rl-btc"),
        "tft": ([nifty / "15m"], "mean", "rl-nifty"),
        "rl-btc": ([btc / "1h", btc / "4h"], combine["rl-btc"], "rl-btc"),
        "rl-nifty": ([nifty / t for t in ("15m", "1h", "1d")], combine["rl-nifty"],
                     "rl-nifty"),
    }
    bars = {key: bars_of(finest[key]) for key in ("rl-btc", "rl-nifty")}
    result: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}, torch {torch.__version__}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "torch_default_threads": DEFAULT_THREADS, "training_steps": args.steps,
        "setup_s": round(setup_s, 1),
        "bars": {key: len(v) for key, v in bars.items()}, "goals_p99_ms": GOALS_MS,
        "runs": {}}
    for repeat in range(args.repeat):  # thread settings interleaved, run after run
        for threads in args.threads:
            torch.set_num_threads(threads)
            runs = result["runs"].setdefault(f"threads_{threads}", [])
            layouts_run: dict[str, Any] = {"load_average": [round(x, 2)
                                                            for x in os.getloadavg()]}
            runs.append(layouts_run)
            for name, (directories, rule, whose) in layouts.items():
                timed = layouts_run[name] = time_layout(directories, rule, finest[whose],
                                                        bars[whose])
                all_, slow = timed["all"], timed["slow_bars"]
                print(f"run {repeat + 1}, {threads} thread(s) {name:>8}: p50 "
                      f"{all_['p50_ms']:.3f} ms, p99 {all_['p99_ms']:.3f} ms, max "
                      f"{all_['max_ms']:.2f} ms over {all_['bars']} bars; slow bars p99 "
                      f"{slow.get('p99_ms', '-')} ms ({slow['bars']}); goal {GOALS_MS[name]}",
                      flush=True)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


if __name__ == "__main__":
    raise SystemExit(main())
