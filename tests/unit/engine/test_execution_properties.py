"""Properties of the ExecutionEngine with a recording broker: whatever the interleaving of
halts, resumes and orders, nothing leaves while halted, and every denial is recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.market_data import MarketClock, Quote
from fleetkit.core.orders import Fill, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.engine.execution import BotIdentity, ExecutionEngine, Outcome
from fleetkit.engine.ports import FillPage, OrderReport, OrderRequest, PositionReport
from fleetkit.risk.rails import RiskLimits
from fleetkit.runtime.clock import ManualClock
from fleetkit.store.memory import MemoryLedger

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = "CRYPTO:BTC/USDT"
BOT = BotIdentity(1, "p", "CRYPTO", "USDT")
LIMITS = RiskLimits(Decimal(1_000_000), Decimal(10_000_000), Decimal(5), 60.0, None, None)


@dataclass
class RecordingBroker:
    """Fills everything at 100; remembers every request it was sent."""

    sent: list[OrderRequest] = field(default_factory=list)

    def submit(self, request: OrderRequest) -> OrderReport:
        self.sent.append(request)
        fill = Fill(f"f{len(self.sent)}", request.client_order_id, request.instrument,
                    request.side, request.quantity, Decimal(100), Decimal(0), NOW)
        return OrderReport(request.client_order_id, f"b{len(self.sent)}", request.instrument,
                           request.side, request.order_type, request.quantity, None,
                           OrderStatus.FILLED, request.quantity, Decimal(100), "", (fill,))

    def cancel(self, client_order_id: str) -> OrderReport:
        raise NotImplementedError

    def lookup(self, client_order_id: str) -> OrderReport | None:
        return None

    def open_orders(self) -> list[OrderReport]:
        return []

    def fills_since(self, cursor: str | None, limit: int = 500) -> FillPage:
        return FillPage((), cursor)

    def positions(self) -> list[PositionReport]:
        return []

    def cash(self) -> None:
        return None

    def market_clock(self, market: str) -> MarketClock:
        return MarketClock(market, NOW, True, None, None)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime) -> list:
        return []

    def quote(self, instrument: str) -> Quote:
        return Quote(instrument, Decimal(100), NOW)


steps = st.lists(st.one_of(
    st.tuples(st.just("halt"), st.sampled_from([None, 1])),
    st.tuples(st.just("reduce"), st.sampled_from([None, 1])),
    st.tuples(st.just("resume"), st.sampled_from([None, 1])),
    st.tuples(st.just("order"), st.tuples(st.sampled_from([Side.BUY, Side.SELL]),
                                          st.integers(1, 5))),
), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, database=None)
@given(script=steps)
def test_nothing_leaves_while_halted_and_every_denial_is_recorded(
        script: list[tuple[str, object]]) -> None:
    ledger = MemoryLedger()
    broker = RecordingBroker()
    engine = ExecutionEngine(BOT, ledger, broker, broker, ManualClock(NOW), LIMITS,
                             {"USDT": Decimal(1)})
    denials = 0
    for action, argument in script:
        if action == "order":
            side, quantity = argument  # type: ignore[misc]
            controls = ledger.controls(BOT.id)
            halted = controls.effective.state is TradingState.HALTED
            sent_before = len(broker.sent)
            position = ledger.positions(BOT.id).get(KEY)
            held = position.quantity if position else Decimal(0)
            execution = engine.execute(OrderIntent(KEY, side, Decimal(quantity),
                                                   OrderType.MARKET, Decimal(100)))
            if halted:
                assert execution.outcome is Outcome.DENIED
                assert len(broker.sent) == sent_before  # nothing left while halted
            if TradingState.REDUCING in (controls.fleet.state, controls.bot.state) and \
                    execution.outcome is Outcome.SUBMITTED:
                after = held + Decimal(quantity) * side.sign
                assert abs(after) <= abs(held)  # reduce-only let only shrinking orders out
            if execution.outcome is Outcome.DENIED:
                denials += 1
        else:
            state = {"halt": TradingState.HALTED, "reduce": TradingState.REDUCING,
                     "resume": TradingState.ACTIVE}[action]
            target = argument if isinstance(argument, int) else None
            ledger.set_control(target, state, "script", HaltSource.OPERATOR, "test", NOW)
    recorded = sum(1 for e in ledger.events if e.event.kind == "risk.denied")
    assert recorded == denials
