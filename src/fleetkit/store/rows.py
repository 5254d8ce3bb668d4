"""Mapping between table rows and domain objects, and small writes shared by repositories."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.sql.dml import UpdateBase

from fleetkit.core.alerts import Severity, concern_for, severity_of
from fleetkit.core.controls import Control, HaltSource, TradingState
from fleetkit.core.ledger import Position
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, Order, OrderStatus, OrderType, Side
from fleetkit.engine.ports import SignalRecord
from fleetkit.sqlutil.batch import WriteBatch, run_together
from fleetkit.sqlutil.upsert import insert_if_absent
from fleetkit.store.schema import outbox
from fleetkit.store.statements import INSERT_ALERT, INSERT_EVENT, INSERT_SIGNAL, bound


def order_from_row(row: Row[Any]) -> Order:
    m = row._mapping
    return Order(
        id=m["id"],
        bot_id=m["bot_id"],
        client_order_id=m["client_order_id"],
        instrument=m["instrument"],
        side=Side(m["side"]),
        order_type=OrderType(m["order_type"]),
        quantity=m["quantity"],
        limit_price=m["limit_price"],
        status=OrderStatus(m["status"]),
        filled_quantity=m["filled_quantity"],
        average_fill_price=m["average_fill_price"],
        broker_order_id=m["broker_order_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        reason=m["reason"],
        reference_price=m["reference_price"] or None,
    )


def position_from_row(row: Row[Any]) -> Position:
    m = row._mapping
    return Position(m["instrument"], m["quantity"], m["average_price"], m["realized_pnl"],
                    m["fees"])


def fill_from_row(row: Row[Any], client_order_id: str) -> Fill:
    m = row._mapping
    return Fill(m["broker_fill_id"], client_order_id, m["instrument"], Side(m["side"]),
                m["quantity"], m["price"], m["fee"], m["ts"])


def control_from_row(row: Row[Any] | None) -> Control:
    if row is None:
        return Control()
    m = row._mapping
    return control_from_values(m["state"], m["reason"], m["source"])


def control_from_values(state: str, reason: str, source: str | None) -> Control:
    return Control(TradingState(state), reason, HaltSource(source) if source else None)


def signal_values(bot_id: int, record: SignalRecord, now: datetime) -> dict[str, Any]:
    signal = record.signal
    return {"bot_id": bot_id, "instrument": record.instrument, "bar_ts": record.bar_ts,
            "level": None if signal.level is None else int(signal.level),
            "target_quantity": signal.target_quantity, "note": signal.note, "created_at": now}


def insert_signal(conn: Connection, bot_id: int, record: SignalRecord, now: datetime) -> int:
    signal_id: int = conn.execute(INSERT_SIGNAL, signal_values(bot_id, record, now)
                                  ).scalar_one()
    return signal_id


def insert_event(conn: Connection, *, bot_id: int | None, kind: str, message: str, now: datetime,
                 severity: str = "info", code: str | None = None,
                 data: Mapping[str, Any] | None = None, actor: str | None = None,
                 batch: WriteBatch | None = None) -> None:
    """Write an audit event on `conn`, i.e. inside the caller's transaction, and, when its
    kind is news to someone (core.alerts), the notification of it: both or neither (on
    PostgreSQL in one statement). With `batch`, they are added to it instead, to go with
    the transaction's other writes at its next flush."""
    statements, params = event_writes(bot_id=bot_id, kind=kind, message=message, now=now,
                                      severity=severity, code=code, data=data, actor=actor)
    if batch is None:
        run_together(conn, statements, params)
    else:
        batch.add(conn, statements, params)


def event_writes(*, bot_id: int | None, kind: str, message: str, now: datetime,
                 severity: str = "info", code: str | None = None,
                 data: Mapping[str, Any] | None = None, actor: str | None = None
                 ) -> tuple[tuple[UpdateBase, ...], dict[str, Any]]:
    """The INSERTs an event takes (its notification too, when it is news) and their binds."""
    params = bound("e_", {"bot_id": bot_id, "kind": kind, "severity": severity, "code": code,
                          "message": message, "data": jsonable(data or {}), "actor": actor,
                          "created_at": now})
    concern = concern_for(kind)
    if concern is None:
        return (INSERT_EVENT,), params
    params.update(bound("a_", _notification(
        bot_id=bot_id, kind=kind, concern=concern.value, severity=severity, text=message,
        now=now, collapse_key=collapse_key(kind, bot_id, severity, code, message))))
    return (INSERT_EVENT, INSERT_ALERT), params


def collapse_key(kind: str, bot_id: int | None, severity: str, code: str | None,
                 message: str) -> str:
    """What makes two alerts "the same" for collapsing repeats: kind, bot and the code
    naming the condition (or, without one, the text). Info is news each time (every fill
    is its own), so it never collapses."""
    if severity_of(severity) <= Severity.INFO:
        return f"{kind}|{bot_id or ''}|{uuid.uuid4().hex}"
    return f"{kind}|{bot_id or ''}|{code if code else message[:120]}"


def enqueue_notification(conn: Connection, *, bot_id: int | None, kind: str, concern: str,
                         severity: str, text: str, now: datetime, collapse_key: str,
                         dedup_key: str | None = None, only_route: str | None = None,
                         skip_route: str | None = None, attachment: str | None = None) -> bool:
    """Put a notification in the outbox on `conn` (the caller's transaction); with
    `dedup_key`, only if none with that key exists (True when this call added it).
    `attachment`: the path of a PNG picture (a chart) sent with the text on every route.

    Without a dedup_key it is a plain INSERT: a bot's database role may insert its own
    outbox rows but read none back (the dedup check needs RETURNING, so SELECT)."""
    values = _notification(bot_id=bot_id, kind=kind, concern=concern, severity=severity,
                           text=text, now=now, collapse_key=collapse_key, dedup_key=dedup_key,
                           only_route=only_route, skip_route=skip_route,
                           attachment=attachment)
    if dedup_key is None:
        conn.execute(INSERT_ALERT, bound("a_", values))
        return True
    return insert_if_absent(conn, outbox, values, ["dedup_key"])


def _notification(*, bot_id: int | None, kind: str, concern: str, severity: str, text: str,
                  now: datetime, collapse_key: str, dedup_key: str | None = None,
                  only_route: str | None = None, skip_route: str | None = None,
                  attachment: str | None = None) -> dict[str, Any]:
    return {"bot_id": bot_id, "kind": kind, "concern": concern, "severity": severity,
            "text": text, "collapse_key": collapse_key[:255], "dedup_key": dedup_key,
            "only_route": only_route, "skip_route": skip_route, "created_at": now,
            "attachment": attachment}


def jsonable(value: Any) -> Any:
    """Decimals and datetimes as strings so event data survives a JSON column."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str | int):  # enums
        return value.value
    return value


def decimal_or_zero(value: Decimal | None) -> Decimal:
    return ZERO if value is None else value
