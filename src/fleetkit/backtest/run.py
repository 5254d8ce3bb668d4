"""The backtester: bots replayed through the live engine — the same assembled bot, cycle,
rails and brakes (engine.assembly), the sandbox venue's own matching — on tapes of bars with
a simulated clock. Only the ledger is in memory instead of in a database.

`run_fleet_backtest` replays any number of bots, each with any number of instruments, as
the fleet would run them; `run_backtest` is the one-strategy, one-tape case.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetkit.backtest.replay import FleetReplay, Progress, ReplayBot
from fleetkit.backtest.results import BacktestResult, Trade, bot_results
from fleetkit.backtest.tape import BarTape
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.engine.assembly import BotRecipe
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.trader import Sizing
from fleetkit.risk.rails import RiskLimits

__all__ = ["BacktestResult", "BacktestSpec", "Trade", "run_backtest", "run_fleet_backtest"]

BOT_ID = 1
ACCOUNT = "backtest"


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    """One strategy on one tape (a recipe is made from it: bot id 1, account "backtest")."""

    strategy: str
    params: dict[str, Any]
    sizing: Sizing
    limits: RiskLimits
    venue: VenueConfig = field(default_factory=lambda: VenueConfig(partial_fill_probability=0.0))

    def recipe(self, tape: BarTape) -> BotRecipe:
        instrument = tape.instrument
        return BotRecipe(BotIdentity(BOT_ID, ACCOUNT, instrument.market, instrument.currency),
                         {instrument.key: instrument}, self.strategy, dict(self.params),
                         self.sizing, self.limits, tape.interval_s,
                         {instrument.currency: self.sizing.usd_per_unit})


def run_backtest(spec: BacktestSpec, tape: BarTape,
                 progress: Progress | None = None) -> BacktestResult:
    [result] = run_fleet_backtest([ReplayBot(spec.recipe(tape), {tape.instrument.key: tape})],
                                  spec.venue, progress)
    return result


def run_fleet_backtest(bots: Sequence[ReplayBot], venue: VenueConfig,
                       progress: Progress | None = None, *,
                       keep_marks: bool = False) -> list[BacktestResult]:
    """Replay `bots` together (one venue, one ledger: the fleet's breaker sees them all);
    one result per bot, in the order given. `keep_marks` keeps every P&L mark."""
    replay = FleetReplay(bots, venue, keep_marks=keep_marks)
    started = time.perf_counter()
    replay.run(progress)
    return bot_results(replay, bots, time.perf_counter() - started)
