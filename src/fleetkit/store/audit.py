"""Reading the audit trail: every halt, denial, fill, mismatch and process event, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.schema import bots, events


@dataclass(frozen=True, slots=True)
class EventView:
    at: datetime
    bot: str | None
    kind: str
    severity: str
    code: str | None
    message: str
    actor: str | None
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "bot": self.bot, "kind": self.kind,
                "severity": self.severity, "code": self.code, "message": self.message,
                "actor": self.actor, "data": self.data}


def recent_events(engine: Engine, *, bot_id: int | None = None, kind: str | None = None,
                  limit: int = 50) -> list[EventView]:
    """The latest `limit` events, optionally of one bot and/or kinds starting with `kind`."""
    query = (select(events, bots.c.name.label("bot_name"))
             .join(bots, bots.c.id == events.c.bot_id, isouter=True)
             .order_by(events.c.id.desc()).limit(limit))
    if bot_id is not None:
        query = query.where(events.c.bot_id == bot_id)
    if kind:
        query = query.where(events.c.kind.startswith(kind))
    with read_transaction(engine) as conn:
        rows = conn.execute(query).all()
    return [EventView(r.created_at, r.bot_name, r.kind, r.severity, r.code, r.message, r.actor,
                      dict(r.data or {})) for r in rows]
