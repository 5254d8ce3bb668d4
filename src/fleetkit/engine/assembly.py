"""One way to put a bot together from its parts, for live trading, backtests and learning.

A `BotRecipe` says what a bot is (instruments, strategy, sizing, limits, bar interval,
reconciliation tolerances), independent of where it runs; `assemble_bot` joins it to a
ledger, a broker, market data and a clock. The live runner (through runtime.wiring, which
reads the config), the backtester and a learning environment all call it, so the order
path, the rails and the brakes they run are the same objects built the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar
from fleetkit.core.numbers import ZERO
from fleetkit.engine.bot import InstrumentSlot, TradingBot
from fleetkit.engine.brakes import Brakes, Breach, MarksOrThunk
from fleetkit.engine.execution import BotIdentity, Execution, ExecutionEngine
from fleetkit.engine.exits import NO_EXITS, ExitRules
from fleetkit.engine.ports import Broker, Clock, Ledger, MarketData
from fleetkit.engine.reconcile import Tolerances
from fleetkit.engine.sync import OrderSync, SyncReport
from fleetkit.engine.trader import Sizing, Trader
from fleetkit.risk.rails import RiskLimits
from fleetkit.strategy.base import Strategy, build_strategy


@dataclass(frozen=True, slots=True)
class BotRecipe:
    """What a bot is. `usd_per_currency`: reference FX rates (USD per unit) for USD limits.
    `cash_currencies`: instrument -> currency for comparing cash at reconciliation (empty:
    cash is not compared)."""

    identity: BotIdentity
    instruments: Mapping[str, Instrument]
    strategy: str
    params: Mapping[str, Any]
    sizing: Sizing
    limits: RiskLimits
    interval_s: int
    usd_per_currency: Mapping[str, Decimal]
    tolerances: Tolerances = field(default_factory=Tolerances)
    cash_currencies: Mapping[str, str] = field(default_factory=dict)
    exits: ExitRules = NO_EXITS
    # instrument -> the instrument whose bars its strategy reads, where not its own
    signals: Mapping[str, str] = field(default_factory=dict)
    # instrument (a futures contract) -> its underlying, for a slot that rolls (engine.rolls)
    rolls: Mapping[str, str] = field(default_factory=dict)

    @property
    def usd_per_unit(self) -> Decimal:
        return self.usd_per_currency[self.identity.currency]


class AssembledBot:
    """A bot joined to its ledger and venue: the per-bar path (`bot`), the order path
    (`engine`), reconciliation (`sync`) and the brakes around the orders (`brakes`).

    Every bar close is one cycle, the same wherever the bot runs:

        halted = begin_cycle()        fills since the last cycle; the kill switches
        trade(key, bar, halted)       each instrument's new bar: decided and acted on, or
                                      (halted) only fed to the strategy
        end_cycle()                   positions marked, today's P&L, the breakers
    """

    __slots__ = ("_held", "_market_data", "bot", "brakes", "engine", "recipe", "sync")

    def __init__(self, recipe: BotRecipe, bot: TradingBot, engine: ExecutionEngine,
                 sync: OrderSync, brakes: Brakes, market_data: MarketData) -> None:
        self.recipe = recipe
        self.bot = bot
        self.engine = engine
        self.sync = sync
        self.brakes = brakes
        self._market_data = market_data

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self.recipe.instruments

    @property
    def interval_s(self) -> int:
        return self.recipe.interval_s

    @property
    def limits(self) -> RiskLimits:
        return self.recipe.limits

    def begin_cycle(self, *, only_if_open: bool = False) -> bool:
        """Apply the fills the broker reported since the last cycle (`only_if_open`: only
        when orders are open, i.e. when a fill can have happened at all), then read the
        kill switches; a halt seen for the first time pulls resting orders. True: halted."""
        if not only_if_open or self.bot.has_open_orders:
            self.brakes.position_may_change()
            self.sync.sync_fills(SyncReport())
            self.bot.refresh()
        return self.brakes.check_halt()

    def trade(self, key: str, bar: Bar, halted: bool) -> Execution | None:
        """One new bar of one instrument: acted on, or only fed to the strategy when halted
        (so it never records a decision that was not acted on)."""
        if halted:
            self.bot.warm_up(key, [bar], advance=True)
            return None
        execution = self.bot.on_bar(key, bar)
        if execution is not None:
            self.brakes.position_may_change()
        return execution

    def end_cycle(self, marks: MarksOrThunk | None = None,
                  prices: Mapping[str, float] | None = None) -> Breach | None:
        """Mark what is held at the market's prices now, record today's P&L, and run the
        daily-loss breakers; the breach that halted a switch just now, if any. `marks`
        (and `prices`, the same as floats): the held instruments' quotes, when the caller
        has them already (a replay reads them from the tape the venue prices from); else
        they are asked of the market data."""
        if marks is None:
            marks = {k: self._market_data.quote(k) for k in self.bot.slots
                     if self.bot.position(k) != ZERO}
        return self.brakes.mark(marks, prices)


def assemble_bot(recipe: BotRecipe, ledger: Ledger, broker: Broker, market_data: MarketData,
                 clock: Clock, *, record_signals: bool = True,
                 unknown_after_s: float = 15.0, lazy_marks: bool = False,
                 strategies: Mapping[str, Strategy] | None = None) -> AssembledBot:
    """`lazy_marks`: hold back marks nobody reads (engine.brakes), for a replay that keeps no
    P&L history; decisions are the same. `strategies`: each instrument's strategy, made
    already (a learning environment's agent, which no config may name); by default the
    recipe's, built from the registry."""
    identity = recipe.identity
    brakes = Brakes(identity, ledger, broker, clock, recipe.limits,
                    recipe.usd_per_currency[identity.currency], recipe.limits.fill_checks,
                    lazy_marks=lazy_marks)
    engine = ExecutionEngine(identity, ledger, broker, market_data, clock, recipe.limits,
                             recipe.usd_per_currency, before_order=brakes.before_order)
    slots = {key: InstrumentSlot(inst, strategies[key] if strategies is not None
                                 else build_strategy(recipe.strategy, dict(recipe.params)),
                                 Trader(inst, recipe.sizing), recipe.signals.get(key),
                                 recipe.rolls.get(key))
             for key, inst in recipe.instruments.items()}
    bot = TradingBot(slots, engine, ledger, clock, record_signals=record_signals,
                     exits=recipe.exits)
    return AssembledBot(recipe, bot, engine, order_sync(recipe, ledger, broker, clock,
                                                        unknown_after_s=unknown_after_s),
                        brakes, market_data)


def order_sync(recipe: BotRecipe, ledger: Ledger, broker: Broker, clock: Clock, *,
               unknown_after_s: float = 15.0) -> OrderSync:
    """The bot's reconciliation with its broker, with the recipe's checks and tolerances."""
    instruments = recipe.instruments
    return OrderSync(recipe.identity, ledger, broker, clock,
                     {k: i.lot_size for k, i in instruments.items()},
                     unknown_after_s=unknown_after_s, fill_checks=recipe.limits.fill_checks,
                     currencies=recipe.cash_currencies or None, tolerances=recipe.tolerances,
                     margined=[k for k, i in instruments.items() if i.margined],
                     # A rolling slot's earlier contracts are no longer among its instruments
                     # but their P&L moved the account's cash all the same.
                     contract_markets={instruments[k].market: instruments[k].currency
                                       for k in recipe.rolls if k in instruments})
