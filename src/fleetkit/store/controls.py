"""Kill switches in the database: reading both at once, setting one with its audit event,
and halting unless already halted (the first halt's reason is the one kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from fleetkit.core.controls import Control, Controls, HaltSource, TradingState
from fleetkit.sqlutil.upsert import upsert
from fleetkit.store import statements as sql
from fleetkit.store.rows import control_from_row, insert_event
from fleetkit.store.schema import bot_controls, fleet_controls


def read_controls(conn: Connection, bot_id: int) -> Controls:
    fleet, bot = Control(), Control()
    for row in conn.execute(sql.CONTROLS, {"b_bot": bot_id}):
        if row.scope == "fleet":
            fleet = control_from_row(row)
        else:
            bot = control_from_row(row)
    return Controls(fleet, bot)


def write_control(conn: Connection, bot_id: int | None, state: TradingState, reason: str,
                  source: HaltSource, actor: str, now: datetime) -> None:
    """Set the fleet switch (bot_id None) or a bot's switch, with its audit event."""
    values: dict[str, Any] = {"state": state.value, "reason": reason, "source": source.value,
                              "changed_by": actor, "changed_at": now}
    if bot_id is None:
        upsert(conn, fleet_controls, {"id": 1, **values}, key=["id"])
    else:
        upsert(conn, bot_controls, {"bot_id": bot_id, **values}, key=["bot_id"])
    scope = "fleet" if bot_id is None else "bot"
    severity = "info" if state is TradingState.ACTIVE else "critical"
    insert_event(conn, bot_id=bot_id, kind=f"control.{state.value}", severity=severity,
                 code=source.value, actor=actor, now=now,
                 message=f"{scope} {state.value} by {actor} ({source.value}): {reason}",
                 data={"scope": scope, "state": state, "reason": reason, "source": source})


def halt_unless_halted(conn: Connection, bot_id: int, target: int | None, reason: str,
                       source: HaltSource, actor: str, now: datetime) -> bool:
    """Halt `target` (a bot's id, or None for the fleet switch as seen by `bot_id`) unless
    it is halted already (Controls.needs_halt); True if this call halted it."""
    if not read_controls(conn, bot_id).needs_halt(fleet=target is None):
        return False
    write_control(conn, target, TradingState.HALTED, reason, source, actor, now)
    return True


