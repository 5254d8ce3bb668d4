"""The notification outbox and its deliveries: what the notifier reads and records.

Life of a notification:

    outbox row      inserted with its event (store.rows.insert_event), or by the notifier
                    for reports, monitor alerts and collapse summaries (dedup_key: once)
    route()         expands each unrouted row into one delivery per route that takes its
                    concern and severity, in one transaction with stamping routed_at; a
                    delivery whose collapse_key already went to that route within the window
                    is born `collapsed` (pointing at the one that went)
    due()           pending deliveries whose next attempt is due, oldest first
    sent / retry / dead
                    what one attempt came to; delivered_parts is kept on retry so a resumed
                    send never repeats a part that went out
    collapse summaries
                    once a window has passed, "... — N more times in 10 min" is enqueued for
                    each delivery that had repeats collapsed into it (once: dedup_key)

Only one notifier drains the outbox at a time (a lease in service_leases, see the runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, String, and_, cast, func, literal, select, update

from fleetkit.core.alerts import Severity, severity_of
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import insert_if_absent, upsert
from fleetkit.store.rows import enqueue_notification, jsonable
from fleetkit.store.schema import bots, deliveries, notify_state, outbox

PENDING, SENT, COLLAPSED, DEAD = "pending", "sent", "collapsed", "dead"
_ERROR_CHARS = 2000
_SUMMARY_KEY = "collapsed:"  # + the head delivery's id: its "N more times" summary

RoutesFor = Callable[[str, Severity], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Due:
    """A pending delivery with what it says."""

    id: int
    outbox_id: int
    route: str
    attempts: int
    delivered_parts: int
    kind: str
    concern: str
    severity: Severity
    text: str
    bot: str | None
    created_at: datetime
    attachment: str | None = None  # a PNG file's path (outbox.attachment), sent as a photo


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    route: str
    kind: str
    bot: str | None
    text: str
    attempts: int
    last_error: str
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "route": self.route, "kind": self.kind, "bot": self.bot,
                "text": self.text[:200], "attempts": self.attempts,
                "last_error": self.last_error, "created_at": self.created_at.isoformat(),
                "dead_at": self.updated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class RouteHealth:
    """A route's backlog: what `fleet status` and the dashboard show."""

    route: str
    pending: int
    dead: int
    sent: int
    oldest_pending_at: datetime | None
    last_error: str

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = None if self.oldest_pending_at is None else \
            round((now - self.oldest_pending_at).total_seconds(), 1)
        return {"pending": self.pending, "dead": self.dead, "sent": self.sent,
                "oldest_pending_age_s": age, "last_error": self.last_error or None}


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- enqueueing (the notifier's own messages) -----------------------------------------

    def enqueue(self, *, kind: str, concern: str, severity: Severity, text: str,
                now: datetime, bot_id: int | None = None, collapse_key: str | None = None,
                dedup_key: str | None = None, only_route: str | None = None,
                skip_route: str | None = None, attachment: str | None = None) -> bool:
        """Add a notification; with `dedup_key`, only if none with that key exists (True
        when this call added it). `attachment`: a PNG file's path, sent with the text."""
        with write_transaction(self._engine) as conn:
            return enqueue_notification(
                conn, bot_id=bot_id, kind=kind, concern=concern, severity=severity.label,
                text=text, now=now,
                collapse_key=collapse_key or f"{kind}|{dedup_key or now.isoformat()}",
                dedup_key=dedup_key, only_route=only_route, skip_route=skip_route,
                attachment=attachment)

    # --- routing --------------------------------------------------------------------------

    def route(self, routes_for: RoutesFor, window_s: float, now: datetime,
              limit: int = 500) -> int:
        """Expand up to `limit` unrouted notifications into deliveries; how many were."""
        with write_transaction(self._engine) as conn:
            rows = conn.execute(select(outbox).where(outbox.c.routed_at.is_(None))
                                .order_by(outbox.c.id).limit(limit)).all()
            for row in rows:
                names = [row.only_route] if row.only_route else \
                    [n for n in routes_for(row.concern, severity_of(row.severity))
                     if n != row.skip_route]
                for name in names:
                    self._deliver(conn, row, name, window_s, now)
                conn.execute(update(outbox).where(outbox.c.id == row.id).values(routed_at=now))
        return len(rows)

    @staticmethod
    def _deliver(conn: Connection, row: Any, route: str, window_s: float,
                 now: datetime) -> None:
        head = None
        if window_s > 0:
            head = conn.execute(
                select(deliveries.c.id).where(
                    deliveries.c.route == route,
                    deliveries.c.collapse_key == row.collapse_key,
                    deliveries.c.created_at >= row.created_at - timedelta(seconds=window_s),
                    deliveries.c.created_at <= row.created_at,
                    deliveries.c.status.in_((PENDING, SENT, DEAD)))
                .order_by(deliveries.c.created_at.desc()).limit(1)).scalar()
        insert_if_absent(conn, deliveries, {
            "outbox_id": row.id, "route": route, "status": PENDING if head is None else COLLAPSED,
            "collapse_key": row.collapse_key, "collapsed_into": head, "attempts": 0,
            "delivered_parts": 0, "next_attempt_at": now, "last_error": "",
            "created_at": row.created_at, "updated_at": now}, ["outbox_id", "route"])

    def summarize_collapsed(self, window_s: float, now: datetime, describe: Callable[
            [str, str | None, int, float], str]) -> int:
        """Enqueue "N more times" for each delivery whose window has closed with repeats
        collapsed into it; `describe(text, bot, count, window_s)` words it. How many."""
        if window_s <= 0:
            return 0
        closed = now - timedelta(seconds=window_s)
        heads = deliveries.alias("head")
        summary = outbox.alias("summary")
        # Heads already summed up are skipped in SQL, not tried against the dedup_key again
        # on every pass of the notifier.
        summarized = select(summary.c.id).where(
            summary.c.dedup_key == literal(_SUMMARY_KEY, String) + cast(heads.c.id, String)
        ).exists()
        with write_transaction(self._engine) as conn:
            rows = conn.execute(
                select(heads.c.id, heads.c.route, outbox.c.kind, outbox.c.concern,
                       outbox.c.severity, outbox.c.text, outbox.c.bot_id, bots.c.name,
                       func.count(deliveries.c.id).label("repeats"))
                .join(deliveries, deliveries.c.collapsed_into == heads.c.id)
                .join(outbox, outbox.c.id == heads.c.outbox_id)
                .outerjoin(bots, bots.c.id == outbox.c.bot_id)
                .where(heads.c.created_at <= closed,
                       heads.c.created_at >= closed - timedelta(days=2), ~summarized)
                .group_by(heads.c.id, heads.c.route, outbox.c.kind, outbox.c.concern,
                          outbox.c.severity, outbox.c.text, outbox.c.bot_id, bots.c.name)
            ).all()
            added = 0
            for row in rows:
                added += enqueue_notification(
                    conn, kind=f"{row.kind}.repeated", concern=row.concern,
                    severity=row.severity, bot_id=row.bot_id,
                    text=describe(row.text, row.name, row.repeats, window_s), now=now,
                    dedup_key=f"{_SUMMARY_KEY}{row.id}", collapse_key=f"{_SUMMARY_KEY}{row.id}",
                    only_route=row.route)
        return added

    # --- delivering -----------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 200) -> list[Due]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.outbox_id, deliveries.c.route,
                       deliveries.c.attempts, deliveries.c.delivered_parts, outbox.c.kind,
                       outbox.c.concern, outbox.c.severity, outbox.c.text,
                       bots.c.name.label("bot"), outbox.c.created_at, outbox.c.attachment)
                .join(outbox, outbox.c.id == deliveries.c.outbox_id)
                .outerjoin(bots, bots.c.id == outbox.c.bot_id)
                .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
                .order_by(deliveries.c.id).limit(limit)).all()
        return [Due(r.id, r.outbox_id, r.route, r.attempts, r.delivered_parts, r.kind,
                    r.concern, severity_of(r.severity), r.text, r.bot, r.created_at,
                    r.attachment)
                for r in rows]

    def sent(self, delivery_id: int, parts: int, now: datetime) -> None:
        self._set(delivery_id, status=SENT, delivered_parts=parts, sent_at=now,
                  updated_at=now, attempts=deliveries.c.attempts + 1)

    def retry(self, delivery_id: int, delivered_parts: int, error: str, at: datetime,
              now: datetime) -> None:
        self._set(delivery_id, delivered_parts=delivered_parts, next_attempt_at=at,
                  last_error=error[:_ERROR_CHARS], updated_at=now,
                  attempts=deliveries.c.attempts + 1)

    def postpone(self, delivery_id: int, error: str, at: datetime, now: datetime) -> None:
        """Not an attempt (the route cannot send at all yet): look again at `at`."""
        self._set(delivery_id, next_attempt_at=at, last_error=error[:_ERROR_CHARS],
                  updated_at=now)

    def dead(self, delivery_id: int, delivered_parts: int, error: str, now: datetime) -> None:
        self._set(delivery_id, status=DEAD, delivered_parts=delivered_parts,
                  last_error=error[:_ERROR_CHARS], updated_at=now,
                  attempts=deliveries.c.attempts + 1)

    def _set(self, delivery_id: int, **values: Any) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))

    def requeue_dead(self, now: datetime, route: str | None = None,
                     ids: Sequence[int] = ()) -> int:
        """Give dead letters another round of attempts (`fleet notify retry`)."""
        condition = deliveries.c.status == DEAD
        if route is not None:
            condition = and_(condition, deliveries.c.route == route)
        if ids:
            condition = and_(condition, deliveries.c.id.in_(list(ids)))
        with write_transaction(self._engine) as conn:
            count = conn.execute(select(func.count()).select_from(deliveries)
                                 .where(condition)).scalar_one()
            conn.execute(update(deliveries).where(condition).values(
                status=PENDING, attempts=0, next_attempt_at=now, updated_at=now))
        return int(count)

    # --- reading --------------------------------------------------------------------------

    def dead_letters(self, limit: int = 20) -> list[DeadLetter]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.route, outbox.c.kind,
                       bots.c.name.label("bot"), outbox.c.text, deliveries.c.attempts,
                       deliveries.c.last_error, outbox.c.created_at, deliveries.c.updated_at)
                .join(outbox, outbox.c.id == deliveries.c.outbox_id)
                .outerjoin(bots, bots.c.id == outbox.c.bot_id)
                .where(deliveries.c.status == DEAD)
                .order_by(deliveries.c.updated_at.desc()).limit(limit)).all()
        return [DeadLetter(r.id, r.route, r.kind, r.bot, r.text, r.attempts, r.last_error,
                           r.created_at, r.updated_at) for r in rows]

    def health(self) -> list[RouteHealth]:
        with read_transaction(self._engine) as conn:
            counts = conn.execute(
                select(deliveries.c.route, deliveries.c.status, func.count(),
                       func.min(deliveries.c.created_at))
                .group_by(deliveries.c.route, deliveries.c.status)).all()
            errors = dict(conn.execute(
                select(deliveries.c.route, func.max(deliveries.c.last_error))
                .where(deliveries.c.status.in_((PENDING, DEAD)), deliveries.c.last_error != "")
                .group_by(deliveries.c.route)).all())
        by_route: dict[str, dict[str, tuple[int, datetime | None]]] = {}
        for route, status, count, oldest in counts:
            by_route.setdefault(route, {})[status] = (int(count), oldest)
        return [RouteHealth(route, s.get(PENDING, (0, None))[0], s.get(DEAD, (0, None))[0],
                            s.get(SENT, (0, None))[0], s.get(PENDING, (0, None))[1],
                            str(errors.get(route) or ""))
                for route, s in sorted(by_route.items())]

    def unrouted(self) -> int:
        with read_transaction(self._engine) as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)
                                    .where(outbox.c.routed_at.is_(None))).scalar_one())


class NotifyState:
    """Small JSON values by key: the notifier's and monitors' memory between runs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, key: str) -> Any:
        with read_transaction(self._engine) as conn:
            return conn.execute(select(notify_state.c.value)
                                .where(notify_state.c.key == key)).scalar()

    def put(self, key: str, value: Any, now: datetime) -> None:
        with write_transaction(self._engine) as conn:
            self.put_on(conn, key, value, now)

    @staticmethod
    def put_on(conn: Connection, key: str, value: Any, now: datetime) -> None:
        upsert(conn, notify_state, {"key": key, "value": jsonable(value), "updated_at": now},
               ["key"])

    def prefixed(self, prefix: str) -> dict[str, Any]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(select(notify_state.c.key, notify_state.c.value)
                                .where(notify_state.c.key.startswith(prefix))).all()
        return {r.key: r.value for r in rows}
