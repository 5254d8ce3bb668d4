"""Fleet replay speed: the 35-bot demo fleet backtested together, as `fleet backtest --all`
replays it — one venue, one ledger, every bot's cycle at each of its bar closes.

    python bench/fleet_replay.py                                   # 30 days, 1-minute bars
    python bench/fleet_replay.py --days 30 --json bench/results/fleet_replay.json

Each bot is the config's (`runtime.wiring.bot_recipe`, ids 1..35); each instrument's tape is
the sandbox's invented prices (the config's seed and calendars, `backtest.tape.generated_tape`)
cut to the bars that start within `--days` days of `--start`: 24/7 crypto has a bar every
minute, an equity market only while it is in session. The demo trades BTC/USDT on 1-minute
and on 5-minute bars, and one venue serves one tape per instrument, so every bot is replayed
on `--interval` bars, as `fleet backtest --all --interval 1m` does.

The time is `run_fleet_backtest` from the first bar to the last (bar making and the results
are not timed); bars/s counts every bot's bars.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from fleetkit.backtest.replay import ReplayBot
from fleetkit.backtest.run import run_fleet_backtest
from fleetkit.backtest.tape import BarTape, generated_tape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.config.loader import BUILTIN_DEMO, load_config
from fleetkit.config.models import FleetConfig
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import interval_seconds
from fleetkit.engine.assembly import BotRecipe
from fleetkit.runtime.calendar_watch import market_calendars
from fleetkit.runtime.wiring import bot_instruments, bot_recipe, sandbox_catalog
from report import publish


def recipes(config: FleetConfig, interval: str) -> list[BotRecipe]:
    catalog = sandbox_catalog(config)
    made = []
    for bot_id, settings in enumerate(config.bots, start=1):
        settings = settings.model_copy(update={"bar_interval": interval})
        made.append(bot_recipe(config, settings, bot_id, bot_instruments(settings, catalog)))
    return made


def window_tape(prices: InventedPrices, instrument: Instrument, start: datetime, days: int,
                interval_s: int) -> BarTape:
    """The bars starting in [start, start + days): as many as a market open all the time
    could have, then cut where the window ends."""
    most = days * 86_400 // interval_s
    tape = generated_tape(prices, instrument, start, most, interval_s)
    end_s = int((start + timedelta(days=days)).timestamp())
    keep = int(np.searchsorted(tape.ts_s, end_s, side="left"))
    return BarTape(instrument, interval_s, tape.ts_s[:keep], tape.open[:keep],
                   tape.high[:keep], tape.low[:keep], tape.close[:keep], tape.volume[:keep])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", default="2024-01-02")
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    loaded = load_config(BUILTIN_DEMO)
    config = loaded.config
    made = recipes(config, args.interval)
    interval_s = interval_seconds(args.interval)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    prices = InventedPrices(config.sandbox.seed, sandbox_catalog(config),
                            market_calendars(loaded))
    instruments = {k: i for r in made for k, i in r.instruments.items()}
    tapes = {k: window_tape(prices, i, start, args.days, interval_s)
             for k, i in instruments.items()}
    # A bot whose market has no bar in the window (e.g. JPX over New Year) sits it out.
    made = [r for r in made if all(len(tapes[k]) for k in r.instruments)]
    bots = [ReplayBot(r, {k: tapes[k] for k in r.instruments}) for r in made]
    venue = VenueConfig(seed=config.sandbox.seed, fee_bps=config.sandbox.fee_bps,
                        slippage_bps=config.sandbox.slippage_bps, partial_fill_probability=0.0)
    started = time.perf_counter()
    results = run_fleet_backtest(bots, venue)
    wall_s = time.perf_counter() - started
    replay_s = results[0].replay_s
    bars = sum(r.bars for r in results)
    per_market = Counter[str]()
    for recipe, result in zip(made, results, strict=True):
        per_market[recipe.identity.market] += result.bars
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
                   f"{platform.python_version()}",
        "config": "built-in demo fleet", "bots": len(bots),
        "instruments": len({k for r in made for k in r.instruments}),
        "interval": args.interval, "days": args.days, "start": args.start,
        "bars": bars, "bars_by_market": dict(per_market),
        "replay_s": round(replay_s, 3), "bars_per_s": round(bars / replay_s),
        "with_results_s": round(wall_s, 3),
        "orders": sum(r.orders for r in results), "fills": sum(r.fills for r in results),
        "denials": sum(r.denials for r in results),
        "halts": sum(len(r.halts) for r in results),
    }
    publish(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
