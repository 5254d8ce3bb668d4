"""Funding settlements into the ledger: each of the venue's payments recorded once (by its
payment id) and added to its position's realized P&L, with the paging cursor, in the
caller's transaction — so a crash leaves either the payment, its P&L and the cursor, or
none of them, and a repeated page changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, insert, select, update

from fleetkit.core.numbers import ZERO
from fleetkit.engine.ports import FundingEntry
from fleetkit.sqlutil.upsert import dialect_insert
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import bot_state, funding_payments, positions


def apply_funding_entries(conn: Connection, bot_id: int, entries: Sequence[FundingEntry],
                          cursor: str | None, now: datetime) -> int:
    """Record and apply the entries not seen before; how many were new."""
    applied = 0
    for entry in entries:
        inserted = conn.execute(
            dialect_insert(conn, funding_payments).values(
                bot_id=bot_id, payment_id=entry.payment_id, instrument=entry.instrument,
                at=entry.at, rate=entry.rate, quantity=entry.quantity, mark=entry.mark,
                amount=entry.amount, created_at=now)
            .on_conflict_do_nothing(index_elements=["bot_id", "payment_id"])
            .returning(funding_payments.c.payment_id)).first()
        if inserted is None:  # a payment applied before: a page read again
            continue
        applied += 1
        _add_to_realized(conn, bot_id, entry, now)
        verb = "received" if entry.amount >= ZERO else "paid"
        insert_event(conn, bot_id=bot_id, kind="funding.settled", now=now,
                     message=f"funding {verb} on {entry.quantity} {entry.instrument}: "
                             f"{abs(entry.amount)} at rate {entry.rate}",
                     data={"payment_id": entry.payment_id, "instrument": entry.instrument,
                           "rate": entry.rate, "quantity": entry.quantity,
                           "mark": entry.mark, "amount": entry.amount})
    _store_funding_cursor(conn, bot_id, cursor, now)
    return applied


def funding_cursor(conn: Connection, bot_id: int) -> str | None:
    cursor: str | None = conn.execute(
        select(bot_state.c.funding_cursor).where(bot_state.c.bot_id == bot_id)
    ).scalar_one_or_none()
    return cursor


def funding_totals(conn: Connection, bot_id: int) -> dict[str, Decimal]:
    """Funding received (negative: paid) per instrument, over the bot's life."""
    totals: dict[str, Decimal] = {}
    for instrument, amount in conn.execute(
            select(funding_payments.c.instrument, funding_payments.c.amount)
            .where(funding_payments.c.bot_id == bot_id)):
        totals[instrument] = totals.get(instrument, ZERO) + amount
    return totals


def _add_to_realized(conn: Connection, bot_id: int, entry: FundingEntry, now: datetime) -> None:
    # Funding is cash the position earned or cost: realized P&L, as exchanges book it, so
    # every P&L figure, breaker and cash reconciliation counts it with no change of theirs.
    moved = conn.execute(
        update(positions)
        .where(positions.c.bot_id == bot_id, positions.c.instrument == entry.instrument)
        .values(realized_pnl=positions.c.realized_pnl + entry.amount, updated_at=now)).rowcount
    if moved == 0:  # paid on a position this ledger never held: reconciliation will say so
        conn.execute(insert(positions).values(
            bot_id=bot_id, instrument=entry.instrument, quantity=ZERO, average_price=ZERO,
            realized_pnl=entry.amount, fees=ZERO, mark_price=None, mark_ts=None,
            updated_at=now))


def _store_funding_cursor(conn: Connection, bot_id: int, cursor: str | None,
                          now: datetime) -> None:
    if cursor is None:
        return
    moved = conn.execute(update(bot_state).where(bot_state.c.bot_id == bot_id)
                         .values(funding_cursor=cursor, updated_at=now)).rowcount
    if moved == 0:
        conn.execute(insert(bot_state).values(bot_id=bot_id, state={}, fills_cursor=None,
                                              funding_cursor=cursor, updated_at=now))
