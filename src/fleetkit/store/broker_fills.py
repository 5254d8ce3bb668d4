"""Applying a broker's fills to the ledger: each judged plausible for its order first, each
applied once (by broker fill id), and a broker that reports what we will not believe —
an implausible fill, or a fill id again with other contents — recorded and the bot halted,
all in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

from fleetkit.core.controls import HaltSource
from fleetkit.core.ledger import (
    FillChecks,
    Position,
    apply_fill,
    fill_contents_differ,
    fill_refusal,
    order_after_fill,
)
from fleetkit.core.orders import Fill, Order
from fleetkit.sqlutil.batch import WriteBatch
from fleetkit.store import statements as sql
from fleetkit.store.controls import halt_unless_halted, read_controls
from fleetkit.store.rows import fill_from_row, insert_event, order_from_row

DUPLICATE = "duplicate"


def apply_one_fill(conn: Connection, bot_id: int, fill: Fill, now: datetime,
                    order: Order | None, checks: FillChecks, *,
                    write_order: bool = True, batch: WriteBatch | None = None) -> Order | str:
    """Apply one fill: the order after it, DUPLICATE if seen before, else why refused.

    A refused fill, or one seen before with other contents, halts the bot in this same
    transaction: the broker now says something we will not believe.
    `order` is the fill's order when the caller already holds it (an answer to a submit);
    `write_order=False` leaves writing the order's progress to the caller (once, at the end).
    `batch`: the writes an applied fill makes (its position, its event and notification,
    the order's progress) are added to it, to go with the caller's next writes in one
    statement (sqlutil.batch); anything it holds is flushed first, as this reads.
    """
    own_batch = batch is None
    writes = WriteBatch() if batch is None else batch
    writes.flush(conn)
    if order is None or order.client_order_id != fill.client_order_id:
        row = conn.execute(sql.ORDER_BY_CID, {"b_cid": fill.client_order_id,
                                              "b_bot": bot_id}).first()
        order = order_from_row(row) if row is not None else None
    refusal = fill_refusal(order, fill, checks)
    if refusal is not None or order is None:
        stored = _stored_fill(conn, bot_id, fill.broker_fill_id)
        if stored is not None:  # a replay for an order it completed is no refusal
            return _repeated_fill(conn, bot_id, stored, fill, now)
        why = refusal or "no order"
        if order is None:
            # A trade in the account that is no order of ours (someone at the desk): not
            # applied, and left to reconciliation, which halts if positions now differ.
            insert_event(conn, bot_id=bot_id, kind="fill.refused", severity="error", now=now,
                         message=f"refused broker fill {fill.broker_fill_id}: {why}",
                         data=_fill_data(fill))
            return why
        _distrust_broker(conn, bot_id, "fill.refused",
                         f"refused broker fill {fill.broker_fill_id}: {why}", fill, now)
        return why
    inserted, position = _insert_reading_position(conn, bot_id, order.id, fill, now)
    if not inserted:  # the fill id is known: look at what was stored (only now)
        stored = _stored_fill(conn, bot_id, fill.broker_fill_id)
        return DUPLICATE if stored is None else _repeated_fill(conn, bot_id, stored, fill, now)
    updated = order_after_fill(order, fill, now)
    if write_order:
        writes.add(conn, (sql.SET_ORDER_PROGRESS,), {
            "b_id": order.id, "b_filled": updated.filled_quantity,
            "b_average": updated.average_fill_price, "b_status": updated.status.value,
            "b_broker_id": order.broker_order_id, "b_reason": order.reason, "b_now": now})
    _move_position(conn, writes, bot_id, fill, position, now)
    insert_event(conn, bot_id=bot_id, kind="order.fill", now=now,
                 message=f"{fill.side} {fill.quantity} {fill.instrument} @ {fill.price}",
                 data={"client_order_id": fill.client_order_id, "price": fill.price,
                       "quantity": fill.quantity, "fee": fill.fee, "side": fill.side},
                 batch=writes)
    if own_batch:
        writes.flush(conn)
    return updated


def _insert_reading_position(conn: Connection, bot_id: int, order_id: int, fill: Fill,
                             now: datetime) -> tuple[bool, Row[Any] | None]:
    """Insert the fill unless its id is known; whether it was, and (if it was) the row of
    the position it moves, as it stands (None: no row yet). One statement on PostgreSQL."""
    params = sql.bound("f_", {
        "bot_id": bot_id, "order_id": order_id, "broker_fill_id": fill.broker_fill_id,
        "instrument": fill.instrument, "side": fill.side.value, "quantity": fill.quantity,
        "price": fill.price, "fee": fill.fee, "ts": fill.ts, "created_at": now})
    if conn.dialect.name == "postgresql":
        row = conn.execute(sql.INSERT_FILL_READ_POSITION_PG, params).one()
        # quantity is NOT NULL in a position row: NULL here is the outer join finding none
        return row.fill_id is not None, (row if row.quantity is not None else None)
    if conn.execute(sql.INSERT_FILL_ONCE_SQLITE, params).first() is None:
        return False, None
    return True, conn.execute(sql.POSITION_OF_FILL, params).first()


def _repeated_fill(conn: Connection, bot_id: int, stored: Fill, fill: Fill,
                   now: datetime) -> str:
    """A fill id seen before: a plain repeat is a duplicate; with other contents it is the
    broker rewriting history, which is recorded and halts the bot."""
    changed = fill_contents_differ(stored, fill)
    if not changed:
        return DUPLICATE
    detail = ", ".join(f"{name} {getattr(stored, name)} -> {getattr(fill, name)}"
                       for name in changed)
    reason = f"broker fill {fill.broker_fill_id} reported again with other contents ({detail})"
    _distrust_broker(conn, bot_id, "fill.rewritten", reason, fill, now)
    return reason


def _distrust_broker(conn: Connection, bot_id: int, kind: str, reason: str, fill: Fill,
                     now: datetime) -> None:
    """Record what the broker said that we will not believe, and halt the bot for it. A
    broker that keeps saying the same thing (a rewritten fill in every page) is recorded
    once: the halt it caused, with this very reason, is still in place."""
    control = read_controls(conn, bot_id).bot
    if control.source is HaltSource.BROKER_REPLY and control.reason == reason[:500]:
        return
    insert_event(conn, bot_id=bot_id, kind=kind, severity="critical", now=now,
                 code=HaltSource.BROKER_REPLY.value,
                 message=f"{reason}; the ledger is unchanged and the bot is halted",
                 data=_fill_data(fill))
    halt_unless_halted(conn, bot_id, bot_id, reason[:500], HaltSource.BROKER_REPLY,
                       "fill-check", now)


def _fill_data(fill: Fill) -> dict[str, Any]:
    return {"broker_fill_id": fill.broker_fill_id, "instrument": fill.instrument,
            "client_order_id": fill.client_order_id, "side": fill.side,
            "quantity": fill.quantity, "price": fill.price, "fee": fill.fee}


def _stored_fill(conn: Connection, bot_id: int, broker_fill_id: str) -> Fill | None:
    row = conn.execute(sql.FILL_BY_BROKER_ID, {"b_bot": bot_id, "b_fid": broker_fill_id}
                       ).first()
    return None if row is None else fill_from_row(row, row._mapping["client_order_id"])


def _move_position(conn: Connection, writes: WriteBatch, bot_id: int, fill: Fill,
                   row: Row[Any] | None, now: datetime) -> None:
    if row is None:
        current = Position(fill.instrument)
        mark_price, mark_ts = fill.price, fill.ts
    else:
        m = row._mapping
        current = Position(fill.instrument, m["quantity"], m["average_price"],
                           m["realized_pnl"], m["fees"])
        mark_price, mark_ts = m["mark_price"], m["mark_ts"]
    moved = apply_fill(current, fill)
    writes.add(conn, (sql.upsert_position(conn),), sql.bound("p_", {
        "bot_id": bot_id, "instrument": fill.instrument, "quantity": moved.quantity,
        "average_price": moved.average_price, "realized_pnl": moved.realized_pnl,
        "fees": moved.fees, "mark_price": mark_price, "mark_ts": mark_ts, "updated_at": now}))
