"""TradingBot: one bot's per-bar path — strategy -> trader -> execution — shared by the live
runner and the backtester, so what was tested is exactly what trades.

It keeps the bot's position and in-flight quantities in memory between ledger refreshes
(a backtest replays a million bars and must not query per bar); anything that matters
after a restart goes through the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from fleetkit.core.errors import StrategyError
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Order
from fleetkit.core.signals import Signal, SignalLevel
from fleetkit.engine import exits
from fleetkit.engine.execution import Execution, ExecutionEngine
from fleetkit.engine.exits import NO_EXITS, ExitRules
from fleetkit.engine.ports import BotState, Clock, InstrumentState, Ledger, SignalRecord
from fleetkit.engine.trader import TradeDecision, Trader
from fleetkit.strategy.base import Strategy, StrategyContext

_HOLD = SignalLevel.HOLD  # a constant: an enum member looked up costs, per bar


@dataclass(slots=True)
class InstrumentSlot:
    """One instrument a bot trades, with its own strategy instance and trader. `bars_from`:
    the instrument whose bars the strategy reads, when not the traded one (a bot trading
    NIFTY futures that decides on the NIFTY index); `underlying`: set for a slot that holds
    the front-month future of this underlying and rolls it (engine.rolls)."""

    instrument: Instrument
    strategy: Strategy
    trader: Trader
    bars_from: str | None = None
    underlying: str | None = None

    @property
    def bars_key(self) -> str:
        return self.bars_from or self.instrument.key


class TradingBot:
    def __init__(self, slots: Mapping[str, InstrumentSlot], engine: ExecutionEngine,
                 ledger: Ledger, clock: Clock, *, record_signals: bool = True,
                 exits: ExitRules = NO_EXITS) -> None:
        """`exits`: the protective exits enforced on every instrument (engine.exits)."""
        self.bot = engine.bot
        self._exits = exits
        self._exits_on = exits.active
        # Whose decisions read the position's average price, so that a fill must refresh
        # it from the ledger at once: the exits, and a strategy that says it does (a learned
        # policy's observation). Everyone else waits for the next cycle's refresh, which
        # keeps a read off the order path.
        self._tracks_average = self._exits_on or any(
            getattr(slot.strategy, "reads_average_price", False) for slot in slots.values())
        self._average: dict[str, Decimal] = {}
        self.slots = dict(slots)
        self.engine = engine
        self._ledger = ledger
        self._clock = clock
        self._record_signals = record_signals
        self.state = BotState()
        self._position: dict[str, Decimal] = {}
        self._open: dict[str, Decimal] = {}
        self._any_open = False
        self._contexts = {key: _context(slot) for key, slot in slots.items()}

    # --- ledger views -------------------------------------------------------------------

    def load(self) -> None:
        """Read persisted state and positions (at boot, and after any sync)."""
        self.state = self._ledger.load_state(self.bot.id)
        self.refresh()

    def refresh(self) -> None:
        positions = self._ledger.positions(self.bot.id)
        self._position = {key: p.quantity for key, p in positions.items()}
        self._average = {key: p.average_price for key, p in positions.items()}
        open_quantity: dict[str, Decimal] = {}
        for order in self._ledger.open_orders(self.bot.id):
            open_quantity[order.instrument] = (open_quantity.get(order.instrument, ZERO)
                                               + order.signed_remaining)
        self._open = open_quantity
        self._any_open = any(open_quantity.values())

    def save(self) -> None:
        for key, state in self.state.instruments.items():
            try:
                json.dumps(state.strategy_state)
            except (TypeError, ValueError) as exc:
                name = self.slots[key].strategy.name if key in self.slots else "?"
                raise StrategyError(f"strategy {name} left state that is not JSON: {exc}") from exc
        self._ledger.save_state(self.bot.id, self.state, self._clock.now())

    @property
    def has_open_orders(self) -> bool:
        return self._any_open

    def position(self, key: str) -> Decimal:
        return self._position.get(key, ZERO)

    def open_quantity(self, key: str) -> Decimal:
        return self._open.get(key, ZERO)

    def rekey(self, old_key: str, slot: InstrumentSlot) -> None:
        """Trade `slot` (its instrument new: the next futures contract) where `old_key`'s slot
        traded, keeping the strategy, its state and its context: what a roll does once the
        position is to move. The position and orders stay the ledger's, by instrument."""
        new_key = slot.instrument.key
        old_slot = self.slots.pop(old_key)
        self.slots[new_key] = slot
        slot.strategy = old_slot.strategy
        state = self.state.instruments.pop(old_key, None)
        if state is not None:
            self.state.instruments[new_key] = state
        self._contexts.pop(old_key, None)
        self._contexts[new_key] = _context(slot)

    def forget_signal(self, key: str) -> None:
        """Make the trader act on the next signal even if it repeats the last one (used when
        the order for the last one turned out never to have reached the broker)."""
        self.state.of(key).last_signal = None

    # --- the per-bar path -----------------------------------------------------------------

    def warm_up(self, key: str, bars: list[Bar], *, advance: bool = False) -> None:
        """Replay bars through the strategy to rebuild its indicators; the state it writes
        meanwhile is scratch and thrown away, and nothing is traded. `advance` moves the
        bot's bar cursor past them (bars skipped while catching up or halted)."""
        slot = self.slots[key]
        scratch = _context(slot, self.position(key), warming_up=True,
                           average_price=self._average.get(key, ZERO))
        for bar in bars:
            self._call(slot, bar, scratch)
        if advance and bars:
            state = self.state.of(key)
            state.last_bar_ts = bars[-1].ts
            if self._exits_on:  # these bars were lived through: the exits saw them too
                side = _sign(self.position(key))
                for bar in bars:
                    exits.update(state.exit_state, bar, side, self._exits)

    def on_bar(self, key: str, bar: Bar) -> Execution | None:
        """Feed one bar and act on its signal. Bars that must not trade (catching up after
        downtime, or while halted) go through `warm_up` instead, so a strategy never records
        a decision ("entered today") that was not acted on."""
        return self._step(self.slots[key], self.state.of(key), self._contexts[key], key, bar)

    def replay(self, key: str, bars: Iterable[Bar],
               after: Callable[[Bar, Execution | None], None] | None = None) -> None:
        """on_bar over many bars with the lookups hoisted out of the loop (backtests).

        `after(bar, execution)` runs only after bars that executed an order or while orders
        are open (a backtest's matching pass), so quiet bars cost nothing extra.
        """
        slot, state, ctx = self.slots[key], self.state.of(key), self._contexts[key]
        step = self._step
        if after is None:
            for bar in bars:
                step(slot, state, ctx, key, bar)
            return
        for bar in bars:
            execution = step(slot, state, ctx, key, bar)
            if execution is not None or self._any_open:
                after(bar, execution)

    def _step(self, slot: InstrumentSlot, state: InstrumentState, ctx: StrategyContext,
              key: str, bar: Bar) -> Execution | None:
        ctx.position = position = self._position.get(key, ZERO)
        ctx.average_price = self._average.get(key, ZERO)
        ctx.state = state.strategy_state
        if self._exits_on:
            exit_now = self._exit(slot, state, key, bar, position)
            if exit_now is not None:
                return exit_now
        try:
            signal = slot.strategy.on_bar(bar, ctx)
        except Exception as exc:  # any bug in user code isolates this bot only
            raise _strategy_error(slot, bar, exc) from exc
        state.last_bar_ts = bar.ts
        if signal is None:
            return None
        if signal.__class__ is not Signal and not isinstance(signal, Signal):
            raise _bad_signal(slot, signal)
        level = signal.level
        if level is not None and (level is _HOLD or level == state.last_signal):
            # Trader.decide's own first answer (unchanged: nothing to size or send), given
            # here without the call: the same level bar after bar is a backtest's usual bar.
            return None
        decision = slot.trader.decide(signal, bar.close, position, self._open.get(key, ZERO),
                                      state.last_signal)
        if not decision.changed:
            return None
        return self._act(state, key, bar, signal, decision)

    def _act(self, state: InstrumentState, key: str, bar: Bar, signal: Signal,
             decision: TradeDecision) -> Execution | None:
        """A changed signal taken as acted on, and its order (if it needs one) executed."""
        state.last_signal = decision.key
        state.target_quantity = decision.target
        if decision.intent is None:
            if self._record_signals:
                self._ledger.record_signal(self.bot.id, key, bar.ts, signal, self._clock.now())
            return None
        record = SignalRecord(key, bar.ts, signal) if self._record_signals else None
        execution = self.engine.execute(decision.intent, record)
        if execution.order is not None:
            self._count(key, execution.order)
        return execution

    def _exit(self, slot: InstrumentSlot, state: InstrumentState, key: str, bar: Bar,
              position: Decimal) -> Execution | None:
        """The protective exits at this bar's close: the state takes the bar in; if one
        fires, the whole position (less what is already on its way out) is closed at
        market, the strategy still sees the bar, and its signal is taken as acted on — a
        new position needs a new signal, not the one the stop just overruled."""
        side = _sign(position)
        exits.update(state.exit_state, bar, side, self._exits)
        reason = exits.exit_reason(state.exit_state, bar, side,
                                   float(self._average.get(key, ZERO)), self._exits)
        if reason is None:
            return None
        intent = slot.trader.exit_intent(position, self._open.get(key, ZERO), bar.close,
                                         reason)
        signal = self._call(slot, bar, self._contexts[key])
        state.last_bar_ts = bar.ts
        if signal is not None:
            taken = slot.trader.decide(signal, bar.close, position, self._open.get(key, ZERO),
                                       None).key
            if taken is not None:
                state.last_signal = taken
        if intent is None:
            return None
        record = (SignalRecord(key, bar.ts, Signal(target_quantity=ZERO, note=reason))
                  if self._record_signals else None)
        execution = self.engine.execute(intent, record)
        if execution.order is not None:
            self._count(key, execution.order)
        return execution

    def _count(self, key: str, order: Order) -> None:
        """Move the cached position and in-flight quantity by what this new order did, with
        no read-back; every cycle still refreshes them from the ledger."""
        sign = order.side.sign
        if order.filled_quantity and self._tracks_average:
            # The exits (and a learned policy's observation) measure from the position's
            # average price: the ledger's, as filled.
            held = self._ledger.positions(self.bot.id).get(key)
            self._average[key] = held.average_price if held is not None else ZERO
        self._position[key] = self._position.get(key, ZERO) + order.filled_quantity * sign
        if order.status.is_open:
            self._open[key] = self._open.get(key, ZERO) + order.signed_remaining
            self._any_open = True

    @staticmethod
    def _call(slot: InstrumentSlot, bar: Bar, ctx: StrategyContext) -> Signal | None:
        try:
            signal = slot.strategy.on_bar(bar, ctx)
        except Exception as exc:  # any bug in user code isolates this bot only
            raise _strategy_error(slot, bar, exc) from exc
        if signal is not None and not isinstance(signal, Signal):
            raise _bad_signal(slot, signal)
        return signal


def _context(slot: InstrumentSlot, position: Decimal = ZERO, *, warming_up: bool = False,
             average_price: Decimal = ZERO) -> StrategyContext:
    sizing = slot.trader.sizing
    return StrategyContext(slot.instrument, position, warming_up=warming_up,
                           average_price=average_price,
                           position_size_usd=sizing.position_size_usd,
                           usd_per_unit=sizing.usd_per_unit)


def _sign(quantity: Decimal) -> int:
    return 1 if quantity > 0 else -1 if quantity < 0 else 0


def _strategy_error(slot: InstrumentSlot, bar: Bar, exc: Exception) -> StrategyError:
    return StrategyError(f"strategy {slot.strategy.name} raised on {slot.instrument.key} at "
                         f"{bar.ts.isoformat()}: {exc!r}")


def _bad_signal(slot: InstrumentSlot, signal: object) -> StrategyError:
    return StrategyError(f"strategy {slot.strategy.name} returned {type(signal).__name__}, "
                         "expected Signal or None")
