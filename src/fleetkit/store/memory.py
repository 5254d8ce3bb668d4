"""MemoryLedger: the Ledger port in plain dicts, for backtests and tests.

Same semantics as SqlLedger (the ledger contract tests run against both); nothing survives
the process, which is exactly what a backtest wants and a live bot must never use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fleetkit.core.controls import Control, Controls, HaltSource, TradingState
from fleetkit.core.errors import BadBrokerReplyError
from fleetkit.core.ledger import (
    DEFAULT_FILL_CHECKS,
    FillChecks,
    Position,
    apply_fill,
    day_start_value,
    fill_contents_differ,
    fill_refusal,
    order_after_fill,
    pnl_totals,
    status_from_report,
)
from fleetkit.core.market_data import Quote
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, Order, OrderIntent, OrderStatus
from fleetkit.core.records import evolve
from fleetkit.core.signals import Signal
from fleetkit.engine.ports import (
    Admission,
    BotState,
    Event,
    FillResult,
    FundingEntry,
    OrderReport,
    PnlSnapshot,
    RiskInputs,
    SignalRecord,
)
from fleetkit.risk.rails import Decision, HaltScope

_ONE_DAY = timedelta(days=1)
_PENDING = OrderStatus.PENDING  # as a constant: an enum member looked up costs, per order
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _DayPnl:
    day: str
    start: Decimal
    net: Decimal
    daily_usd: Decimal


@dataclass(slots=True)
class RecordedEvent:
    bot_id: int | None
    event: Event
    at: datetime


@dataclass(slots=True)
class _BotBook:
    control: Control = field(default_factory=Control)
    orders: dict[int, Order] = field(default_factory=dict)
    open_ids: dict[int, None] = field(default_factory=dict)  # insertion-ordered set
    by_cid: dict[str, int] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    fill_ids: dict[str, Fill] = field(default_factory=dict)  # broker fill id -> as applied
    fills: list[Fill] = field(default_factory=list)
    cursor: str | None = None
    funding_ids: dict[str, FundingEntry] = field(default_factory=dict)
    funding_cursor: str | None = None
    cash_baseline: dict[str, Decimal] = field(default_factory=dict)
    state: BotState = field(default_factory=BotState)
    pnl: _DayPnl | None = None
    signals: int = 0
    # The last Controls handed out: reused while both switches are the very objects it was
    # made of (a switch is replaced, never changed, whenever it is set).
    controls: Controls | None = None
    # P&L totals over positions at their marks (realized, unrealized, fees, net), kept until
    # a position or a mark is written: an order reads them at its mark and at its admission.
    totals: tuple[Decimal, Decimal, Decimal, Decimal] | None = None


def _store(book: _BotBook, order: Order) -> None:
    """Keep the open-order index in step with every change (no scans per trade)."""
    book.orders[order.id] = order
    if order.status.is_open:
        book.open_ids[order.id] = None
    else:
        book.open_ids.pop(order.id, None)


class MemoryLedger:
    """Implements engine.ports.Ledger; `record_signals=False` skips storing signals (speed)."""

    def __init__(self, fleet_tag: str = "mem", *, keep_snapshots: bool = False) -> None:
        self._tag = fleet_tag
        self._fleet = Control()
        self._books: dict[int, _BotBook] = {}
        self._next_order_id = 1
        self.events: list[RecordedEvent] = []
        self.snapshots: list[tuple[int, datetime, PnlSnapshot]] = []
        self._keep_snapshots = keep_snapshots
        self._day_of = (_EPOCH, _EPOCH, "")  # a UTC day: its start, its end, its date
        # How many times a switch was set: while it stays the same, every bot's switches are
        # as they were (a replay reads them only when this moved, instead of every bar).
        self.controls_changes = 0

    def _book(self, bot_id: int) -> _BotBook:
        try:
            return self._books[bot_id]
        except KeyError:
            book = self._books[bot_id] = _BotBook()
            return book

    def _utc_day(self, now: datetime) -> str:
        """`now`'s UTC date as text (remembered with the day's bounds: asked several times
        per cycle, and cycles follow each other within a day)."""
        start, end, text = self._day_of
        if not start <= now < end:
            utc = now.astimezone(UTC)
            start = datetime(utc.year, utc.month, utc.day, tzinfo=UTC)
            text = start.date().isoformat()
            self._day_of = (start, start + _ONE_DAY, text)
        return text

    def fills(self, bot_id: int) -> list[Fill]:
        return list(self._book(bot_id).fills)

    def orders(self, bot_id: int) -> list[Order]:
        return list(self._book(bot_id).orders.values())

    # --- controls ---------------------------------------------------------------------

    def controls(self, bot_id: int) -> Controls:
        book = self._books.get(bot_id) or self._book(bot_id)  # read every cycle: no call
        cached = book.controls
        if cached is None or cached.fleet is not self._fleet or cached.bot is not book.control:
            cached = book.controls = Controls(self._fleet, book.control)
        return cached

    def set_control(self, bot_id: int | None, state: TradingState, reason: str,
                    source: HaltSource, actor: str, now: datetime) -> None:
        control = Control(state, reason, source)
        self.controls_changes += 1
        if bot_id is None:
            self._fleet = control
        else:
            self._book(bot_id).control = control
        scope = "fleet" if bot_id is None else "bot"
        severity = "info" if state is TradingState.ACTIVE else "critical"
        # Worded as store.controls.write_control words it: the ledgers tell the same story.
        self._event(bot_id, Event(f"control.{state.value}",
                                  f"{scope} {state.value} by {actor} ({source.value}): {reason}",
                                  severity, source.value,
                                  {"scope": scope, "state": state.value, "reason": reason,
                                   "source": source.value}), now)

    def halt(self, bot_id: int, scope: HaltScope, reason: str, source: HaltSource,
             actor: str, now: datetime) -> bool:
        target = None if scope is HaltScope.FLEET else bot_id
        return self._halt_unless_halted(bot_id, target, reason, source, actor, now)

    # --- orders and fills -------------------------------------------------------------

    def positions(self, bot_id: int) -> dict[str, Position]:
        return dict(self._book(bot_id).positions)

    def open_orders(self, bot_id: int) -> list[Order]:
        book = self._book(bot_id)
        return [book.orders[i] for i in book.open_ids]

    def write_ahead(self, bot_id: int, intent: OrderIntent, signal_id: int | None,
                    now: datetime) -> Order:
        order_id = self._next_order_id
        self._next_order_id += 1
        order = Order(order_id, bot_id, f"fk{self._tag}-{bot_id}-{order_id}", intent.instrument,
                      intent.side, intent.order_type, intent.quantity, intent.limit_price,
                      _PENDING, ZERO, None, None, now, now, intent.reason,
                      intent.reference_price)
        book = self._book(bot_id)
        _store(book, order)
        book.by_cid[order.client_order_id] = order_id
        return order

    def admit(self, bot_id: int, intent: OrderIntent, signal: SignalRecord | None,
              usd_per_unit: Decimal, now: datetime,
              decide: Callable[[RiskInputs], Decision]) -> Admission:
        decision = decide(self.risk_inputs(bot_id, intent.instrument, usd_per_unit, now))
        signal_id = None
        if signal is not None:
            signal_id = self.record_signal(bot_id, signal.instrument, signal.bar_ts,
                                           signal.signal, now)
        if not decision.allowed:
            self.record_denial(bot_id, intent, decision, now)
            return Admission(decision, None, signal_id)
        return Admission(decision, self.write_ahead(bot_id, intent, signal_id, now), signal_id)

    def record_report(self, bot_id: int, order: Order, report: OrderReport,
                      now: datetime, *, checks: FillChecks = DEFAULT_FILL_CHECKS) -> Order:
        mismatch = report.mismatch(order)
        if mismatch is not None:
            raise BadBrokerReplyError(mismatch)
        book = self._book(bot_id)
        for fill in report.fills:
            self._apply_one(bot_id, book, fill, now, checks)
        current = book.orders[order.id]
        status = status_from_report(current.status, report.status, current.filled_quantity,
                                    current.quantity)
        updated = evolve(current, status=status, broker_order_id=report.broker_order_id,
                          reason=report.reason or current.reason, updated_at=now)
        _store(book, updated)
        return updated

    def record_rejection(self, bot_id: int, order: Order, reason: str, now: datetime) -> Order:
        return self.mark_order(bot_id, order, OrderStatus.REJECTED, reason, now)

    def mark_order(self, bot_id: int, order: Order, status: OrderStatus, reason: str,
                   now: datetime) -> Order:
        book = self._book(bot_id)
        current = book.orders[order.id]
        if current.status.is_terminal:
            return current
        updated = evolve(current, status=status, reason=reason, updated_at=now)
        _store(book, updated)
        self._event(bot_id, Event(f"order.{status.value}", reason, "warning"), now)
        return updated

    def apply_fills(self, bot_id: int, fills: Sequence[Fill], cursor: str | None,
                    now: datetime, *, checks: FillChecks = DEFAULT_FILL_CHECKS) -> FillResult:
        book = self._book(bot_id)
        applied: list[Fill] = []
        refused: list[tuple[Fill, str]] = []
        duplicates = 0
        for fill in fills:
            outcome = self._apply_one(bot_id, book, fill, now, checks)
            if outcome is None:
                applied.append(fill)
            elif outcome == "duplicate":
                duplicates += 1
            else:
                refused.append((fill, outcome))
        if cursor is not None:
            book.cursor = cursor
        return FillResult(tuple(applied), duplicates, tuple(refused))

    def _apply_one(self, bot_id: int, book: _BotBook, fill: Fill, now: datetime,
                   checks: FillChecks) -> str | None:
        stored = book.fill_ids.get(fill.broker_fill_id)
        if stored is not None:
            changed = fill_contents_differ(stored, fill)
            if not changed:
                return "duplicate"
            reason = (f"broker fill {fill.broker_fill_id} reported again with other contents "
                      f"({', '.join(changed)} changed)")
            self._distrust_broker(bot_id, "fill.rewritten", reason, now)
            return reason
        order_id = book.by_cid.get(fill.client_order_id)
        order = book.orders.get(order_id) if order_id is not None else None
        refusal = fill_refusal(order, fill, checks)
        if order is None:  # no order of ours: reconciliation's business (see SqlLedger)
            self._event(bot_id, Event("fill.refused", f"refused broker fill "
                                      f"{fill.broker_fill_id}: {refusal}", "error"), now)
            return refusal or "no order"
        if refusal is not None:
            self._distrust_broker(bot_id, "fill.refused",
                                  f"refused broker fill {fill.broker_fill_id}: {refusal}", now)
            return refusal
        book.fill_ids[fill.broker_fill_id] = fill
        book.fills.append(fill)
        _store(book, order_after_fill(order, fill, now))
        current = book.positions.get(fill.instrument) or Position(fill.instrument)
        book.positions[fill.instrument] = apply_fill(current, fill)
        book.marks.setdefault(fill.instrument, fill.price)
        book.totals = None
        return None

    def _distrust_broker(self, bot_id: int, kind: str, reason: str, now: datetime) -> None:
        control = self._book(bot_id).control
        if control.source is HaltSource.BROKER_REPLY and control.reason == reason:
            return  # said already: the halt it caused, with this very reason, still holds
        self._event(bot_id, Event(kind, reason, "critical", HaltSource.BROKER_REPLY.value), now)
        self._halt_unless_halted(bot_id, bot_id, reason, HaltSource.BROKER_REPLY,
                                 "fill-check", now)

    def _halt_unless_halted(self, bot_id: int, target: int | None, reason: str,
                            source: HaltSource, actor: str, now: datetime) -> bool:
        if not self.controls(bot_id).needs_halt(fleet=target is None):
            return False
        self.set_control(target, TradingState.HALTED, reason, source, actor, now)
        return True

    def fills_cursor(self, bot_id: int) -> str | None:
        return self._book(bot_id).cursor

    def apply_funding(self, bot_id: int, entries: Sequence[FundingEntry], cursor: str | None,
                      now: datetime) -> int:
        book = self._book(bot_id)
        applied = 0
        for entry in entries:
            if entry.payment_id in book.funding_ids:
                continue
            book.funding_ids[entry.payment_id] = entry
            current = book.positions.get(entry.instrument) or Position(entry.instrument)
            # Realized P&L, as the SQL ledger books it (store.funding).
            book.positions[entry.instrument] = replace(
                current, realized_pnl=current.realized_pnl + entry.amount)
            book.totals = None
            applied += 1
            self._event(bot_id, Event("funding.settled", f"funding {entry.amount} on "
                                      f"{entry.quantity} {entry.instrument}"), now)
        if cursor is not None:
            book.funding_cursor = cursor
        return applied

    def funding_cursor(self, bot_id: int) -> str | None:
        return self._book(bot_id).funding_cursor

    def cash_baseline(self, bot_id: int) -> dict[str, Decimal]:
        return dict(self._book(bot_id).cash_baseline)

    def set_cash_baseline(self, bot_id: int, baseline: Mapping[str, Decimal], reason: str,
                          actor: str, now: datetime) -> None:
        self._book(bot_id).cash_baseline.update(baseline)
        self._event(bot_id, Event("ledger.cash_baseline", f"{reason} ({actor})"), now)

    # --- audit ------------------------------------------------------------------------

    def record_denial(self, bot_id: int, intent: OrderIntent, decision: Decision,
                      now: datetime) -> None:
        code = decision.reason.value if decision.reason else None
        self._event(bot_id, Event("risk.denied", decision.detail, "warning", code), now)
        if decision.halt is not None:
            target = None if decision.halt is HaltScope.FLEET else bot_id
            self._halt_unless_halted(bot_id, target, decision.detail,
                                     HaltSource.CIRCUIT_BREAKER, "risk", now)

    def record_event(self, bot_id: int | None, event: Event, now: datetime) -> None:
        self._event(bot_id, event, now)

    def _event(self, bot_id: int | None, event: Event, now: datetime) -> None:
        self.events.append(RecordedEvent(bot_id, event, now))

    def record_signal(self, bot_id: int, instrument: str, bar_ts: datetime, signal: Signal,
                      now: datetime) -> int | None:
        book = self._book(bot_id)
        book.signals += 1
        return book.signals

    # --- state ------------------------------------------------------------------------

    def load_state(self, bot_id: int) -> BotState:
        return copy.deepcopy(self._book(bot_id).state)

    def save_state(self, bot_id: int, state: BotState, now: datetime) -> None:
        self._book(bot_id).state = copy.deepcopy(state)

    # --- P&L --------------------------------------------------------------------------

    def _totals_net(self, book: _BotBook) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        if book.totals is None:
            totals = pnl_totals((p, book.marks.get(k)) for k, p in book.positions.items())
            book.totals = totals.realized, totals.unrealized, totals.fees, totals.net
        return book.totals

    def risk_inputs(self, bot_id: int, instrument: str, usd_per_unit: Decimal,
                    now: datetime) -> RiskInputs:
        day = self._utc_day(now)
        book = self._book(bot_id)
        position = book.positions.get(instrument)
        open_buys = open_sells = ZERO
        if book.open_ids:
            open_here = [book.orders[i] for i in book.open_ids
                         if book.orders[i].instrument == instrument]
            open_buys = sum((o.remaining for o in open_here if o.side.sign > 0), ZERO)
            open_sells = sum((o.remaining for o in open_here if o.side.sign < 0), ZERO)
        net = self._totals_net(book)[3]
        pnl = book.pnl
        start = ZERO if pnl is None else day_start_value(pnl.day, pnl.start, pnl.net, day)
        own = (net - start) * usd_per_unit
        others = self._others_daily_usd(bot_id, day)
        return RiskInputs(self.controls(bot_id), position.quantity if position else ZERO,
                          open_buys - open_sells, own, others + own, open_buys, open_sells)

    def _others_daily_usd(self, bot_id: int, day: str) -> Decimal:
        """Today's P&L of every other bot (the fleet's breaker adds this bot's to it)."""
        own = self._books.get(bot_id)
        total = ZERO
        for book in self._books.values():  # added up in the books' order, as sum() would
            pnl = book.pnl
            if pnl is not None and book is not own and pnl.day == day:
                total += pnl.daily_usd
        return total

    def mark(self, bot_id: int, marks: Mapping[str, Quote], usd_per_unit: Decimal,
             now: datetime) -> PnlSnapshot:
        day = self._utc_day(now)
        book = self._book(bot_id)
        for key, quote in marks.items():
            if key in book.positions:
                book.marks[key] = quote.price
                book.totals = None
        realized, unrealized, fees, net = self._totals_net(book)
        pnl = book.pnl
        start = ZERO if pnl is None else day_start_value(pnl.day, pnl.start, pnl.net, day)
        daily = net - start
        daily_usd = daily * usd_per_unit
        book.pnl = _DayPnl(day, start, net, daily_usd)
        others = self._others_daily_usd(bot_id, day)
        snapshot = PnlSnapshot(day, realized, unrealized, fees, daily, daily_usd,
                               others + daily_usd)
        if self._keep_snapshots:
            self.snapshots.append((bot_id, now, snapshot))
        return snapshot
