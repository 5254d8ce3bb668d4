"""Reconciliation for operators: look at ledger vs broker, and adopt the broker's truth.

`inspect` changes nothing. `adopt_broker` first applies whatever the broker reported that
the ledger missed, then writes audited corrections (position adjustments, orders settled
or taken over) so the ledger matches the broker — for one bot that is not trading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.controls import TradingState
from fleetkit.core.errors import UserError
from fleetkit.core.instruments import Instrument
from fleetkit.core.numbers import ZERO, plain
from fleetkit.core.orders import OrderStatus
from fleetkit.engine.ports import Broker, Clock
from fleetkit.engine.reconcile import Difference, DifferenceKind
from fleetkit.engine.rolls import ContractSource
from fleetkit.engine.sync import OrderSync, SyncReport
from fleetkit.runtime.clock import WallClock
from fleetkit.runtime.wiring import bot_contracts, order_sync, sandbox_catalog
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger


@dataclass(frozen=True, slots=True)
class PositionLine:
    instrument: str
    ledger: Decimal
    broker: Decimal
    broker_average: Decimal | None

    @property
    def differs(self) -> bool:
        return self.ledger != self.broker


@dataclass(frozen=True, slots=True)
class BotReconciliation:
    bot: str
    positions: tuple[PositionLine, ...]
    differences: tuple[Difference, ...]
    unapplied_fills: int
    pending_orders: tuple[str, ...]
    halt: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        return not self.differences

    def as_json(self) -> dict[str, Any]:
        return {
            "bot": self.bot, "clean": self.clean, "halt": self.halt or None,
            "positions": [{"instrument": p.instrument, "ledger": plain(p.ledger),
                           "broker": plain(p.broker), "differs": p.differs}
                          for p in self.positions],
            "differences": [{"kind": d.kind.value, "instrument": d.instrument,
                             "client_order_id": d.client_order_id, "detail": d.describe()}
                            for d in self.differences],
            "unapplied_broker_fills": self.unapplied_fills,
            "orders_with_unknown_outcome": list(self.pending_orders),
            "notes": list(self.notes),
        }


class Reconciler:
    """Ledger vs broker for one bot. `broker` is that bot's account at its venue."""

    def __init__(self, config: FleetConfig, settings: BotSettings, database: Database,
                 broker: Broker, instruments: Mapping[str, Instrument] | None = None, *,
                 contracts: ContractSource | None = None) -> None:
        """`instruments`: the venue's definitions (exchange bots); default, the sandbox's
        (`contracts`: its derivatives, for a front-month futures bot)."""
        self._config = config
        self._settings = settings
        self._database = database
        self._broker = broker
        self._store = FleetStore(database.engine)
        self.bot_id = self._store.bot(settings.name).id
        self._ledger = SqlLedger(database.engine, database.fleet_tag())
        self._rolls: dict[str, str] = {}
        if instruments is None:
            instruments, self._rolls = bot_contracts(settings, sandbox_catalog(config),
                                                     contracts)
        self._instruments = dict(instruments)

    def _sync(self, now: datetime | None = None, unknown_after_s: float | None = None
              ) -> OrderSync:
        clock: Clock = WallClock() if now is None else _FixedClock(now)
        return order_sync(self._config, self._settings, self.bot_id, self._ledger,
                          self._broker, clock, self._instruments,
                          unknown_after_s=unknown_after_s, rolls=self._rolls)

    def inspect(self) -> BotReconciliation:
        """What differs right now; nothing is written or applied."""
        ledger = self._ledger
        positions = {k: p.quantity for k, p in ledger.positions(self.bot_id).items()
                     if p.quantity != ZERO}
        broker_positions = {p.instrument: p for p in self._broker.positions()}
        pending = tuple(o.client_order_id for o in ledger.open_orders(self.bot_id)
                        if o.status is OrderStatus.PENDING)
        differences = self._sync().differences()
        unapplied = len(self._broker.fills_since(ledger.fills_cursor(self.bot_id)).fills)
        lines = tuple(PositionLine(k, positions.get(k, ZERO),
                                   broker_positions[k].quantity if k in broker_positions
                                   else ZERO,
                                   broker_positions[k].average_price if k in broker_positions
                                   else None)
                      for k in sorted(set(positions) | set(broker_positions)))
        control = ledger.controls(self.bot_id).bot
        halt = (f"{control.reason} [{control.source}]"
                if control.state is not TradingState.ACTIVE else "")
        notes: tuple[str, ...] = ()
        if unapplied:
            notes = (f"{unapplied} broker fill(s) not yet applied: the running bot applies them "
                     "at its next cycle; --adopt-broker applies them first",)
        return BotReconciliation(self._settings.name, lines, tuple(differences), unapplied,
                                 pending, halt, notes)

    def adopt_broker(self, reason: str, actor: str, now: datetime) -> BotReconciliation:
        """Make the ledger match the broker, with an audit record of every correction."""
        self._refuse_if_trading(now)
        sync = self._sync(now, unknown_after_s=0.0)
        sync.resolve_pending(SyncReport())
        sync.sync_fills(SyncReport())
        sync.refresh_open_orders()
        before = self.inspect()
        for difference in before.differences:
            self._correct(difference, before, reason, actor, now)
        if before.differences:
            # The broker is the truth now, cash included: corrected positions move what the
            # ledger's fills imply, so what it expects starts again from the broker's cash.
            sync.take_cash_baseline(f"adopted the broker's figures: {reason}", actor,
                                    replace=True)
        return self.inspect()

    def _correct(self, difference: Difference, before: BotReconciliation, reason: str,
                 actor: str, now: datetime) -> None:
        ledger, bot_id = self._ledger, self.bot_id
        if difference.kind is DifferenceKind.CASH:
            return  # a new baseline, once every position is settled (adopt_broker)
        if difference.kind in (DifferenceKind.POSITION, DifferenceKind.AVERAGE_PRICE):
            line = next(p for p in before.positions if p.instrument == difference.instrument)
            ledger.adjust_position(bot_id, line.instrument, line.broker,
                                   line.broker_average or ZERO, reason, actor, now)
        elif difference.kind is DifferenceKind.ORDER_ONLY_IN_LEDGER:
            order = next(o for o in ledger.open_orders(bot_id)
                         if o.client_order_id == difference.client_order_id)
            found = self._broker.lookup(order.client_order_id)
            if found is not None:
                ledger.record_report(bot_id, order, found, now)
            else:
                ledger.mark_order(bot_id, order, OrderStatus.CANCELLED,
                                  f"not at the broker; closed by {actor}: {reason}", now)
        else:
            report = next(r for r in self._broker.open_orders()
                          if r.client_order_id == difference.client_order_id)
            ledger.adopt_order(bot_id, report, reason, actor, now)

    def _refuse_if_trading(self, now: datetime) -> None:
        control = self._ledger.controls(self.bot_id)
        if control.effective.state is TradingState.HALTED:
            return
        beat = next((b for b in self._store.heartbeats()
                     if b.component == f"bot:{self._settings.name}"), None)
        if beat is not None and beat.status != "stopped" and \
                (now - beat.beat_at).total_seconds() < 120:
            raise UserError(f"bot {self._settings.name} is running and not halted: halt it "
                            f"first (fleet halt {self._settings.name} --reason ...), then adopt")


class _FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now
