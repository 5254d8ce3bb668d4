"""Market-data alerts in the fleet database: a `data.gap` event (warning, the data concern)
and its notification, once per gap.

"Once" is kept by the database, not by the recorder (law 1): the notification's dedup_key
names the gap (instrument and first missing minute), and the event is written only by the
transaction whose notification got in. A gap that grows pass after pass, a restarted
recorder that sees it again, or two recorders at once, still make one event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from fleetkit.core.alerts import Concern
from fleetkit.core.bar_gaps import Gap
from fleetkit.core.numbers import require_utc
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.rows import collapse_key, enqueue_notification, jsonable
from fleetkit.store.statements import INSERT_EVENT, bound

GAP_KIND = "data.gap"
MISSED_KIND = "data.missed_minutes"
GAP_SEVERITY = "warning"
ACTOR = "fleet-data"


def gap_dedup_key(instrument: str, gap: Gap) -> str:
    """Which gap this is: its instrument and first missing minute (the end moves while the
    venue stays silent; the start does not)."""
    return f"{GAP_KIND}|{instrument}|{gap.start:%Y-%m-%dT%H:%MZ}"[:128]


def gap_message(instrument: str, gap: Gap, source: str) -> str:
    return (f"{instrument}: {gap.minutes} minute{'' if gap.minutes == 1 else 's'} of bars "
            f"missing from {gap.start:%Y-%m-%d %H:%M} UTC ({source} served none) — "
            f"`fleet data backfill {instrument} --from {gap.start:%Y-%m-%d}` refetches what "
            "the venue can still serve")


class GapAlertStore:
    """The data.ports.GapAlerts port on the fleet database (the events and outbox tables
    live on its trading branch, wherever the bars are)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def gap_found(self, instrument: str, gap: Gap, source: str, now: datetime) -> bool:
        return _record_once(self._engine, GAP_KIND, instrument,
                            gap_message(instrument, gap, source),
                            gap_dedup_key(instrument, gap),
                            {"instrument": instrument, "source": source, "start": gap.start,
                             "end": gap.end, "minutes": gap.minutes}, now)


class MissedMinuteAlerts:
    """The same port for the options collector: minutes of chain snapshots it did not take
    in their minute (down, restarted, the venue silent) are a `data.missed_minutes` event,
    once per run of minutes, whether or not a fill from the venue recovered them later."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def gap_found(self, instrument: str, gap: Gap, source: str, now: datetime) -> bool:
        plural = "" if gap.minutes == 1 else "s"
        message = (f"{instrument}: {gap.minutes} minute{plural} of option chains not taken "
                   f"in time from {gap.start:%Y-%m-%d %H:%M} UTC ({source}) — `fleet data "
                   "status` shows which were filled from the venue afterwards")
        return _record_once(self._engine, MISSED_KIND, instrument, message,
                            f"{MISSED_KIND}|{instrument}|{gap.start:%Y-%m-%dT%H:%MZ}"[:128],
                            {"collector": instrument, "source": source, "start": gap.start,
                             "end": gap.end, "minutes": gap.minutes}, now)


def _record_once(engine: Engine, kind: str, code: str, message: str, dedup_key: str,
                 data: dict[str, object], now: datetime) -> bool:
    now = require_utc(now, what="now")
    with write_transaction(engine) as conn:
        # The code (instrument, collector) in the collapse key: a flaky venue's gaps in one
        # instrument collapse into one message per collapse window; each is its own event.
        added = enqueue_notification(
            conn, bot_id=None, kind=kind, concern=Concern.DATA.value,
            severity=GAP_SEVERITY, text=message, now=now,
            collapse_key=collapse_key(kind, None, GAP_SEVERITY, code, message),
            dedup_key=dedup_key)
        if added:
            conn.execute(INSERT_EVENT, bound("e_", {
                "bot_id": None, "kind": kind, "severity": GAP_SEVERITY, "code": code[:64],
                "message": message, "actor": ACTOR, "created_at": now,
                "data": jsonable(data)}))
    return added
