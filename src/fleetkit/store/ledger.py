"""SqlLedger: the engine's Ledger port on the fleet database. One method, one transaction;
every event written in the transaction of the change it describes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from fleetkit.core.controls import Control, Controls, HaltSource, TradingState
from fleetkit.core.errors import BadBrokerReplyError
from fleetkit.core.ledger import (
    DEFAULT_FILL_CHECKS,
    FillChecks,
    PnlTotals,
    Position,
    day_start_value,
    pnl_totals,
    status_from_report,
)
from fleetkit.core.market_data import Quote
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, Order, OrderIntent, OrderStatus
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
from fleetkit.sqlutil.batch import WriteBatch
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import upsert
from fleetkit.store import statements as sql
from fleetkit.store.broker_fills import DUPLICATE, apply_one_fill
from fleetkit.store.controls import halt_unless_halted, read_controls, write_control
from fleetkit.store.funding import apply_funding_entries, funding_cursor
from fleetkit.store.order_ids import COLLISION_KIND, ClientOrderIdCollisionError, write_ahead
from fleetkit.store.rows import (
    control_from_values,
    insert_event,
    insert_signal,
    jsonable,
    order_from_row,
)
from fleetkit.store.schema import (
    bot_pnl,
    bot_state,
    orders,
    pnl_snapshots,
    position_adjustments,
    positions,
)

OPEN_STATUSES = sql.OPEN_STATUSES


def utc_day(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


class SqlLedger:
    """Implements engine.ports.Ledger. `fleet_tag` makes client order ids unique across
    databases that might share one broker account."""

    def __init__(self, engine: Engine, fleet_tag: str) -> None:
        self._engine = engine
        self._tag = fleet_tag

    # --- controls -------------------------------------------------------------------

    def controls(self, bot_id: int) -> Controls:
        with read_transaction(self._engine) as conn:
            return read_controls(conn, bot_id)

    def set_control(self, bot_id: int | None, state: TradingState, reason: str,
                    source: HaltSource, actor: str, now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            write_control(conn, bot_id, state, reason, source, actor, now)

    def halt(self, bot_id: int, scope: HaltScope, reason: str, source: HaltSource,
             actor: str, now: datetime) -> bool:
        target = None if scope is HaltScope.FLEET else bot_id
        with write_transaction(self._engine) as conn:
            return halt_unless_halted(conn, bot_id, target, reason, source, actor, now)

    # --- orders and fills -----------------------------------------------------------

    def positions(self, bot_id: int) -> dict[str, Position]:
        with read_transaction(self._engine) as conn:
            return {p.instrument: p for p, _ in _marked_positions(conn, bot_id)}

    def open_orders(self, bot_id: int) -> list[Order]:
        with read_transaction(self._engine) as conn:
            return [order_from_row(r) for r in conn.execute(sql.OPEN_ORDERS, {"b_bot": bot_id})]

    def write_ahead(self, bot_id: int, intent: OrderIntent, signal_id: int | None,
                    now: datetime) -> Order:
        with write_transaction(self._engine) as conn:
            return write_ahead(conn, bot_id, self._tag, intent, now, signal_id=signal_id)[0]

    def admit(self, bot_id: int, intent: OrderIntent, signal: SignalRecord | None,
              usd_per_unit: Decimal, now: datetime,
              decide: Callable[[RiskInputs], Decision]) -> Admission:
        """One transaction, committed before the order can be sent: the kill switches and
        everything else the rails judge by read fresh (one statement), the decision, and
        the signal with the denial or with the write-ahead order row (one statement on
        PostgreSQL)."""
        try:
            with write_transaction(self._engine) as conn:
                decision = decide(_risk_inputs(conn, bot_id, intent.instrument, usd_per_unit,
                                               now))
                if not decision.allowed:
                    signal_id = None if signal is None else insert_signal(conn, bot_id,
                                                                          signal, now)
                    _record_denial(conn, bot_id, intent, decision, now)
                    return Admission(decision, None, signal_id)
                order, signal_id = write_ahead(conn, bot_id, self._tag, intent, now,
                                               signal=signal)
                return Admission(decision, order, signal_id)
        except ClientOrderIdCollisionError as exc:
            # The admission rolled back with its collision events: say it where it stays.
            self.record_event(bot_id, Event(COLLISION_KIND, str(exc), "critical",
                                            "client_order_id"), now)
            raise

    def record_report(self, bot_id: int, order: Order, report: OrderReport,
                      now: datetime, *, checks: FillChecks = DEFAULT_FILL_CHECKS) -> Order:
        mismatch = report.mismatch(order)
        if mismatch is not None:
            raise BadBrokerReplyError(mismatch)
        with write_transaction(self._engine) as conn:
            # The caller read or wrote this order just now and is the only process writing
            # this bot's rows (its lease), so no re-read is needed here. A fill's writes
            # (position, event, notification) wait in `writes` to go with the order's
            # progress: on PostgreSQL one statement after each fill's insert.
            writes = WriteBatch()
            current = order
            for fill in report.fills:
                outcome = apply_one_fill(conn, bot_id, fill, now, current, checks,
                                         write_order=False, batch=writes)
                if isinstance(outcome, Order):
                    current = outcome
            status = status_from_report(current.status, report.status, current.filled_quantity,
                                        current.quantity)
            reason = report.reason or current.reason
            writes.add(conn, (sql.SET_ORDER_PROGRESS,), {
                "b_id": order.id, "b_filled": current.filled_quantity,
                "b_average": current.average_fill_price, "b_status": status.value,
                "b_broker_id": report.broker_order_id, "b_reason": reason, "b_now": now})
            if status is OrderStatus.REJECTED:
                insert_event(conn, bot_id=bot_id, kind="order.rejected", severity="warning",
                             message=f"{order.client_order_id} rejected: {reason}", now=now,
                             data={"client_order_id": order.client_order_id}, batch=writes)
            writes.flush(conn)
            return Order(current.id, bot_id, current.client_order_id, current.instrument,
                         current.side, current.order_type, current.quantity,
                         current.limit_price, status, current.filled_quantity,
                         current.average_fill_price, report.broker_order_id, current.created_at,
                         now, reason)

    def record_rejection(self, bot_id: int, order: Order, reason: str, now: datetime) -> Order:
        return self.mark_order(bot_id, order, OrderStatus.REJECTED, reason, now)

    def mark_order(self, bot_id: int, order: Order, status: OrderStatus, reason: str,
                   now: datetime) -> Order:
        """Set a terminal status the broker confirmed out of band (rejected, never received)."""
        with write_transaction(self._engine) as conn:
            current = _order(conn, order.id)
            if current.status.is_terminal:
                return current
            conn.execute(update(orders).where(orders.c.id == order.id).values(
                status=status.value, reason=reason, updated_at=now))
            insert_event(conn, bot_id=bot_id, kind=f"order.{status.value}", severity="warning",
                         message=f"{order.client_order_id} {status.value}: {reason}", now=now,
                         data={"client_order_id": order.client_order_id,
                               "instrument": order.instrument})
            return _order(conn, order.id)

    def apply_fills(self, bot_id: int, fills_in: Sequence[Fill], cursor: str | None,
                    now: datetime, *, checks: FillChecks = DEFAULT_FILL_CHECKS) -> FillResult:
        applied: list[Fill] = []
        refused: list[tuple[Fill, str]] = []
        duplicates = 0
        with write_transaction(self._engine) as conn:
            for fill in fills_in:
                outcome = apply_one_fill(conn, bot_id, fill, now, None, checks)
                if isinstance(outcome, Order):
                    applied.append(fill)
                elif outcome == DUPLICATE:
                    duplicates += 1
                else:
                    refused.append((fill, outcome))
            _store_cursor(conn, bot_id, cursor, now)
        return FillResult(tuple(applied), duplicates, tuple(refused))

    def fills_cursor(self, bot_id: int) -> str | None:
        with read_transaction(self._engine) as conn:
            cursor: str | None = conn.execute(
                select(bot_state.c.fills_cursor).where(bot_state.c.bot_id == bot_id)
            ).scalar_one_or_none()
            return cursor

    def apply_funding(self, bot_id: int, entries: Sequence[FundingEntry], cursor: str | None,
                      now: datetime) -> int:
        with write_transaction(self._engine) as conn:
            return apply_funding_entries(conn, bot_id, entries, cursor, now)

    def funding_cursor(self, bot_id: int) -> str | None:
        with read_transaction(self._engine) as conn:
            return funding_cursor(conn, bot_id)

    def cash_baseline(self, bot_id: int) -> dict[str, Decimal]:
        with read_transaction(self._engine) as conn:
            raw = conn.execute(select(bot_state.c.cash_baseline)
                               .where(bot_state.c.bot_id == bot_id)).scalar_one_or_none()
        return {str(k): Decimal(str(v)) for k, v in (raw or {}).items()}

    def set_cash_baseline(self, bot_id: int, baseline: Mapping[str, Decimal], reason: str,
                          actor: str, now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            raw = conn.execute(select(bot_state.c.cash_baseline)
                               .where(bot_state.c.bot_id == bot_id)).first()
            merged = {**((raw[0] if raw is not None else None) or {}),
                      **{c: str(v) for c, v in baseline.items()}}
            if raw is None:
                conn.execute(insert(bot_state).values(bot_id=bot_id, state={}, fills_cursor=None,
                                                      cash_baseline=merged, updated_at=now))
            else:
                conn.execute(update(bot_state).where(bot_state.c.bot_id == bot_id)
                             .values(cash_baseline=merged))
            text = ", ".join(f"{c} {v}" for c, v in sorted(baseline.items()))
            insert_event(conn, bot_id=bot_id, kind="ledger.cash_baseline", actor=actor, now=now,
                         message=f"cash baseline set to {text} by {actor}: {reason}",
                         data={"baseline": dict(baseline), "reason": reason})

    # --- operator corrections (fleet reconcile --adopt-broker) -------------------------

    def adjust_position(self, bot_id: int, instrument: str, quantity: Decimal,
                        average_price: Decimal, reason: str, actor: str, now: datetime) -> None:
        """Set a position to what the broker holds, keeping realized P&L and fees, with the
        before and after recorded and an event, in one transaction."""
        with write_transaction(self._engine) as conn:
            row = conn.execute(sql.POSITION, {"b_bot": bot_id, "b_instrument": instrument}
                               ).first()
            m = row._mapping if row is not None else None
            before_qty = m["quantity"] if m else ZERO
            before_avg = m["average_price"] if m else ZERO
            conn.execute(sql.upsert_position(conn), sql.bound("p_", {
                "bot_id": bot_id, "instrument": instrument, "quantity": quantity,
                "average_price": average_price if quantity != ZERO else ZERO,
                "realized_pnl": m["realized_pnl"] if m else ZERO,
                "fees": m["fees"] if m else ZERO, "mark_price": m["mark_price"] if m else None,
                "mark_ts": m["mark_ts"] if m else None, "updated_at": now}))
            conn.execute(insert(position_adjustments).values(
                bot_id=bot_id, instrument=instrument, quantity_before=before_qty,
                quantity_after=quantity, average_price_before=before_avg,
                average_price_after=average_price, reason=reason, actor=actor, created_at=now))
            insert_event(conn, bot_id=bot_id, kind="reconcile.adjusted", severity="warning",
                         actor=actor, now=now,
                         message=f"{instrument}: ledger position {before_qty} set to the "
                                 f"broker's {quantity} by {actor}: {reason}",
                         data={"instrument": instrument, "before": before_qty,
                               "after": quantity, "reason": reason})

    def adopt_order(self, bot_id: int, report: OrderReport, reason: str, actor: str,
                    now: datetime) -> Order:
        """Take an order only the broker knows into the ledger, so its fills apply."""
        with write_transaction(self._engine) as conn:
            order_id: int = conn.execute(sql.INSERT_ORDER, {
                "bot_id": bot_id, "client_order_id": report.client_order_id,
                "broker_order_id": report.broker_order_id, "instrument": report.instrument,
                "side": report.side.value, "order_type": report.order_type.value,
                "quantity": report.quantity, "limit_price": report.limit_price,
                "reference_price": report.limit_price or report.average_fill_price or ZERO,
                "status": report.status.value, "filled_quantity": report.filled_quantity,
                "average_fill_price": report.average_fill_price,
                "reason": f"adopted from the broker by {actor}: {reason}", "signal_id": None,
                "created_at": now, "updated_at": now}).scalar_one()
            insert_event(conn, bot_id=bot_id, kind="reconcile.adopted_order",
                         severity="warning", actor=actor, now=now,
                         message=f"order {report.client_order_id} ({report.side} "
                                 f"{report.quantity} {report.instrument}) known only to the "
                                 f"broker adopted by {actor}: {reason}",
                         data={"client_order_id": report.client_order_id})
            return _order(conn, order_id)

    # --- audit ------------------------------------------------------------------------

    def record_denial(self, bot_id: int, intent: OrderIntent, decision: Decision,
                      now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            _record_denial(conn, bot_id, intent, decision, now)

    def record_event(self, bot_id: int | None, event: Event, now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            insert_event(conn, bot_id=bot_id, kind=event.kind, message=event.message, now=now,
                         severity=event.severity, code=event.code, data=event.data)

    def record_signal(self, bot_id: int, instrument: str, bar_ts: datetime, signal: Signal,
                      now: datetime) -> int | None:
        with write_transaction(self._engine) as conn:
            return insert_signal(conn, bot_id, SignalRecord(instrument, bar_ts, signal), now)

    # --- state ------------------------------------------------------------------------

    def load_state(self, bot_id: int) -> BotState:
        with read_transaction(self._engine) as conn:
            raw = conn.execute(select(bot_state.c.state).where(bot_state.c.bot_id == bot_id)
                               ).scalar_one_or_none()
        return BotState.from_json(raw or {})

    def save_state(self, bot_id: int, state: BotState, now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            exists = conn.execute(select(bot_state.c.bot_id).where(bot_state.c.bot_id == bot_id)
                                  ).first()
            if exists:
                conn.execute(update(bot_state).where(bot_state.c.bot_id == bot_id).values(
                    state=jsonable(state.to_json()), updated_at=now))
            else:
                conn.execute(insert(bot_state).values(bot_id=bot_id, state=state.to_json(),
                                                      fills_cursor=None, updated_at=now))

    # --- P&L and risk inputs ------------------------------------------------------------

    def risk_inputs(self, bot_id: int, instrument: str, usd_per_unit: Decimal,
                    now: datetime) -> RiskInputs:
        with read_transaction(self._engine) as conn:
            return _risk_inputs(conn, bot_id, instrument, usd_per_unit, now)

    def mark(self, bot_id: int, marks: Mapping[str, Quote], usd_per_unit: Decimal,
             now: datetime) -> PnlSnapshot:
        day = utc_day(now)
        with write_transaction(self._engine) as conn:
            for key, quote in marks.items():
                conn.execute(update(positions).where(
                    positions.c.bot_id == bot_id, positions.c.instrument == key
                ).values(mark_price=quote.price, mark_ts=quote.ts))
            totals = pnl_totals(_marked_positions(conn, bot_id))
            previous = conn.execute(sql.BOT_PNL, {"b_bot": bot_id}).first()
            if previous is None:
                start = start_realized = ZERO
            else:
                m = previous._mapping
                start = day_start_value(m["day"], m["day_start_net"], _row_net(m), day)
                # NULL within the day for a row from before migration 0008: stays NULL.
                start_realized = day_start_value(m["day"], m["day_start_realized"],
                                                 m["realized"], day)
            snapshot = _snapshot(day, totals, start, usd_per_unit)
            upsert(conn, bot_pnl, {
                "bot_id": bot_id, "day": day, "day_start_net": start,
                "day_start_realized": start_realized,
                "realized": totals.realized, "unrealized": totals.unrealized,
                "fees": totals.fees, "daily": snapshot.daily, "daily_usd": snapshot.daily_usd,
                "usd_per_unit": usd_per_unit, "updated_at": now}, key=["bot_id"])
            conn.execute(insert(pnl_snapshots).values(
                bot_id=bot_id, ts=now, day=day, realized=totals.realized,
                unrealized=totals.unrealized, fees=totals.fees, daily=snapshot.daily,
                usd_per_unit=usd_per_unit))
            fleet = sql.fleet_daily_usd(conn, day)
        return replace(snapshot, fleet_daily_usd=fleet)


# --- helpers shared by the methods above (all run inside the caller's transaction) -------


def _snapshot(day: str, totals: PnlTotals, start: Decimal, usd_per_unit: Decimal) -> PnlSnapshot:
    daily = totals.net - start
    return PnlSnapshot(day, totals.realized, totals.unrealized, totals.fees, daily,
                       daily * usd_per_unit)


def _row_net(m: Any) -> Decimal:
    net: Decimal = m["realized"] + m["unrealized"] - m["fees"]
    return net


def _order(conn: Connection, order_id: int) -> Order:
    return order_from_row(conn.execute(sql.ORDER_BY_ID, {"b_id": order_id}).one())


def _record_denial(conn: Connection, bot_id: int, intent: OrderIntent, decision: Decision,
                   now: datetime) -> None:
    code = decision.reason.value if decision.reason else None
    insert_event(conn, bot_id=bot_id, kind="risk.denied", severity="warning", code=code,
                 message=f"{intent.side} {intent.quantity} {intent.instrument} denied: "
                         f"{decision.detail}",
                 now=now, data={"instrument": intent.instrument, "side": intent.side,
                                "quantity": intent.quantity, "price": intent.price_for_checks})
    if decision.halt is None:
        return
    target = None if decision.halt is HaltScope.FLEET else bot_id
    halt_unless_halted(conn, bot_id, target, decision.detail, HaltSource.CIRCUIT_BREAKER,
                       "risk", now)


def _marked_positions(conn: Connection, bot_id: int) -> list[tuple[Position, Decimal | None]]:
    result = []
    for row in conn.execute(sql.POSITIONS, {"b_bot": bot_id}):
        m = row._mapping
        result.append((Position(m["instrument"], m["quantity"], m["average_price"],
                                m["realized_pnl"], m["fees"]), m["mark_price"]))
    return result


def _risk_inputs(conn: Connection, bot_id: int, instrument: str, usd_per_unit: Decimal,
                 now: datetime) -> RiskInputs:
    """Everything the rails judge by, read fresh in one statement (sql.ADMISSION_READS)."""
    day = utc_day(now)
    rows: defaultdict[str, list[Row[Any]]] = defaultdict(list)
    for row in conn.execute(sql.ADMISSION_READS[conn.dialect.name],
                            {"b_bot": bot_id, "b_instrument": instrument, "b_day": day}):
        rows[row.kind].append(row)
    controls = Controls(_switch(rows["fleet"]), _switch(rows["bot"]))
    held = [(Position(r.t0, r.n0, r.n1, r.n2, r.n3), r.n4) for r in rows["position"]]
    position = next((p.quantity for p, _ in held if p.instrument == instrument), ZERO)
    # Remaining quantity of open buys and of open sells (both >= 0).
    open_buys = sum((max(r.n0 - r.n1, ZERO) for r in rows["open"] if r.t0 == "buy"), ZERO)
    open_sells = sum((max(r.n0 - r.n1, ZERO) for r in rows["open"] if r.t0 != "buy"), ZERO)
    net = pnl_totals(held).net
    own_daily = net * usd_per_unit  # a bot never marked before started today at zero
    own_stored = ZERO  # this bot's share of the fleet total as of its last mark
    for r in rows["bot_pnl"]:  # day, day_start_net, realized, unrealized, fees, daily_usd
        own_daily = (net - day_start_value(r.t0, r.n0, r.n1 + r.n2 - r.n3, day)) * usd_per_unit
        if r.t0 == day:
            own_stored = r.n4
    others = sum((r.n0 for r in rows["fleet_pnl"]), ZERO) - own_stored
    return RiskInputs(controls, position, open_buys - open_sells, own_daily, others + own_daily,
                      open_buys, open_sells)


def _switch(rows: list[Row[Any]]) -> Control:
    """A kill switch from its row (state, reason, source); no row: active."""
    return control_from_values(rows[0].t0, rows[0].t1, rows[0].t2) if rows else Control()


def _store_cursor(conn: Connection, bot_id: int, cursor: str | None, now: datetime) -> None:
    if cursor is None:
        return
    exists = conn.execute(select(bot_state.c.bot_id).where(bot_state.c.bot_id == bot_id)).first()
    if exists:
        conn.execute(update(bot_state).where(bot_state.c.bot_id == bot_id)
                     .values(fills_cursor=cursor, updated_at=now))
    else:
        conn.execute(insert(bot_state).values(bot_id=bot_id, state={}, fills_cursor=cursor,
                                              updated_at=now))
