"""The write-ahead order row and its client order id, and surviving an id already taken.

A client order id is `fk<fleet tag>-<bot id>-<orders row id>`, unique in the database. The
INSERT that writes the row draws its id and derives the client order id from it in the same
statement (store/statements.py), so the id a broker will see is durable before the order
can possibly be sent — one statement, no placeholder to update, no savepoint.

The id can only be taken already if something wrote it there on purpose: on PostgreSQL the
owner (migration 0011 refuses it from a bot's role), on SQLite any process that can write
the file. A bot that crashed on the unique constraint would crash again at every restart, so
the INSERT does nothing on that conflict (ON CONFLICT DO NOTHING: the transaction stays
usable) and the collision is recorded, loudly — a rejected row holding the id drawn, never
sent, and a critical event — and the order goes out under the next id instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection

from fleetkit.core.errors import FleetError
from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Order, OrderIntent, OrderStatus
from fleetkit.engine.ports import SignalRecord
from fleetkit.store import statements as sql
from fleetkit.store.rows import insert_event, insert_signal, signal_values

# Each try burns one orders row; more than a few collisions in a row is someone squatting
# ids on purpose, and no longer something to trade through.
CLAIM_ATTEMPTS = 3
COLLISION_KIND = "order.id_collision"


class ClientOrderIdCollisionError(FleetError):
    """Every client order id this order tried was already taken by another orders row:
    someone is writing rows into the fleet database. Stop and find out who."""


def write_ahead(conn: Connection, bot_id: int, fleet_tag: str, intent: OrderIntent,
                now: datetime, *, signal: SignalRecord | None = None,
                signal_id: int | None = None) -> tuple[Order, int | None]:
    """Write the PENDING row of `intent` under its real client order id on `conn` (the
    caller's transaction); the order and the signal's id. `signal` is written too (on
    PostgreSQL in the same statement); `signal_id` names one written already.

    Raises ClientOrderIdCollisionError after CLAIM_ATTEMPTS ids in a row were taken."""
    values = _pending_row(bot_id, intent, now)
    values["b_cid_prefix"] = prefix = f"fk{fleet_tag}-{bot_id}-"
    for _ in range(CLAIM_ATTEMPTS):
        if conn.dialect.name == "postgresql":
            if signal is not None and signal_id is None:
                row = conn.execute(sql.WRITE_AHEAD_PG_WITH_SIGNAL,
                                   {**values, **sql.bound("s_", signal_values(
                                       bot_id, signal, now))}).one()
            else:
                row = conn.execute(sql.WRITE_AHEAD_PG, {**values, "b_signal_id": signal_id}
                                   ).one()
            order_id, signal_id, claimed = row.order_id, row.signal_id, row.claimed
        else:
            if signal is not None and signal_id is None:
                signal_id = insert_signal(conn, bot_id, signal, now)
            order_id = conn.execute(sql.WRITE_AHEAD_SQLITE,
                                    {**values, "b_signal_id": signal_id}).scalar()
            claimed = order_id is not None
            if order_id is None:  # the id it drew: nothing was written since
                order_id = conn.execute(sql.NEXT_ORDER_ID_SQLITE).scalar_one()
        if claimed:
            return Order(order_id, bot_id, f"{prefix}{order_id}", intent.instrument,
                         intent.side, intent.order_type, intent.quantity, intent.limit_price,
                         OrderStatus.PENDING, ZERO, None, None, now, now, intent.reason,
                         intent.reference_price), signal_id
        _record_collision(conn, bot_id, order_id, f"{prefix}{order_id}", intent, signal_id,
                          now)
    raise collisions_exhausted(bot_id)


def _intent_row(bot_id: int, intent: OrderIntent, now: datetime) -> dict[str, Any]:
    """An orders row for `intent`, not yet sent (PENDING), keyed by column; without its id,
    client order id and signal."""
    return {
        "bot_id": bot_id, "broker_order_id": None, "instrument": intent.instrument,
        "side": intent.side.value, "order_type": intent.order_type.value,
        "quantity": intent.quantity, "limit_price": intent.limit_price,
        "reference_price": intent.reference_price, "status": OrderStatus.PENDING.value,
        "filled_quantity": ZERO, "average_fill_price": None, "reason": intent.reason,
        "created_at": now, "updated_at": now}


def _pending_row(bot_id: int, intent: OrderIntent, now: datetime) -> dict[str, Any]:
    return sql.bound("b_", _intent_row(bot_id, intent, now))


def _record_collision(conn: Connection, bot_id: int, order_id: int, client_order_id: str,
                      intent: OrderIntent, signal_id: int | None, now: datetime) -> None:
    """The id drawn is kept by a rejected row with a placeholder client order id (it was
    never sent under any id), and a critical `order.id_collision` event (and its alert)
    says whose it was. On PostgreSQL the row takes the id the sequence just gave this
    session, as a bot's role must (migration 0011)."""
    reason = (f"client order id {client_order_id} is already taken by another orders row; "
              "this row was never sent")
    conn.execute(sql.INSERT_ORDER, {
        **_intent_row(bot_id, intent, now), "id": order_id,
        "client_order_id": f"wa-{uuid4().hex}", "status": OrderStatus.REJECTED.value,
        "reason": reason, "signal_id": signal_id})
    insert_event(conn, bot_id=bot_id, kind=COLLISION_KIND, severity="critical",
                 code="client_order_id", now=now,
                 message=f"client order id {client_order_id} was already taken by another "
                         f"row of the orders table (written there by something other than "
                         f"this bot): order row {order_id} rejected, retrying under a new id",
                 data={"order_id": order_id, "client_order_id": client_order_id})


def collisions_exhausted(bot_id: int) -> ClientOrderIdCollisionError:
    return ClientOrderIdCollisionError(
        f"bot {bot_id}: {CLAIM_ATTEMPTS} client order ids in a row were already taken by other "
        "rows of the orders table; something other than this bot is writing order rows into "
        "the fleet database — find it (the orders holding fk<tag>-<this bot's id>-<n> ids "
        "that this bot did not write) before restarting the bot")
