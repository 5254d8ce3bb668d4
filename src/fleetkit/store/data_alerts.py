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
        now = require_utc(now, what="now")
        message = gap_message(instrument, gap, source)
        with write_transaction(self._engine) as conn:
            # The instrument as the code: a flaky venue's gaps in one instrument collapse
            # into one message per collapse window; each is still its own event.
            added = enqueue_notification(
                conn, bot_id=None, kind=GAP_KIND, concern=Concern.DATA.value,
                severity=GAP_SEVERITY, text=message, now=now,
                collapse_key=collapse_key(GAP_KIND, None, GAP_SEVERITY, instrument, message),
                dedup_key=gap_dedup_key(instrument, gap))
            if added:
                conn.execute(INSERT_EVENT, bound("e_", {
                    "bot_id": None, "kind": GAP_KIND, "severity": GAP_SEVERITY,
                    "code": instrument[:64], "message": message, "actor": ACTOR,
                    "created_at": now,
                    "data": jsonable({"instrument": instrument, "source": source,
                                      "start": gap.start, "end": gap.end,
                                      "minutes": gap.minutes})}))
        return added
