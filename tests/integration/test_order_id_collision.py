"""A squatted client order id: the victim bot survives it, on SQLite and PostgreSQL.

On SQLite any process that can write the file can put a row holding a bot's next client
order id in the orders table (on PostgreSQL only the owner can; migration 0011 refuses it
from a bot's role, see test_hostile_role.py). The victim's write-ahead must neither crash on
the unique constraint (and so crash-loop at every restart) nor send under a taken id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from fleetkit.core.orders import OrderIntent, OrderStatus, OrderType, Side
from fleetkit.risk.rails import Decision
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.order_ids import CLAIM_ATTEMPTS, ClientOrderIdCollisionError
from fleetkit.store.schema import events, orders, outbox

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BUY = OrderIntent("CRYPTO:BTC/USDT", Side.BUY, Decimal(1), OrderType.MARKET, Decimal(100))


def register(fleet_db: Any, name: str) -> int:
    return FleetStore(fleet_db.engine).register_bot(
        name=name, market="CRYPTO", currency="USDT", strategy="buy_and_hold", mode="sandbox",
        settings={}, now=T0)


def squat_next_ids(fleet_db: Any, squatter: int, victim: int, count: int) -> list[int]:
    """Rows of `squatter` holding the victim's next `count` client order ids; those ids."""
    tag = fleet_db.fleet_tag()
    with write_transaction(fleet_db.engine) as conn:
        ids = []
        for n in range(count):
            row_id = conn.execute(insert(orders).values(
                bot_id=squatter, client_order_id=f"squat-{n}", instrument=BUY.instrument,
                side="buy", order_type="market", quantity=Decimal(1),
                reference_price=Decimal(1), status="rejected", filled_quantity=Decimal(0),
                reason="", created_at=T0, updated_at=T0).returning(orders.c.id)).scalar_one()
            ids.append(row_id)
        # Each squatter row takes an id, so the victim's next rows come right after them.
        future = [ids[-1] + 1 + n for n in range(count)]
        for row_id, victim_id in zip(ids, future, strict=True):
            conn.execute(update(orders).where(orders.c.id == row_id).values(
                client_order_id=f"fk{tag}-{victim}-{victim_id}"))
    return future


def admit(fleet_db: Any, bot_id: int) -> Any:
    ledger = SqlLedger(fleet_db.engine, fleet_db.fleet_tag())
    return ledger.admit(bot_id, BUY, None, Decimal(1), T0, lambda _: Decision.allow())


def test_a_victim_of_a_squatted_client_order_id_sends_under_a_fresh_one_and_says_so(
        fleet_db: Any) -> None:
    victim, squatter = register(fleet_db, "victim"), register(fleet_db, "squatter")
    [taken] = squat_next_ids(fleet_db, squatter, victim, 1)
    order = admit(fleet_db, victim).order
    assert order is not None and order.id == taken + 1
    assert order.client_order_id == f"fk{fleet_db.fleet_tag()}-{victim}-{taken + 1}"
    with fleet_db.engine.connect() as conn:
        placeholder = conn.execute(select(orders).where(orders.c.id == taken)).one()
        event = conn.execute(select(events).where(events.c.kind == "order.id_collision")).one()
        alert = conn.execute(select(outbox).where(outbox.c.kind == "order.id_collision")).one()
    assert placeholder.bot_id == victim and placeholder.status == OrderStatus.REJECTED.value
    assert placeholder.client_order_id.startswith("wa-")  # never sent under any id
    assert "already taken" in placeholder.reason
    assert (event.bot_id, event.severity) == (victim, "critical")
    assert str(taken) in event.message
    assert (alert.bot_id, alert.concern, alert.severity) == (victim, "trading", "critical")
    # The squatter's row is as it was, and the victim's open orders are just the real one.
    ledger = SqlLedger(fleet_db.engine, fleet_db.fleet_tag())
    assert [o.id for o in ledger.open_orders(victim)] == [order.id]


def test_a_victim_gives_up_with_a_clear_error_after_a_few_squatted_ids_in_a_row(
        fleet_db: Any) -> None:
    victim, squatter = register(fleet_db, "victim"), register(fleet_db, "squatter")
    squat_next_ids(fleet_db, squatter, victim, CLAIM_ATTEMPTS)
    with pytest.raises(ClientOrderIdCollisionError, match="already taken"):
        admit(fleet_db, victim)
    ledger = SqlLedger(fleet_db.engine, fleet_db.fleet_tag())
    assert ledger.open_orders(victim) == []  # nothing half-written: the admission rolled back
