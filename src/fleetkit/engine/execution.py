"""ExecutionEngine: the only way an order reaches a broker.

Per order: fresh quote -> ledger risk inputs (kill switches read fresh) -> rails ->
write-ahead PENDING row -> broker.submit -> record the answer, fills and positions in one
transaction. An order whose submission outcome is unknown stays PENDING; it is resolved
by looking it up at the broker (OrderSync), never by sending it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from fleetkit.core.errors import BadBrokerReplyError, OrderRejectedError, TransientBrokerError
from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Order, OrderIntent
from fleetkit.engine.ports import (
    Broker,
    Clock,
    Event,
    Ledger,
    MarketData,
    OrderRequest,
    RiskInputs,
    SignalRecord,
)
from fleetkit.risk.rails import Decision, RiskContext, RiskLimits, check_order


@dataclass(frozen=True, slots=True)
class BotIdentity:
    id: int
    name: str
    market: str
    currency: str


class Outcome(StrEnum):
    DENIED = "denied"
    REJECTED = "rejected"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"


_SUBMITTED = Outcome.SUBMITTED  # a constant: an enum member looked up costs, per order


@dataclass(frozen=True, slots=True)
class Execution:
    outcome: Outcome
    order: Order | None = None
    decision: Decision | None = None
    detail: str = ""


class ExecutionEngine:
    def __init__(self, bot: BotIdentity, ledger: Ledger, broker: Broker, market_data: MarketData,
                 clock: Clock, limits: RiskLimits, usd_per_currency: Mapping[str, Decimal], *,
                 before_order: Callable[[], None] = lambda: None) -> None:
        """`before_order`: what must be in the ledger before an order is judged (the brakes'
        held-back mark, engine.brakes)."""
        self.bot = bot
        self._before_order = before_order
        self._ledger = ledger
        self._broker = broker
        self._market_data = market_data
        self._clock = clock
        self._limits = limits
        self._fill_checks = limits.fill_checks  # limits are frozen: made once, not per order
        try:
            self.usd_per_unit = usd_per_currency[bot.currency]
        except KeyError:
            raise ValueError(f"no USD rate for currency {bot.currency!r}") from None

    def check(self, intent: OrderIntent) -> Decision:
        """Run the rails against fresh inputs without writing or sending anything."""
        quote = self._market_data.quote(intent.instrument)
        now = self._clock.now()
        inputs = self._ledger.risk_inputs(self.bot.id, intent.instrument, self.usd_per_unit, now)
        return self._rails(intent, quote, now)(inputs)

    def _rails(self, intent: OrderIntent, quote: Quote, now: datetime
               ) -> Callable[[RiskInputs], Decision]:
        def decide(inputs: RiskInputs) -> Decision:
            ctx = RiskContext(  # positional, in RiskContext's field order: once per order
                inputs.controls, now, quote.price, quote.ts, inputs.position_quantity,
                inputs.open_quantity, self.usd_per_unit, inputs.bot_daily_pnl_usd,
                inputs.fleet_daily_pnl_usd, inputs.open_buy_quantity, inputs.open_sell_quantity)
            return check_order(intent, ctx, self._limits)

        return decide

    def execute(self, intent: OrderIntent, signal: SignalRecord | None = None) -> Execution:
        ledger, bot_id = self._ledger, self.bot.id
        self._before_order()
        quote = self._market_data.quote(intent.instrument)  # broker I/O before the transaction
        now = self._clock.now()
        admission = ledger.admit(bot_id, intent, signal, self.usd_per_unit, now,
                                 self._rails(intent, quote, now))
        order = admission.order
        if order is None:
            decision = admission.decision
            return Execution(Outcome.DENIED, decision=decision, detail=decision.detail)
        request = OrderRequest(order.client_order_id, order.instrument, order.side,
                               order.order_type, order.quantity, order.limit_price)
        try:
            report = self._broker.submit(request)
        except OrderRejectedError as exc:
            order = ledger.record_rejection(bot_id, order, exc.reason, self._clock.now())
            return Execution(Outcome.REJECTED, order=order, detail=exc.reason)
        except (TransientBrokerError, BadBrokerReplyError) as exc:
            ledger.record_event(bot_id, Event(
                "order.outcome_unknown",
                f"{order.client_order_id}: submission outcome unknown ({exc}); "
                "will be resolved by lookup, never resent",
                severity="warning", data={"client_order_id": order.client_order_id}),
                self._clock.now())
            return Execution(Outcome.UNKNOWN, order=order, detail=str(exc))
        order = ledger.record_report(bot_id, order, report, self._clock.now(),
                                     checks=self._fill_checks)
        return Execution(_SUBMITTED, order)
