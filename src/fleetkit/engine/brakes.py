"""Brakes: what happens around a bot's orders at every bar close, the same live, in a
backtest and in a learning environment.

    check_halt   the kill switches, read fresh; a halt newly seen pulls resting orders too
    mark         positions marked at the cycle's prices, today's P&L recorded, then the
                 daily-loss breakers (bot and fleet) between orders: a breach halts the
                 switch it names, unless that switch is halted already (Ledger.halt)

The rails stop an order that would break a limit; the brakes stop a bot whose marks broke
one while it held still. Nothing here knows where the prices or the ledger live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.ledger import FillChecks
from fleetkit.core.market_data import Quote
from fleetkit.engine.execution import BotIdentity
from fleetkit.engine.ports import Broker, Clock, Ledger, PnlSnapshot
from fleetkit.risk.rails import HaltScope, RiskLimits, daily_loss_breach


@dataclass(frozen=True, slots=True)
class Breach:
    """A daily-loss breaker that tripped at a mark: which switch, and why."""

    scope: HaltScope
    detail: str


class Brakes:
    def __init__(self, bot: BotIdentity, ledger: Ledger, broker: Broker, clock: Clock,
                 limits: RiskLimits, usd_per_unit: Decimal, fill_checks: FillChecks) -> None:
        self._bot = bot
        self._ledger = ledger
        self._broker = broker
        self._clock = clock
        self._limits = limits
        self._usd_per_unit = usd_per_unit
        self._fill_checks = fill_checks
        self._was_halted = False
        self.last_snapshot: PnlSnapshot | None = None

    @property
    def halted(self) -> bool:
        """Whether the last check found trading halted."""
        return self._was_halted

    def check_halt(self) -> bool:
        """Read both switches fresh; a halt not seen before pulls the bot's resting orders
        (a halt is a kill switch, not only a gate for new orders). True while halted."""
        controls = self._ledger.controls(self._bot.id)
        halted = controls.effective.state is TradingState.HALTED
        if halted and not self._was_halted:
            self.cancel_resting_orders()
        self._was_halted = halted
        return halted

    def forget_halt(self) -> None:
        """The next check treats any halt as new (after halting from outside the cycle,
        e.g. a strategy error, so its resting orders are pulled too)."""
        self._was_halted = False

    def halt_reason(self) -> str:
        return self._ledger.controls(self._bot.id).effective.reason

    def cancel_resting_orders(self) -> None:
        for order in self._ledger.open_orders(self._bot.id):
            report = self._broker.cancel(order.client_order_id)
            self._ledger.record_report(self._bot.id, order, report, self._clock.now(),
                                       checks=self._fill_checks)

    def mark(self, marks: Mapping[str, Quote], instrument: str) -> Breach | None:
        """Mark positions at `marks`, record today's P&L, then the breakers; `instrument` is
        any of the bot's (the P&L figures are the bot's whole). Returns the breach that
        halted a switch just now, if any."""
        now = self._clock.now()
        self.last_snapshot = self._ledger.mark(self._bot.id, marks, self._usd_per_unit, now)
        inputs = self._ledger.risk_inputs(self._bot.id, instrument, self._usd_per_unit, now)
        found = daily_loss_breach(inputs.bot_daily_pnl_usd, inputs.fleet_daily_pnl_usd,
                                  self._limits)
        if found is None:
            return None
        scope, detail = found
        if not self._ledger.halt(self._bot.id, scope, detail, HaltSource.CIRCUIT_BREAKER, "risk",
                                 now):
            return None
        return Breach(scope, detail)
