"""The dashboard's narrow, read-only window on the fleet database.

Every number a page shows comes from one of these methods, aggregated in SQL (counts, sums,
the last P&L snapshot per time bucket), so a page costs a handful of small queries however
many fills the fleet has made. Nothing here writes: on PostgreSQL the dashboard connects as
the read-only reader role (docs/isolation.md); the controls page writes through
FleetStore.set_state, the CLI's audited path, and nothing else does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, Integer, and_, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from fleetkit.dashboard.series import Curve, CurvePoint, fleet_curve
from fleetkit.runtime.monitoring import STATE_PREFIX as MONITOR_PREFIX
from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.audit import EventView
from fleetkit.store.jobs import JobRun, JobStore
from fleetkit.store.outbox import DeadLetter, NotifyState, Outbox, RouteHealth
from fleetkit.store.schema import bot_pnl, bots, events, fills, heartbeats, orders, pnl_snapshots
from fleetkit.store.status import FleetView, fleet_view

HALT_KINDS = ("control.halted", "control.reducing", "control.active")
HISTORY_LIMIT = 500
RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """What the orders and trades tables are narrowed to; None means any."""

    bot: str | None = None
    instrument: str | None = None
    side: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = HISTORY_LIMIT


@dataclass(frozen=True, slots=True)
class TradeRow:
    ts: datetime
    bot: str
    instrument: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    broker_fill_id: str


@dataclass(frozen=True, slots=True)
class OrderRow:
    created_at: datetime
    bot: str
    instrument: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    status: str
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class History(Generic[RowT]):
    """The newest `rows` (at most the filter's limit) and the totals over every match:
    how many, and their traded value in USD (at each bot's current FX rate)."""

    rows: tuple[RowT, ...]
    total: int
    notional_usd: float


@dataclass(frozen=True, slots=True)
class DenialCount:
    bucket: datetime
    rule: str
    count: int


@dataclass(frozen=True, slots=True)
class HeartbeatRow:
    component: str
    kind: str
    status: str
    detail: str
    host: str
    pid: int | None
    started_at: datetime
    beat_at: datetime
    age_s: float
    cycles: int


@dataclass(frozen=True, slots=True)
class MonitorFinding:
    key: str
    monitor: str
    severity: str
    alerting: bool
    message: str
    since: str | None
    checked_at: str | None


@dataclass(frozen=True, slots=True)
class Health:
    heartbeats: tuple[HeartbeatRow, ...]
    restarts: tuple[EventView, ...]
    restart_counts: dict[str, int]
    findings: tuple[MonitorFinding, ...]
    routes: tuple[RouteHealth, ...]
    dead_letters: tuple[DeadLetter, ...]
    job_runs: tuple[JobRun, ...]


class DashboardQueries:
    """Read-only queries behind every page. `clock` gives "now" (tests pin it)."""

    def __init__(self, engine: Engine, stale_after_s: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._stale_after_s = stale_after_s
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    def overview(self) -> FleetView:
        """Every bot's state, heartbeat, positions and today's P&L (`fleet status`'s view)."""
        return fleet_view(self._engine, self.now(), self._stale_after_s)

    def bot_names(self) -> list[str]:
        with read_transaction(self._engine) as conn:
            return list(conn.execute(select(bots.c.name).order_by(bots.c.name)).scalars())

    def instruments(self) -> list[str]:
        """Every instrument a bot has held or ordered (for the history filters)."""
        with read_transaction(self._engine) as conn:
            return sorted(conn.execute(select(orders.c.instrument).distinct()).scalars())

    def pnl_curves(self, start: datetime, end: datetime, points: int = 400, *,
                   daily: bool = False) -> dict[str, Curve]:
        """Each bot's net P&L (realized + unrealized - fees, its own currency, and in USD) at
        the end of each of about `points` equal buckets of [start, end), plus "" for the
        fleet in USD. A bucket with no snapshot carries the bot's last value forward.

        `daily`: the P&L since the snapshot's UTC day began instead (the end-of-day chart)."""
        width_s = max(1, int((end - start).total_seconds() // max(1, points)))
        with read_transaction(self._engine) as conn:
            bucket = _epoch_bucket(conn.dialect.name, pnl_snapshots.c.ts, width_s)
            last = (select(pnl_snapshots.c.bot_id, bucket.label("bucket"),
                           func.max(pnl_snapshots.c.id).label("id"))
                    .where(pnl_snapshots.c.ts >= start, pnl_snapshots.c.ts < end)
                    .group_by(pnl_snapshots.c.bot_id, bucket).subquery())
            # Each snapshot at the rate of its own mark (older snapshots: the bot's last).
            rate = func.coalesce(pnl_snapshots.c.usd_per_unit, _USD_RATE)
            rows = conn.execute(
                select(bots.c.name, last.c.bucket, pnl_snapshots.c.realized,
                       pnl_snapshots.c.unrealized, pnl_snapshots.c.fees, pnl_snapshots.c.daily,
                       rate)
                .join(pnl_snapshots, pnl_snapshots.c.id == last.c.id)
                .join(bots, bots.c.id == pnl_snapshots.c.bot_id)
                .outerjoin(bot_pnl, bot_pnl.c.bot_id == bots.c.id)
                .order_by(bots.c.name, last.c.bucket)).all()
        curves: dict[str, list[CurvePoint]] = {}
        for name, index, realized, unrealized, fees, day_pnl, usd_per_unit in rows:
            at = datetime.fromtimestamp(int(index) * width_s, UTC)
            net = float(day_pnl if daily else realized + unrealized - fees)
            curves.setdefault(name, []).append(CurvePoint(at, net, net * float(usd_per_unit)))
        result = {name: Curve(tuple(points_)) for name, points_ in curves.items()}
        if result:
            result[""] = fleet_curve(result)
        return result

    def open_positions(self) -> list[dict[str, Any]]:
        """Open positions with unrealized P&L at the last mark, in the bot's currency and
        USD, largest exposure first."""
        view = self.overview()
        with read_transaction(self._engine) as conn:
            rates = _usd_rates(conn)
        rows = [{"bot": b.name, "market": b.market, "instrument": p.instrument,
                 "quantity": p.quantity, "average_price": p.average_price,
                 "mark_price": p.mark_price, "currency": b.currency,
                 "unrealized": p.unrealized,
                 "unrealized_usd": float(p.unrealized) * rates.get(b.name, 1.0),
                 "exposure_usd": float(abs(p.quantity) * (p.mark_price or p.average_price))
                 * rates.get(b.name, 1.0)}
                for b in view.bots for p in b.positions]
        return sorted(rows, key=lambda r: -float(r["exposure_usd"]))

    def trades(self, where: TradeFilter) -> History[TradeRow]:
        rows, total, value = self._history(
            fills, fills.c.ts, where, fills.c.quantity * fills.c.price,
            (fills.c.ts, bots.c.name, fills.c.instrument, fills.c.side, fills.c.quantity,
             fills.c.price, fills.c.fee, fills.c.broker_fill_id))
        return History(tuple(TradeRow(*r) for r in rows), total, value)

    def orders(self, where: TradeFilter, status: str | None = None) -> History[OrderRow]:
        rows, total, value = self._history(
            orders, orders.c.created_at, where,
            orders.c.filled_quantity * func.coalesce(orders.c.average_fill_price, 0),
            (orders.c.created_at, bots.c.name, orders.c.instrument, orders.c.side,
             orders.c.order_type, orders.c.quantity, orders.c.limit_price, orders.c.status,
             orders.c.filled_quantity, orders.c.average_fill_price, orders.c.client_order_id,
             orders.c.reason),
            *([orders.c.status == status] if status else []))
        return History(tuple(OrderRow(*r) for r in rows), total, value)

    def _history(self, table: Any, ts: Any, where: TradeFilter, value: Any,
                 columns: Sequence[Any], *extra: ColumnElement[bool]
                 ) -> tuple[Sequence[Any], int, float]:
        """The newest `where.limit` rows of `table` matching `where` (and `extra`), how many
        match in all, and the USD sum of `value` (quote-currency amounts) over them."""
        conditions = [*_conditions(ts, table.c.instrument, table.c.side, where), *extra]
        base = table.join(bots, bots.c.id == table.c.bot_id)
        with read_transaction(self._engine) as conn:
            total, usd = conn.execute(
                select(func.count(), func.sum(value * _USD_RATE))
                .select_from(base.outerjoin(bot_pnl, bot_pnl.c.bot_id == bots.c.id))
                .where(and_(True, *conditions))).one()
            rows = conn.execute(select(*columns).select_from(base).where(*conditions)
                                .order_by(ts.desc(), table.c.id.desc())
                                .limit(where.limit)).all()
        return rows, int(total), float(usd or 0)

    def denials(self, start: datetime, end: datetime, bucket_s: int,
                bot: str | None = None) -> list[DenialCount]:
        """Risk denials per rule per time bucket (the rule is the event's code)."""
        with read_transaction(self._engine) as conn:
            bucket = _epoch_bucket(conn.dialect.name, events.c.created_at, bucket_s)
            query = (select(bucket.label("bucket"), events.c.code, func.count())
                     .select_from(events.outerjoin(bots, bots.c.id == events.c.bot_id))
                     .where(events.c.kind == "risk.denied", events.c.created_at >= start,
                            events.c.created_at < end, *([bots.c.name == bot] if bot else []))
                     .group_by(bucket, events.c.code).order_by(bucket))
            rows = conn.execute(query).all()
        return [DenialCount(datetime.fromtimestamp(int(b) * bucket_s, UTC), code or "unknown",
                            int(n)) for b, code, n in rows]

    def halts(self, start: datetime, end: datetime, limit: int = 200) -> list[EventView]:
        """Halts, reduce-only switches and resumes (circuit breakers, reconciliation,
        operators), newest first."""
        return self._events(events.c.kind.in_(HALT_KINDS), start, end, limit)

    def health(self, window: timedelta) -> Health:
        """Heartbeats, monitor findings, routes, dead letters and jobs now; restarts within
        the last `window`."""
        now = self.now()
        since = now - window
        with read_transaction(self._engine) as conn:
            beats = conn.execute(select(heartbeats).order_by(heartbeats.c.kind,
                                                             heartbeats.c.component)).all()
        restarts = self._events(events.c.kind == "process.exited", since, now, 100)
        counts: dict[str, int] = {}
        for event in restarts:
            name = str(event.data.get("process") or "unknown")
            counts[name] = counts.get(name, 0) + 1
        findings = tuple(_finding(key, value) for key, value in
                         sorted(NotifyState(self._engine).prefixed(MONITOR_PREFIX).items())
                         if isinstance(value, dict))
        outbox = Outbox(self._engine)
        jobs = JobStore(self._engine)
        return Health(
            heartbeats=tuple(HeartbeatRow(b.component, b.kind, b.status, b.detail, b.host,
                                          b.pid, b.started_at, b.beat_at,
                                          (now - b.beat_at).total_seconds(), int(b.cycles))
                             for b in beats),
            restarts=tuple(restarts), restart_counts=counts, findings=findings,
            routes=tuple(outbox.health()), dead_letters=tuple(outbox.dead_letters(50)),
            job_runs=tuple(sorted(jobs.last_runs().values(), key=lambda r: r.job)))

    def _events(self, condition: ColumnElement[bool], start: datetime, end: datetime,
                limit: int) -> list[EventView]:
        with read_transaction(self._engine) as conn:
            rows = conn.execute(
                select(events.c.created_at, bots.c.name, events.c.kind, events.c.severity,
                       events.c.code, events.c.message, events.c.actor, events.c.data)
                .select_from(events.outerjoin(bots, bots.c.id == events.c.bot_id))
                .where(condition, events.c.created_at >= start, events.c.created_at < end)
                .order_by(events.c.created_at.desc(), events.c.id.desc()).limit(limit)).all()
        return [EventView(*r[:7], dict(r[7] or {})) for r in rows]


def _usd_rates(conn: Connection) -> dict[str, float]:
    """Each bot's quote currency in USD, at its last mark (bots not marked yet are absent)."""
    return {name: float(rate) for name, rate in conn.execute(
        select(bots.c.name, bot_pnl.c.usd_per_unit)
        .join(bot_pnl, bot_pnl.c.bot_id == bots.c.id))}


# A bot's quote currency in USD: its last mark's rate (1 before its first mark).
_USD_RATE = func.coalesce(bot_pnl.c.usd_per_unit, 1)


def _epoch_bucket(dialect: str, column: Any, width_s: int) -> ColumnElement[Any]:
    """The index of the `width_s`-second bucket a timestamp falls in, computed by the
    database (timestamptz on PostgreSQL, ISO text on SQLite)."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer) / literal(width_s)
    return cast(func.floor(func.extract("epoch", column) / literal(width_s)), Integer)


def _conditions(ts: Any, instrument: Any, side: Any, where: TradeFilter
                ) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if where.bot:
        found.append(bots.c.name == where.bot)
    if where.instrument:
        found.append(instrument == where.instrument)
    if where.side:
        found.append(side == where.side)
    if where.start is not None:
        found.append(ts >= where.start)
    if where.end is not None:
        found.append(ts < where.end)
    return found


def _finding(key: str, value: dict[str, Any]) -> MonitorFinding:
    return MonitorFinding(key.removeprefix(MONITOR_PREFIX), str(value.get("monitor", "")),
                          str(value.get("severity", "info")), bool(value.get("alerting")),
                          str(value.get("message", "")), value.get("since"),
                          value.get("checked_at"))
