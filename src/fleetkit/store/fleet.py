"""Fleet-wide records: the bot registry, single-instance leases, heartbeats, and the
operator's kill switch (the same audited path for CLI, dashboard and chat commands)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from fleetkit.core.controls import Control, HaltSource, TradingState
from fleetkit.core.errors import UnknownBotError
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import upsert
from fleetkit.store.controls import read_controls, write_control
from fleetkit.store.schema import bots, heartbeats, instruments

# Halts lifted from the CLI only, once `fleet reconcile` shows ledger and broker agree.
HELD_FOR_RECONCILIATION = frozenset({HaltSource.RECONCILIATION, HaltSource.BROKER_REPLY})


@dataclass(frozen=True, slots=True)
class BotRecord:
    id: int
    name: str
    market: str
    currency: str
    strategy: str
    mode: str
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    component: str
    kind: str
    bot_id: int | None
    status: str
    detail: str
    pid: int | None
    host: str
    started_at: datetime
    beat_at: datetime
    cycles: int
    cycle_lag_ms: int | None = None


class FleetStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- registry ---------------------------------------------------------------------

    def register_bot(self, *, name: str, market: str, currency: str, strategy: str, mode: str,
                     settings: dict[str, Any], now: datetime) -> int:
        """Create the bot's row or refresh its description; returns its id."""
        with write_transaction(self._engine) as conn:
            row_id = conn.execute(select(bots.c.id).where(bots.c.name == name)).scalar()
            values = {"market": market, "currency": currency, "strategy": strategy, "mode": mode,
                      "settings": settings, "updated_at": now}
            if row_id is None:
                bot_id: int = conn.execute(insert(bots).values(
                    name=name, created_at=now, **values).returning(bots.c.id)).scalar_one()
                return bot_id
            conn.execute(update(bots).where(bots.c.id == row_id).values(**values))
            return int(row_id)

    def register_instruments(self, rows: list[dict[str, Any]]) -> None:
        with write_transaction(self._engine) as conn:
            for row in rows:
                upsert(conn, instruments, row, key=["key"])

    def bots(self) -> list[BotRecord]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(bots).order_by(bots.c.name)).all()
        return [_bot(row._mapping) for row in rows]

    def bot(self, name: str) -> BotRecord:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(bots).where(bots.c.name == name)).first()
        if row is None:
            names = [b.name for b in self.bots()]
            known = ", ".join(names[:10]) or "none yet"
            if len(names) > 10:
                known += f", … and {len(names) - 10} more"
            raise UnknownBotError(f"no bot named {name!r} in this database (known: {known}); "
                                  "check the name with `fleet status`")
        return _bot(row._mapping)

    # --- leases: one running instance per bot, across hosts -----------------------------

    def acquire_lease(self, bot_id: int, owner: str, ttl_s: float, now: datetime) -> bool:
        """Take or renew the bot's lease; False if another live instance holds it."""
        with write_transaction(self._engine) as conn:
            result = conn.execute(update(bots).where(
                bots.c.id == bot_id,
                or_(bots.c.lease_owner.is_(None), bots.c.lease_owner == owner,
                    bots.c.lease_expires_at < now),
            ).values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=ttl_s)))
            return result.rowcount == 1

    def force_lease(self, bot_id: int, stale_owner: str, owner: str, ttl_s: float,
                    now: datetime) -> bool:
        """Take over a lease whose holder is known to be dead (compare-and-set on owner)."""
        with write_transaction(self._engine) as conn:
            result = conn.execute(update(bots).where(
                bots.c.id == bot_id, bots.c.lease_owner == stale_owner,
            ).values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=ttl_s)))
            return result.rowcount == 1

    def lease_holder(self, bot_id: int) -> tuple[str | None, datetime | None]:
        with read_transaction(self._engine) as conn:
            row = conn.execute(select(bots.c.lease_owner, bots.c.lease_expires_at)
                               .where(bots.c.id == bot_id)).one()
        return row[0], row[1]

    def release_lease(self, bot_id: int, owner: str) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(update(bots).where(and_(bots.c.id == bot_id, bots.c.lease_owner == owner))
                         .values(lease_owner=None, lease_expires_at=None))

    # --- heartbeats -------------------------------------------------------------------

    def beat(self, beat: Heartbeat) -> None:
        with write_transaction(self._engine) as conn:
            upsert(conn, heartbeats, {
                "component": beat.component, "kind": beat.kind, "bot_id": beat.bot_id,
                "status": beat.status, "detail": beat.detail, "pid": beat.pid,
                "host": beat.host, "started_at": beat.started_at, "beat_at": beat.beat_at,
                "cycles": beat.cycles, "cycle_lag_ms": beat.cycle_lag_ms}, key=["component"])

    def heartbeats(self) -> list[Heartbeat]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(heartbeats)).all()
        return [Heartbeat(**row._mapping) for row in rows]

    # --- the kill switch ----------------------------------------------------------------

    @staticmethod
    def reconciliation_hold_note(bot_name: str) -> str:
        """Why a resume from anywhere but the CLI is refused (see held_by_reconciliation)."""
        return (f"bot {bot_name} was halted because its ledger and broker disagree: resume "
                f"it from the CLI after `fleet reconcile {bot_name}`")

    def held_by_reconciliation(self, bot_name: str) -> bool:
        """Whether the bot is halted because its ledger and broker disagreed, or its broker
        reported a fill the ledger refused: such a halt is lifted from the CLI only, after
        `fleet reconcile` (Telegram and the dashboard refuse to resume it)."""
        bot_id = self.bot(bot_name).id
        with read_transaction(self._engine) as conn:
            return read_controls(conn, bot_id).bot.source in HELD_FOR_RECONCILIATION

    def set_state(self, bot_name: str | None, state: TradingState, reason: str, actor: str,
                  now: datetime) -> Control:
        """Halt, reduce-only or resume one bot (by name) or, with None, the whole fleet.

        Returns the control as it was. Resuming something that is not halted changes (and
        audits) nothing.
        """
        bot_id = None if bot_name is None else self.bot(bot_name).id
        with write_transaction(self._engine) as conn:
            controls = read_controls(conn, bot_id if bot_id is not None else -1)
            previous = controls.fleet if bot_id is None else controls.bot
            if state is TradingState.ACTIVE and previous.state is TradingState.ACTIVE:
                return previous
            write_control(conn, bot_id, state, reason, HaltSource.OPERATOR, actor, now)
            return previous


def _bot(m: Any) -> BotRecord:
    return BotRecord(m["id"], m["name"], m["market"], m["currency"], m["strategy"], m["mode"],
                     dict(m["settings"] or {}))
