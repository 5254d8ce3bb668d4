"""What the market-data collectors say about themselves in the database: counters per
trading day (quotes written, ticks rejected by reason, write latency) and the outages they
recorded. `fleet data status`, the dashboard and the Prometheus metrics read them; any
process may, since the collector that wrote them may be on another host or dead.

Counters are added to, never set: a collector flushes what it counted since its last
flush, so two processes (a restart overlapping a slow stop) add up rather than overwrite,
and a kill -9 loses at most one flush interval's counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, func, select

from fleetkit.core.numbers import require_utc
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import dialect_insert, upsert
from fleetkit.store.schema import collector_counters, collector_gaps


@dataclass(frozen=True, slots=True)
class CollectorGap:
    collector: str
    scope: str  # an underlying, or "" for the whole collector
    started_at: datetime
    ended_at: datetime
    reason: str
    filled: int  # snapshots a later fill recovered

    def as_json(self) -> dict[str, object]:
        return {"collector": self.collector, "scope": self.scope,
                "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat(), "reason": self.reason,
                "filled": self.filled}


class CollectorStats:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, collector: str, trading_day: date, counts: Mapping[str, int],
            now: datetime) -> None:
        """Add `counts` to the collector's counters of `trading_day` (zeros are skipped)."""
        self._merge(collector, trading_day, {k: v for k, v in counts.items() if v}, now,
                    peak=False)

    def peak(self, collector: str, trading_day: date, peaks: Mapping[str, int],
             now: datetime) -> None:
        """Raise each of `peaks` to the given value where it is below it (maxima: the
        slowest write of the day)."""
        self._merge(collector, trading_day, peaks, now, peak=True)

    def _merge(self, collector: str, trading_day: date, values: Mapping[str, int],
               now: datetime, *, peak: bool) -> None:
        """Insert each value, or fold it into the stored one: added, or the larger kept."""
        rows = [{"collector": collector, "trading_day": trading_day, "name": name,
                 "value": value, "updated_at": require_utc(now, what="now")}
                for name, value in sorted(values.items())]
        if not rows:
            return
        with write_transaction(self._engine) as conn:
            table = collector_counters
            statement = dialect_insert(conn, table).values(rows)
            stored, new = table.c.value, statement.excluded.value
            if peak:
                larger = func.max if conn.dialect.name == "sqlite" else func.greatest
                merged = larger(stored, new)
            else:
                merged = stored + new
            conn.execute(statement.on_conflict_do_update(
                index_elements=["collector", "trading_day", "name"],
                set_={"value": merged, "updated_at": statement.excluded.updated_at}))

    def counters(self, collector: str, trading_day: date) -> dict[str, int]:
        c = collector_counters.c
        query = (select(c.name, c.value)
                 .where(c.collector == collector, c.trading_day == trading_day)
                 .order_by(c.name))
        with read_transaction(self._engine) as conn:
            return {name: int(value) for name, value in conn.execute(query)}

    def collectors(self) -> list[str]:
        """Every collector that has counted or recorded anything, by name."""
        with read_transaction(self._engine) as conn:
            names = set(conn.execute(select(collector_counters.c.collector).distinct()).scalars())
            names |= set(conn.execute(select(collector_gaps.c.collector).distinct()).scalars())
        return sorted(names)

    def record_gap(self, gap: CollectorGap, now: datetime) -> None:
        """Record an outage, or update one recorded before (same collector, scope and
        start: a fill that recovered more, an outage that turned out longer)."""
        with write_transaction(self._engine) as conn:
            upsert(conn, collector_gaps, {
                "collector": gap.collector, "scope": gap.scope,
                "started_at": require_utc(gap.started_at, what="started_at"),
                "ended_at": require_utc(gap.ended_at, what="ended_at"),
                "reason": gap.reason[:200], "filled": gap.filled,
                "recorded_at": require_utc(now, what="now")},
                ("collector", "scope", "started_at"))

    def gaps(self, collector: str | None = None, *, since: datetime | None = None,
             until: datetime | None = None) -> list[CollectorGap]:
        """Recorded outages, oldest first: of one collector or all, overlapping
        [since, until) when given."""
        g = collector_gaps.c
        query = select(g.collector, g.scope, g.started_at, g.ended_at, g.reason, g.filled)
        if collector is not None:
            query = query.where(g.collector == collector)
        if since is not None:
            query = query.where(g.ended_at > require_utc(since, what="since"))
        if until is not None:
            query = query.where(g.started_at < require_utc(until, what="until"))
        with read_transaction(self._engine) as conn:
            return [CollectorGap(*row) for row in conn.execute(
                query.order_by(g.started_at, g.collector, g.scope))]

