"""Claiming a write-ahead order's client order id, and surviving one that is already taken.

A client order id is `fk<fleet tag>-<bot id>-<orders row id>`, unique in the database. It
can only be taken already if something wrote it there on purpose: on PostgreSQL the owner
(migration 0011 refuses it from a bot's role), on SQLite any process that can write the file.
A bot that crashed on the unique constraint would crash again at every restart, so the
collision is recorded, loudly, and the order goes out under a fresh row's id instead.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, update
from sqlalchemy.exc import IntegrityError

from fleetkit.core.errors import FleetError
from fleetkit.core.orders import OrderStatus
from fleetkit.store import statements as sql
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import orders

# Each try burns one orders row; more than a few collisions in a row is someone squatting
# ids on purpose, and no longer something to trade through.
CLAIM_ATTEMPTS = 3
COLLISION_KIND = "order.id_collision"


class ClientOrderIdCollisionError(FleetError):
    """Every client order id this order tried was already taken by another orders row:
    someone is writing rows into the fleet database. Stop and find out who."""


def claim_client_order_id(conn: Connection, bot_id: int, order_id: int, client_order_id: str,
                          now: datetime) -> bool:
    """Give write-ahead row `order_id` its real client order id, on `conn` (the caller's
    transaction). False when another row already holds it: then this row is rejected, with a
    reason naming the collision, and a critical `order.id_collision` event (and its alert)
    is recorded — the caller tries again with a fresh row."""
    try:
        # A savepoint: the unique violation undoes only this UPDATE, and on PostgreSQL the
        # transaction stays usable for the rejection and the event below.
        with conn.begin_nested():
            conn.execute(sql.SET_CLIENT_ORDER_ID, {"b_id": order_id, "b_cid": client_order_id})
    except IntegrityError:
        reason = (f"client order id {client_order_id} is already taken by another orders row; "
                  "this row was never sent")
        conn.execute(update(orders).where(orders.c.id == order_id).values(
            status=OrderStatus.REJECTED.value, reason=reason, updated_at=now))
        insert_event(conn, bot_id=bot_id, kind=COLLISION_KIND, severity="critical",
                     code="client_order_id", now=now,
                     message=f"client order id {client_order_id} was already taken by another "
                             f"row of the orders table (written there by something other than "
                             f"this bot): order row {order_id} rejected, retrying under a new id",
                     data={"order_id": order_id, "client_order_id": client_order_id})
        return False
    return True


def collisions_exhausted(bot_id: int) -> ClientOrderIdCollisionError:
    return ClientOrderIdCollisionError(
        f"bot {bot_id}: {CLAIM_ATTEMPTS} client order ids in a row were already taken by other "
        "rows of the orders table; something other than this bot is writing order rows into "
        "the fleet database — find it (the orders holding fk<tag>-<this bot's id>-<n> ids "
        "that this bot did not write) before restarting the bot")
