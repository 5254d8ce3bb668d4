"""Rolling a futures position: before the held contract expires, close it and open the same
quantity in the next, as two orders through the rails, restart-safe.

A bot slot that trades "the front-month future of NIFTY" (`InstrumentSlot.underlying`)
holds one concrete contract at a time. When the venue's front moves on (its `roll_at`, a
few trading days before expiry), the roll:

1. persists its intent in the new contract's state — where it comes from and how much it
   carries (`InstrumentState.roll_from`, `roll_quantity`) — and moves the slot, strategy
   and state to the new contract, before any order;
2. closes what is held in the old contract (a market order through the rails, like any);
3. once that is flat, opens the carried quantity, less what the new contract holds already
   or has on its way, in the new one;
4. clears the intent once the new contract holds it.

Every step is judged from the ledger and the persisted intent, so a bot killed between any
two of them finishes the roll at its next cycle, never sends a leg twice and never leaves
a position behind. A leg the rails deny or the venue rejects is recorded (`roll.blocked`,
once per reason) and tried again next cycle; the strategy keeps trading the new contract
meanwhile (its orders size against the position that has arrived there).

A bot that was down through the roll starts on the new front with its state still under the
old contract: `adopt` finds that contract among the root's listed ones and rolls from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from fleetkit.core.instruments import Instrument
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import OrderIntent, OrderType, Side
from fleetkit.engine.bot import InstrumentSlot, TradingBot
from fleetkit.engine.execution import Execution, ExecutionEngine, Outcome
from fleetkit.engine.ports import Event, MarketData
from fleetkit.engine.trader import Trader

ROLL_NOTE = "futures roll"


@dataclass(frozen=True, slots=True)
class FrontContract:
    """The contract a continuous position in `underlying` holds now, when that next
    changes (UTC), and every contract of the underlying listed now (nearest first)."""

    underlying: str
    instrument: Instrument
    roll_at: datetime
    listed: tuple[str, ...]


class ContractSource(Protocol):
    """Which futures contract is the front one: a venue's answer (the sandbox's futures
    curve; a real broker's instrument list); and the spec of a derivative it lists."""

    def front_future(self, market: str, underlying: str) -> FrontContract: ...

    def instrument(self, key: str) -> Instrument | None: ...


@dataclass(frozen=True, slots=True)
class RollStep:
    """What one pass did: the legs sent (their executions) and whether the roll is done."""

    executions: tuple[Execution, ...] = ()
    done: bool = False


class FuturesRoller:
    """Rolls every slot of `bot` that holds a front-month future. `record(event)`: the
    audit trail (the ledger's, for this bot)."""

    def __init__(self, bot: TradingBot, engine: ExecutionEngine, contracts: ContractSource,
                 market_data: MarketData, record: Callable[[Event], None]) -> None:
        self._bot = bot
        self._engine = engine
        self._contracts = contracts
        self._market_data = market_data
        self._record = record
        self._next_check: dict[str, datetime] = {}
        self._blocked: dict[str, str] = {}

    def adopt(self) -> None:
        """At boot: a rolling slot whose state is still under a contract of its root that
        is no longer the front (the bot was down when the front moved) takes it over."""
        for key, slot in list(self._bot.slots.items()):
            if slot.underlying is None or self._bot.state.instruments.get(key) is not None:
                continue
            front = self._front(slot)
            previous = [k for k in self._bot.state.instruments
                        if k != key and k in front.listed and k not in self._bot.slots]
            if len(previous) == 1:
                self._start(previous[0], key, moved=True)

    def step(self, now: datetime) -> list[RollStep]:
        """Start the rolls that are due and carry on those in progress."""
        steps = []
        for key, slot in list(self._bot.slots.items()):
            if slot.underlying is None:
                continue
            check_at = self._next_check.get(slot.underlying)
            if check_at is None or now >= check_at:
                front = self._front(slot)
                self._next_check[slot.underlying] = front.roll_at
                if front.instrument.key != key and self._bot.open_quantity(key) == ZERO:
                    new_slot = InstrumentSlot(front.instrument, slot.strategy,
                                              Trader(front.instrument, slot.trader.sizing),
                                              slot.bars_from, slot.underlying)
                    self._bot.rekey(key, new_slot)
                    self._start(key, front.instrument.key, moved=False)
                    key = front.instrument.key
                elif front.instrument.key != key:
                    self._next_check.pop(slot.underlying)  # an order is open: next cycle
            if self._bot.state.of(key).roll_from is not None:
                steps.append(self._carry_on(key))
        return steps

    def _front(self, slot: InstrumentSlot) -> FrontContract:
        return self._contracts.front_future(slot.instrument.market, slot.underlying or "")

    def _start(self, old_key: str, new_key: str, *, moved: bool) -> None:
        """Persist the roll's intent under the new contract, before any order."""
        if moved:  # adopted at boot: the state is still under the old contract
            state = self._bot.state.instruments.pop(old_key)
            self._bot.state.instruments[new_key] = state
        state = self._bot.state.of(new_key)
        if state.roll_from is not None:
            return  # a roll in progress already says where it comes from
        quantity = self._bot.position(old_key)
        state.roll_from, state.roll_quantity = old_key, quantity
        self._bot.save()
        self._record(Event("roll.started", f"rolling {quantity} from {old_key} to {new_key}",
                           data={"from": old_key, "to": new_key, "quantity": str(quantity)}))

    def _carry_on(self, key: str) -> RollStep:
        state = self._bot.state.of(key)
        old_key, carried = state.roll_from or "", state.roll_quantity or ZERO
        bot = self._bot
        if bot.open_quantity(old_key) != ZERO or bot.open_quantity(key) != ZERO:
            return RollStep()  # a leg is on its way: its fills come first
        executions: list[Execution] = []
        held_old = bot.position(old_key)
        if held_old != ZERO:
            executions.append(self._leg(old_key, -held_old, "close"))
            bot.refresh()
            if bot.position(old_key) != ZERO:
                return RollStep(tuple(executions))  # not (all) filled yet, or blocked
        missing = carried - bot.position(key)
        if missing != ZERO:
            executions.append(self._leg(key, missing, "open"))
            bot.refresh()
            if bot.position(key) != carried:
                return RollStep(tuple(executions))
        state.roll_from = state.roll_quantity = None
        self._blocked.pop(key, None)
        bot.save()
        self._record(Event("roll.done", f"rolled {carried} from {old_key} to {key}",
                           data={"from": old_key, "to": key, "quantity": str(carried)}))
        return RollStep(tuple(executions), done=True)

    def _leg(self, key: str, delta: Decimal, leg: str) -> Execution:
        price = self._market_data.quote(key).price
        intent = OrderIntent(key, Side.for_delta(delta), abs(delta), OrderType.MARKET, price,
                             None, f"{ROLL_NOTE}: {leg}")
        execution = self._engine.execute(intent)
        if execution.outcome in (Outcome.DENIED, Outcome.REJECTED):
            reason = f"the roll's {leg} leg on {key} was {execution.outcome}: {execution.detail}"
            if self._blocked.get(key) != reason:
                self._blocked[key] = reason
                self._record(Event("roll.blocked", f"{reason}; tried again next cycle",
                                   "error", data={"instrument": key, "leg": leg}))
        return execution
