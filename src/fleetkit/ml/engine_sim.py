"""The engine path: the agent trades through the bot the kernel assembles (engine.assembly)
on the sandbox's own venue and an in-memory ledger, as `fleet backtest` replays it, one
cycle per decision: the same trader, rails, write-ahead orders, fill checks and brakes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from fleetkit.backtest.tape import BarTape
from fleetkit.backtest.venue import SimClock
from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.market_data import Bar
from fleetkit.core.numbers import ZERO
from fleetkit.core.signals import SignalLevel
from fleetkit.engine.assembly import AssembledBot, BotRecipe, assemble_bot
from fleetkit.ml.agent import AgentStrategy
from fleetkit.ml.prices import NextOpenPrices
from fleetkit.ml.sim import StepOutcome, environment_venue, single_instrument
from fleetkit.store.memory import MemoryLedger


class EngineSim:
    """One assembled bot per episode, stepped one bar close at a time."""

    def __init__(self, recipe: BotRecipe, venue: VenueConfig, tape: BarTape,
                 prices: NextOpenPrices) -> None:
        self.key = single_instrument(recipe, tape)
        self.recipe = recipe
        self.venue_config = environment_venue(venue, tape.interval_s)
        self.prices = prices
        self._tape = tape
        self._ends = [datetime.fromtimestamp(t, UTC)
                      for t in (tape.ts_s + tape.interval_s).tolist()]
        self.clock = SimClock(self._ends[0])
        self.ledger = MemoryLedger("rl")
        self.agent = AgentStrategy()
        self.bot: AssembledBot | None = None

    def start(self, row: int) -> None:
        self.clock = SimClock(self._ends[row])
        self.ledger = MemoryLedger("rl")
        venue = SandboxVenue(self.prices, MemoryBook(), self.clock, self.venue_config)
        broker = SandboxBroker(venue, self.recipe.identity.name, match_on_call=False)
        self.agent = AgentStrategy()
        self.bot = assemble_bot(self.recipe, self.ledger, broker, broker, self.clock,
                                record_signals=False, strategies={self.key: self.agent})

    def act(self, row: int, level: SignalLevel) -> StepOutcome:
        bot = self.bot
        if bot is None:
            raise RuntimeError("start() the simulator before acting")
        bot_id = bot.recipe.identity.id
        self.clock.set(self._ends[row])
        # Orders fill as they are submitted (never partly): only a halt can be news here.
        if bot.begin_cycle(only_if_open=True):
            return self._outcome(row, -1, bot.brakes.halt_reason())
        self.agent.level = level
        fills_before = len(self.ledger.fills(bot_id))
        bot.trade(self.key, self._bar(row), False)
        self.clock.set(self._ends[row + 1])
        held = bot.bot.position(self.key) != ZERO
        bot.end_cycle({self.key: self.prices.quote_at_row(row + 1)} if held else {})
        halt = bot.brakes.halt_reason() if bot.brakes.check_halt() else ""
        return self._outcome(row, fills_before, halt)

    def _bar(self, row: int) -> Bar:
        t = self._tape
        return Bar(datetime.fromtimestamp(int(t.ts_s[row]), UTC), float(t.open[row]),
                   float(t.high[row]), float(t.low[row]), float(t.close[row]),
                   float(t.volume[row]))

    def _outcome(self, row: int, fills_before: int, halt: str) -> StepOutcome:
        bot_id = self.recipe.identity.id
        position = self.ledger.positions(bot_id).get(self.key)
        new_fills = self.ledger.fills(bot_id)[fills_before:] if fills_before >= 0 else []
        if position is None:
            return StepOutcome(0.0, 0.0, 0.0, halt=halt)
        mark = self.prices.close[row + 1]
        net = position.net_pnl(mark)
        fees = sum((f.fee for f in new_fills), ZERO)
        opening = self.prices.open[row + 1]
        slippage = sum((abs(f.price - opening) * f.quantity for f in new_fills), ZERO)
        return StepOutcome(float(position.quantity), float(position.average_price), float(net),
                           len(new_fills), float(new_fills[-1].price) if new_fills else np.nan,
                           float(fees), float(slippage), halt)
