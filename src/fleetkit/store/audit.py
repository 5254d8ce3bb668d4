"""Reading the audit trail: every halt, denial, fill, mismatch and process event, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, or_, select

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
    """The latest `limit` events, newest first (ties in time by insertion order), optionally
    of one bot and/or of the kinds `kind` names (see `kind_matches`)."""
    query = (select(events, bots.c.name.label("bot_name"))
             .join(bots, bots.c.id == events.c.bot_id, isouter=True)
             .order_by(events.c.created_at.desc(), events.c.id.desc()).limit(limit))
    if bot_id is not None:
        query = query.where(events.c.bot_id == bot_id)
    if kind:
        query = query.where(_kind_clause(kind))
    with read_transaction(engine) as conn:
        rows = conn.execute(query).all()
    return [EventView(r.created_at, r.bot_name, r.kind, r.severity, r.code, r.message, r.actor,
                      dict(r.data or {})) for r in rows]


def kind_matches(kind: str, wanted: str) -> bool:
    """Whether `wanted` names `kind` by whole dotted parts: the kind itself (`order.fill`),
    its leading parts (`order` or `order.`: every order.* kind), or its trailing parts
    (`fill`: order.fill — and fill.* by the leading rule; `denied`: risk.denied)."""
    wanted = wanted.strip().rstrip(".")
    return bool(wanted) and (kind == wanted or kind.startswith(f"{wanted}.")
                             or kind.endswith(f".{wanted}"))


def _kind_clause(wanted: str) -> ColumnElement[bool]:
    wanted = wanted.strip().rstrip(".")
    return or_(events.c.kind == wanted,
               events.c.kind.startswith(f"{wanted}.", autoescape=True),
               events.c.kind.endswith(f".{wanted}", autoescape=True))


def recorded_kinds(engine: Engine) -> list[str]:
    """Every distinct event kind in the audit trail, sorted."""
    with read_transaction(engine) as conn:
        return sorted(conn.execute(select(events.c.kind).distinct()).scalars())
