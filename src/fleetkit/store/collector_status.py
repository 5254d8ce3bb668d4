"""The market-data collectors at a glance: each one's trading day so far (minutes written
and missed, rows, gaps, rejects, write latency, heartbeat), the option quote days held, and
the straddle tracker's newest snapshots. Shared by `fleet data status`, the dashboard's
Market data page and the metrics exporter; read-only, a handful of small queries per
collector (a day's ledger is ~400 rows), never a count over option_quotes.

The market-data tables may live in their own database; heartbeats are always in the fleet
database, so the reader takes both engines (the same one when they are one database).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, or_, select, text

from fleetkit.core.numbers import plain
from fleetkit.core.sessions import day_bounds
from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.collector_stats import CollectorGap, CollectorStats
from fleetkit.store.option_partitions import OptionPartitions
from fleetkit.store.schema import heartbeats, option_quote_minutes, straddle_snapshots

# A collector heartbeats as "collector:<name>" (options) or "tracker:<name>" (straddles).
HEARTBEAT_PREFIXES = ("collector:", "tracker:")
REJECTED = "rejected."
MISSED_MINUTES = "missed minutes"
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CollectorBeat:
    component: str
    status: str
    detail: str
    age_s: float

    def as_json(self) -> dict[str, object]:
        return {"component": self.component, "status": self.status, "detail": self.detail,
                "age_s": round(self.age_s, 1)}


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """One collector's trading day so far, as of `at`."""

    name: str
    trading_day: date
    last_minute: datetime | None  # the newest minute (or snapshot) it wrote, any day
    last_write_age_s: float | None  # since that write was committed
    rows_today: int
    minutes_written: int
    minutes_missed: int
    gaps: tuple[CollectorGap, ...]  # recorded outages and runs of missed minutes, today
    rejects: dict[str, int]  # by reason
    write_ms_avg: float | None
    write_ms_max: float | None
    heartbeat: CollectorBeat | None
    counters: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name, "trading_day": self.trading_day.isoformat(),
            "last_minute": self.last_minute.isoformat() if self.last_minute else None,
            "last_write_age_s": None if self.last_write_age_s is None
            else round(self.last_write_age_s, 1),
            "rows_today": self.rows_today, "minutes_written": self.minutes_written,
            "minutes_missed": self.minutes_missed,
            "gaps": [g.as_json() for g in self.gaps], "rejects": self.rejects,
            "write_ms": {"avg": self.write_ms_avg, "max": self.write_ms_max},
            "heartbeat": self.heartbeat.as_json() if self.heartbeat else None,
            "counters": self.counters}


@dataclass(frozen=True, slots=True)
class QuoteDays:
    """The days of option quotes in the database: partitions on PostgreSQL (with their
    total size), distinct days on SQLite (no size)."""

    partitioned: bool
    partitions: int  # PostgreSQL: attached partitions, days made ahead included
    bytes: int | None
    days: tuple[date, ...]  # days up to today held in the database, oldest first

    def as_json(self) -> dict[str, object]:
        return {"partitioned": self.partitioned, "partitions": self.partitions,
                "bytes": self.bytes, "days": [d.isoformat() for d in self.days]}


@dataclass(frozen=True, slots=True)
class LatestStraddle:
    tracker: str
    underlying: str
    at: datetime
    expiry: date
    atm_strike: Decimal
    spot: Decimal
    premium: Decimal | None
    source: str

    def as_json(self) -> dict[str, object]:
        return {"tracker": self.tracker, "underlying": self.underlying,
                "at": self.at.isoformat(), "expiry": self.expiry.isoformat(),
                "atm_strike": plain(self.atm_strike), "spot": plain(self.spot),
                "premium": None if self.premium is None else plain(self.premium),
                "source": self.source}


def missed_runs(minutes: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive missed minutes as [start, end) runs: ten missed minutes in a row are
    one gap, not ten."""
    runs: list[tuple[datetime, datetime]] = []
    for minute in sorted(minutes):
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + _MINUTE)
        else:
            runs.append((minute, minute + _MINUTE))
    return runs


class CollectorStatus:
    def __init__(self, market_data: Engine, fleet: Engine | None = None) -> None:
        self._engine = market_data
        self._fleet = fleet
        self._stats = CollectorStats(market_data)

    def names(self) -> list[str]:
        """Every collector that wrote, counted or recorded anything, or heartbeats."""
        m, s = option_quote_minutes.c, straddle_snapshots.c
        with read_transaction(self._engine) as conn:
            found = set(conn.execute(select(m.collector).distinct()).scalars())
            found |= set(conn.execute(select(s.tracker).distinct()).scalars())
        return sorted(found | set(self._stats.collectors()) | set(self._beats(None)))

    def collectors(self, zone_of: Callable[[str], ZoneInfo], now: datetime
                   ) -> list[CollectorHealth]:
        """Each collector's day so far; its day is today in `zone_of(name)`."""
        beats = self._beats(now)
        return [self.collector(name, zone_of(name), now, beats.get(name))
                for name in self.names()]

    def collector(self, name: str, zone: ZoneInfo, now: datetime,
                  beat: CollectorBeat | None = None) -> CollectorHealth:
        day = now.astimezone(zone).date()
        counters = self._stats.counters(name, day)
        written, written_rows, missed = self._ledger(name, day)
        last_minute, last_written_at = self._last_write(name)
        since, until = day_bounds(day, zone)
        gaps = [*self._stats.gaps(name, since=since, until=until),
                *(CollectorGap(name, "", start, end, MISSED_MINUTES, 0)
                  for start, end in missed_runs(missed))]
        count = counters.get("write_count", 0)
        return CollectorHealth(
            name=name, trading_day=day, last_minute=last_minute,
            last_write_age_s=None if last_written_at is None
            else max(0.0, (now - last_written_at).total_seconds()),
            # The ledger is exact for the options collector; a tracker has only counters.
            rows_today=written_rows if written else counters.get(
                "rows", counters.get("snapshots", 0)),
            minutes_written=written,
            minutes_missed=len(missed) if written or missed else counters.get("missed", 0),
            gaps=tuple(sorted(gaps, key=lambda g: (g.started_at, g.scope))),
            rejects={key[len(REJECTED):]: value for key, value in counters.items()
                     if key.startswith(REJECTED)},
            write_ms_avg=round(counters.get("write_ms_sum", 0) / count, 1) if count else None,
            write_ms_max=float(counters["write_ms_max"]) if "write_ms_max" in counters
            else None,
            heartbeat=beat, counters=counters)

    def quote_days(self, today: date) -> QuoteDays:
        partitions = OptionPartitions(self._engine)
        days = tuple(d for d in partitions.stored_days() if d <= today)
        if not partitions.partitioned:
            return QuoteDays(False, 0, None, days)
        # pg_inherits lists the attached partitions; regclass resolves the parent through
        # the search path, as every other statement on option_quotes does.
        with read_transaction(self._engine) as conn:
            count, size = conn.execute(text(
                "SELECT count(*), coalesce(sum(pg_total_relation_size(inhrelid)), 0)"
                " FROM pg_inherits WHERE inhparent = 'option_quotes'::regclass")).one()
        return QuoteDays(True, int(count), int(size), days)

    def latest_straddles(self) -> list[LatestStraddle]:
        """The newest ATM straddle (width 0) of each tracker and underlying."""
        s = straddle_snapshots.c
        newest = (select(s.tracker, s.underlying, func.max(s.at).label("at"))
                  .where(s.width == 0).group_by(s.tracker, s.underlying).subquery())
        query = (select(s.tracker, s.underlying, s.at, s.expiry, s.atm_strike, s.spot,
                        s.premium, s.source)
                 .join(newest, (s.tracker == newest.c.tracker)
                       & (s.underlying == newest.c.underlying) & (s.at == newest.c.at))
                 .where(s.width == 0).order_by(s.underlying, s.tracker))
        with read_transaction(self._engine) as conn:
            return [LatestStraddle(*row) for row in conn.execute(query)]

    def rows_per_minute(self, trading_day: date) -> list[tuple[str, datetime, int]]:
        """(collector, minute, rows) of every minute written on the day, by minute."""
        m = option_quote_minutes.c
        query = (select(m.collector, m.minute, m.rows)
                 .where(m.trading_day == trading_day, m.status == "written")
                 .order_by(m.minute, m.collector))
        with read_transaction(self._engine) as conn:
            return [(name, minute, int(rows)) for name, minute, rows in conn.execute(query)]

    def _ledger(self, name: str, day: date) -> tuple[int, int, list[datetime]]:
        """Minutes written today, the rows they added, and the minutes missed."""
        m = option_quote_minutes.c
        with read_transaction(self._engine) as conn:
            written, rows = conn.execute(
                select(func.count(), func.coalesce(func.sum(m.rows), 0))
                .where(m.collector == name, m.trading_day == day,
                       m.status == "written")).one()
            missed = list(conn.execute(
                select(m.minute).where(m.collector == name, m.trading_day == day,
                                       m.status == "missed")).scalars())
        return int(written), int(rows), missed

    def _last_write(self, name: str) -> tuple[datetime | None, datetime | None]:
        """The newest minute (or snapshot) written, and when it was committed."""
        m, s = option_quote_minutes.c, straddle_snapshots.c
        with read_transaction(self._engine) as conn:
            found: list[Any] = [conn.execute(
                select(m.minute, m.recorded_at)
                .where(m.collector == name, m.status == "written")
                .order_by(m.minute.desc()).limit(1)).first(),
                conn.execute(select(s.at, s.recorded_at).where(s.tracker == name)
                             .order_by(s.at.desc()).limit(1)).first()]
        rows = [row for row in found if row is not None]
        if not rows:
            return None, None
        return max(r[0] for r in rows), max(r[1] for r in rows)

    def _beats(self, now: datetime | None) -> dict[str, CollectorBeat]:
        """Collector heartbeats by collector name (ages 0 when `now` is None)."""
        if self._fleet is None:
            return {}
        h = heartbeats.c
        query = select(h.component, h.status, h.detail, h.beat_at).where(or_(
            h.kind == "collector", *(h.component.startswith(p) for p in HEARTBEAT_PREFIXES)))
        found: dict[str, CollectorBeat] = {}
        with read_transaction(self._fleet) as conn:
            rows = sorted(conn.execute(query), key=lambda r: r.beat_at)
        for component, status, detail, beat_at in rows:  # oldest first: the newest wins
            name = component.partition(":")[2] or component
            age = 0.0 if now is None else max(0.0, (now - beat_at).total_seconds())
            found[name] = CollectorBeat(component, status, detail, age)
        return found
