"""The order path's statements, built once with bind parameters.

Building a SQLAlchemy statement costs more CPU than running it on SQLite, and an order
runs about a dozen; built once, each execution only binds values (compiled forms are cached
per engine). Bind names carry a prefix (`b_`, or one per table where statements are run
together, sqlutil.batch) so they never collide with column names or with each other.

On PostgreSQL every statement is a round trip, so the order path's are shaped to need few:
the admission reads everything in one (ADMISSION_READS), the write-ahead row is one INSERT
that derives its client order id from its own id, a fill is inserted and its position read
in one, and the writes that follow go together (sqlutil.batch).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from fleetkit.core.orders import OrderStatus
from fleetkit.sqlutil.types import ExactDecimal, UTCDateTime
from fleetkit.store.schema import (
    bot_controls,
    bot_pnl,
    events,
    fills,
    fleet_controls,
    orders,
    outbox,
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
SET_ORDER_PROGRESS = update(orders).where(orders.c.id == bindparam("b_id")).values(
    filled_quantity=bindparam("b_filled", type_=ExactDecimal()),
    average_fill_price=bindparam("b_average", type_=ExactDecimal()),
    status=bindparam("b_status"), broker_order_id=bindparam("b_broker_id"),
    reason=bindparam("b_reason"), updated_at=bindparam("b_now", type_=UTCDateTime()))


def binds(table: Table, prefix: str, *, skip: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """{column: bindparam `<prefix><column>`} for every column of `table` but `skip`."""
    return {c.name: bindparam(f"{prefix}{c.name}", type_=c.type) for c in table.c
            if c.name not in skip}


def bound(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """`values` keyed by the bind names `binds(..., prefix)` gave their columns."""
    return {f"{prefix}{name}": value for name, value in values.items()}


# An event and its notification, each a plain INSERT: `inline` asks for no RETURNING and no
# id fetched ahead (SQLAlchemy would otherwise spend a round trip on nextval for the
# outbox, whose rows a bot's role may insert but not read back).
INSERT_EVENT = insert(events).values(binds(events, "e_")).inline()
INSERT_ALERT = insert(outbox).values(binds(outbox, "a_", skip=("id", "routed_at"))).inline()


# --- the admission's reads: one statement, one round trip ----------------------------------
#
# Everything the rails judge an order by, read fresh inside the admission transaction: both
# kill switches, the bot's positions (with marks, for today's P&L), its open orders in the
# instrument, its P&L row and the fleet's daily P&L. One UNION ALL of tagged rows, each
# kind filling the columns it needs: kind, t0..t2 (text), n0..n4 (exact decimals).

_TEXTS, _NUMBERS = 3, 5


def _tagged(kind: str, texts: tuple[Any, ...] = (), numbers: tuple[Any, ...] = ()
            ) -> Select[Any]:
    # Typed NULLs: PostgreSQL types a UNION's columns pair by pair from the left, and two
    # bare NULLs make text, which no numeric column matches later.
    texts = (*texts, *(cast(null(), String()),) * (_TEXTS - len(texts)))
    numbers = (*numbers, *(cast(null(), ExactDecimal()),) * (_NUMBERS - len(numbers)))
    columns: list[Any] = [literal_column(f"'{kind}'", String()).label("kind")]
    columns += [type_coerce(t, String()).label(f"t{i}") for i, t in enumerate(texts)]
    columns += [type_coerce(n, ExactDecimal()).label(f"n{i}") for i, n in enumerate(numbers)]
    return select(*columns)


def _admission_reads(fleet_daily: Select[Any]) -> CompoundSelect[Any]:
    bot = bindparam("b_bot", type_=orders.c.bot_id.type)
    return union_all(
        _tagged("fleet", (fleet_controls.c.state, fleet_controls.c.reason,
                          fleet_controls.c.source)).where(fleet_controls.c.id == 1),
        _tagged("bot", (bot_controls.c.state, bot_controls.c.reason, bot_controls.c.source)
                ).where(bot_controls.c.bot_id == bot),
        _tagged("position", (positions.c.instrument,),
                (positions.c.quantity, positions.c.average_price, positions.c.realized_pnl,
                 positions.c.fees, positions.c.mark_price)).where(positions.c.bot_id == bot),
        _tagged("open", (orders.c.side,), (orders.c.quantity, orders.c.filled_quantity)).where(
            orders.c.bot_id == bot, orders.c.instrument == bindparam("b_instrument"),
            orders.c.status.in_(OPEN_STATUSES)),
        _tagged("bot_pnl", (bot_pnl.c.day,),
                (bot_pnl.c.day_start_net, bot_pnl.c.realized, bot_pnl.c.unrealized,
                 bot_pnl.c.fees, bot_pnl.c.daily_usd)).where(bot_pnl.c.bot_id == bot),
        fleet_daily,
    )


_DAY = bindparam("b_day", type_=String())
ADMISSION_READS = {
    # A bot's role sees only its own bot_pnl row: the fleet's total comes from the SECURITY
    # DEFINER function (see FLEET_DAILY_USD_PG).
    "postgresql": _admission_reads(_tagged("fleet_pnl",
                                           numbers=(func.fleet_daily_pnl_usd(_DAY),))),
    # SQLite keeps decimals as text: every bot's row for the day, summed in Python.
    "sqlite": _admission_reads(_tagged("fleet_pnl", numbers=(bot_pnl.c.daily_usd,)
                                       ).where(bot_pnl.c.day == _DAY)),
}


# --- the write-ahead order row: its real client order id in the same INSERT ----------------
#
# The client order id is fk<fleet tag>-<bot id>-<the row's own id>: the INSERT draws the id
# and writes the id derived from it at once, so the id a broker will see is durable before
# the order can possibly be sent, with no placeholder to update afterwards. ON CONFLICT DO
# NOTHING on the client order id: a row someone squatted there is no error (the transaction
# stays usable, no savepoint) but an answer saying "not claimed" (store/order_ids.py).
# Binds: b_cid_prefix ("fk<tag>-<bot>-"), b_<column> for the order's columns, and
# b_signal_id or s_<column> for a signal written in the same statement (PostgreSQL).

_ORDER_VALUES = [c for c in orders.c if c.name not in ("id", "client_order_id", "signal_id")]
_ORDER_COLUMNS = ["id", "client_order_id", *(c.name for c in _ORDER_VALUES), "signal_id"]


def _order_row(next_id: Any, signal_id: Any, *, typed: bool) -> list[Any]:
    """The SELECT list of the write-ahead INSERT. `typed` (PostgreSQL): every value cast to
    its column's type, as a NULL in a SELECT list would otherwise be taken for text. (Not on
    SQLite, where CAST(... AS DATETIME) would turn a timestamp into a number.)"""
    prefix = bindparam("b_cid_prefix", type_=String())
    values: list[Any] = [bindparam(f"b_{c.name}", type_=c.type) for c in _ORDER_VALUES]
    if typed:
        values = [cast(v, c.type) for v, c in zip(values, _ORDER_VALUES, strict=True)]
    return [next_id, prefix + cast(next_id, String()), *values, signal_id]


def _write_ahead_postgresql(with_signal: bool) -> Select[Any]:
    """One row: the id drawn (order_id), the signal's id, and whether the row was claimed.
    The signal (when given) is inserted in the same statement: the order's guard trigger
    (migration 0011) sees it, as rows an outer command wrote earlier are visible to it."""
    next_order = select(func.nextval(func.pg_get_serial_sequence(
        literal_column("'orders'"), literal_column("'id'"))).label("id")).cte("next_order")
    source: Any = next_order
    signal_id: Any = bindparam("b_signal_id", type_=orders.c.signal_id.type)
    if with_signal:
        new_signal = postgresql.insert(signals).values(binds(signals, "s_")).returning(
            signals.c.id).cte("new_signal")
        source = next_order.join(new_signal, true())  # one row each
        signal_id = new_signal.c.id
    claimed = (postgresql.insert(orders)
               .from_select(_ORDER_COLUMNS,
                            select(*_order_row(next_order.c.id, signal_id, typed=True))
                            .select_from(source))
               .on_conflict_do_nothing(index_elements=[orders.c.client_order_id])
               .returning(orders.c.id).cte("claimed"))
    return select(next_order.c.id.label("order_id"), signal_id.label("signal_id"),
                  exists(select(claimed.c.id)).label("claimed")).select_from(source)


def _write_ahead_sqlite() -> Insert:
    """RETURNING the id when claimed, nothing when the client order id was taken. The next
    id is the one SQLite would pick (max + 1): every write here holds the write lock
    (BEGIN IMMEDIATE), so no other writer can take it meanwhile."""
    next_order = select((func.coalesce(func.max(orders.c.id), literal_column("0"))
                         + literal_column("1")).label("id")).subquery("next_order")
    signal_id = bindparam("b_signal_id", type_=orders.c.signal_id.type)
    row = select(*_order_row(next_order.c.id, signal_id, typed=False)).select_from(next_order)
    # WHERE true: SQLite's grammar needs it between INSERT ... SELECT and ON CONFLICT.
    return (sqlite.insert(orders)
            .from_select(_ORDER_COLUMNS, row.where(literal_column("true")))
            .on_conflict_do_nothing(index_elements=[orders.c.client_order_id])
            .returning(orders.c.id))


WRITE_AHEAD_PG = _write_ahead_postgresql(with_signal=False)
WRITE_AHEAD_PG_WITH_SIGNAL = _write_ahead_postgresql(with_signal=True)
WRITE_AHEAD_SQLITE = _write_ahead_sqlite()
# The id WRITE_AHEAD_SQLITE drew when it wrote nothing (the client order id was taken).
NEXT_ORDER_ID_SQLITE = select(func.coalesce(func.max(orders.c.id), literal_column("0"))
                              + literal_column("1"))


# --- a fill and the position it moves --------------------------------------------------------

def _insert_fill_once(module: Any) -> Insert:
    """INSERT a fill unless (bot_id, broker_fill_id) exists; RETURNING id says which."""
    statement: Insert = (
        module.insert(fills).values(binds(fills, "f_"))
        .on_conflict_do_nothing(index_elements=[fills.c.bot_id, fills.c.broker_fill_id])
        .returning(fills.c.id))
    return statement


_POSITION_COLUMNS = [c for c in positions.c if c.name not in ("bot_id", "instrument")]
POSITION_OF_FILL = select(*_POSITION_COLUMNS).where(
    positions.c.bot_id == bindparam("f_bot_id"), positions.c.instrument == bindparam(
        "f_instrument"))
INSERT_FILL_ONCE_SQLITE = _insert_fill_once(sqlite)
# PostgreSQL: the fill inserted (or not: fill_id NULL) and its position as it stands, in
# one statement. The read sees the transaction's earlier writes, not this statement's.
_NEW_FILL = _insert_fill_once(postgresql).cte("new_fill")
_ONE_ROW = select(literal_column("1").label("one")).subquery("one_row")
INSERT_FILL_READ_POSITION_PG = select(
    select(_NEW_FILL.c.id).scalar_subquery().label("fill_id"), *_POSITION_COLUMNS,
).select_from(_ONE_ROW.outerjoin(positions, and_(
    positions.c.bot_id == bindparam("f_bot_id"),
    positions.c.instrument == bindparam("f_instrument"))))


def _upsert_position(module: Any) -> Insert:
    base = module.insert(positions).values(binds(positions, "p_"))
    statement: Insert = base.on_conflict_do_update(
        index_elements=[positions.c.bot_id, positions.c.instrument],
        set_={c.name: base.excluded[c.name] for c in _POSITION_COLUMNS})
    return statement


UPSERT_POSITION = {"postgresql": _upsert_position(postgresql),
                   "sqlite": _upsert_position(sqlite)}


def upsert_position(conn: Connection) -> Insert:
    """INSERT or UPDATE a position; binds p_<column> for every column."""
    return UPSERT_POSITION[conn.dialect.name]


def fleet_daily_usd(conn: Connection, day: str) -> Decimal:
    """The whole fleet's daily P&L in USD for `day`, as stored by each bot's last mark."""
    if conn.dialect.name == "postgresql":
        total = conn.execute(FLEET_DAILY_USD_PG, {"b_day": day}).scalar_one()
        return Decimal(total)
    return sum((v for (v,) in conn.execute(DAILY_USD_ON, {"b_day": day})), Decimal(0))
