"""The order path's statements, built once with bind parameters.

Building a SQLAlchemy statement costs more CPU than running it on SQLite, and an order
runs about a dozen; built once, each execution only binds values (compiled forms are cached
per engine). Bind names carry a `b_` prefix so they never collide with column names.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from fleetkit.core.orders import OrderStatus
from fleetkit.sqlutil.types import ExactDecimal, UTCDateTime
from fleetkit.store.schema import (
    bot_controls,
    bot_pnl,
    events,
    fills,
    fleet_controls,
    orders,
    positions,
    signals,
)

OPEN_STATUSES = (OrderStatus.PENDING.value, OrderStatus.ACKNOWLEDGED.value,
                 OrderStatus.PARTIALLY_FILLED.value)

# Both kill switches in one round trip: the fleet's row (if any) and the bot's (if any).
CONTROLS = union_all(
    select(literal("fleet").label("scope"), fleet_controls.c.state, fleet_controls.c.reason,
           fleet_controls.c.source).where(fleet_controls.c.id == 1),
    select(literal("bot").label("scope"), bot_controls.c.state, bot_controls.c.reason,
           bot_controls.c.source).where(bot_controls.c.bot_id == bindparam("b_bot")),
)

POSITIONS = select(positions).where(positions.c.bot_id == bindparam("b_bot"))
POSITION = select(positions).where(positions.c.bot_id == bindparam("b_bot"),
                                   positions.c.instrument == bindparam("b_instrument"))
OPEN_IN_INSTRUMENT = select(orders.c.side, orders.c.quantity, orders.c.filled_quantity).where(
    orders.c.bot_id == bindparam("b_bot"), orders.c.instrument == bindparam("b_instrument"),
    orders.c.status.in_(OPEN_STATUSES))
OPEN_ORDERS = select(orders).where(orders.c.bot_id == bindparam("b_bot"),
                                   orders.c.status.in_(OPEN_STATUSES)).order_by(orders.c.id)
BOT_PNL = select(bot_pnl).where(bot_pnl.c.bot_id == bindparam("b_bot"))
DAILY_USD_ON = select(bot_pnl.c.daily_usd).where(bot_pnl.c.day == bindparam("b_day"))
# On PostgreSQL a bot's role sees only its own bot_pnl row (row-level security); the fleet's
# total comes from a SECURITY DEFINER function that reveals the sum and nothing behind it.
FLEET_DAILY_USD_PG = text("SELECT fleet_daily_pnl_usd(:b_day)")
ORDER_BY_ID = select(orders).where(orders.c.id == bindparam("b_id"))
FILL_BY_BROKER_ID = select(fills, orders.c.client_order_id).join(
    orders, orders.c.id == fills.c.order_id).where(
    fills.c.bot_id == bindparam("b_bot"), fills.c.broker_fill_id == bindparam("b_fid"))
ORDER_BY_CID = select(orders).where(orders.c.client_order_id == bindparam("b_cid"),
                                    orders.c.bot_id == bindparam("b_bot"))

INSERT_SIGNAL = insert(signals).returning(signals.c.id)
INSERT_ORDER = insert(orders).returning(orders.c.id)
INSERT_EVENT = insert(events)
SET_CLIENT_ORDER_ID = update(orders).where(orders.c.id == bindparam("b_id")).values(
    client_order_id=bindparam("b_cid"))
SET_ORDER_PROGRESS = update(orders).where(orders.c.id == bindparam("b_id")).values(
    filled_quantity=bindparam("b_filled", type_=ExactDecimal()),
    average_fill_price=bindparam("b_average", type_=ExactDecimal()),
    status=bindparam("b_status"), broker_order_id=bindparam("b_broker_id"),
    reason=bindparam("b_reason"), updated_at=bindparam("b_now", type_=UTCDateTime()))

_FILL_INSERTS: dict[str, Any] = {}
_POSITION_UPSERTS: dict[str, Any] = {}


def _dialect_module(conn: Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


def fleet_daily_usd(conn: Connection, day: str) -> Decimal:
    """The whole fleet's daily P&L in USD for `day`, as stored by each bot's last mark."""
    if conn.dialect.name == "postgresql":
        total = conn.execute(FLEET_DAILY_USD_PG, {"b_day": day}).scalar_one()
        return Decimal(total)
    return sum((v for (v,) in conn.execute(DAILY_USD_ON, {"b_day": day})), Decimal(0))


def insert_fill_once(conn: Connection) -> Any:
    """INSERT a fill unless (bot_id, broker_fill_id) exists; RETURNING id says which."""
    name = conn.dialect.name
    statement = _FILL_INSERTS.get(name)
    if statement is None:
        module = _dialect_module(conn)
        statement = _FILL_INSERTS[name] = (
            module.insert(fills)
            .on_conflict_do_nothing(index_elements=[fills.c.bot_id, fills.c.broker_fill_id])
            .returning(fills.c.id))
    return statement


def upsert_position(conn: Connection) -> Any:
    name = conn.dialect.name
    statement = _POSITION_UPSERTS.get(name)
    if statement is None:
        module = _dialect_module(conn)
        base = module.insert(positions)
        keys = {"bot_id", "instrument"}
        statement = _POSITION_UPSERTS[name] = base.on_conflict_do_update(
            index_elements=[positions.c.bot_id, positions.c.instrument],
            set_={c.name: base.excluded[c.name] for c in positions.c if c.name not in keys})
    return statement
