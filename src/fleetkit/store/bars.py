"""The bar store: bar history per (instrument, timeframe) in the market-data database.

Writes are idempotent (the key is the primary key; INSERT ... ON CONFLICT DO NOTHING), so a
backfill run twice, a recorder restarted mid-chunk or two recorders at once never store a
bar twice. The last stored bar is the recorder's cursor: nothing else needs persisting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from fleetkit.core.bars import BarRecord, check_timeframe
from fleetkit.core.numbers import require_utc
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import insert_many_if_absent
from fleetkit.store.schema import bars

KEY = ("instrument", "timeframe", "open_time")
# Rows per INSERT: 10 binds each, well under SQLite's 32,766, and a day of one-minute bars
# of a 24/7 market (1,440) in three statements.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """What is stored of one instrument's timeframe."""

    instrument: str
    timeframe: str
    bars: int
    first: datetime
    last: datetime

    def as_json(self) -> dict[str, object]:
        return {"instrument": self.instrument, "timeframe": self.timeframe, "bars": self.bars,
                "first": self.first.isoformat(), "last": self.last.isoformat()}


class BarStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, instrument: str, timeframe: str, records: Sequence[BarRecord], *,
              source: str, recorded_at: datetime) -> int:
        """Store `records` in one transaction; how many were new (the rest were there)."""
        check_timeframe(timeframe)
        recorded_at = require_utc(recorded_at, what="recorded_at")
        rows = [{"instrument": instrument, "timeframe": timeframe, "open_time": r.open_time,
                 "open": r.open, "high": r.high, "low": r.low, "close": r.close,
                 "volume": r.volume, "source": source, "recorded_at": recorded_at}
                for r in records]
        inserted = 0
        with write_transaction(self._engine) as conn:
            for i in range(0, len(rows), _CHUNK):
                inserted += insert_many_if_absent(conn, bars, rows[i:i + _CHUNK], KEY)
        return inserted

    def last_open_time(self, instrument: str, timeframe: str) -> datetime | None:
        """The newest stored bar's open time: where a recorder resumes."""
        with read_transaction(self._engine) as conn:
            found: datetime | None = conn.execute(
                select(func.max(bars.c.open_time)).where(*self._series(instrument, timeframe))
            ).scalar_one_or_none()
        return found

    def read(self, instrument: str, timeframe: str, start: datetime, end: datetime
             ) -> list[BarRecord]:
        """Bars opening in [start, end), oldest first."""
        query = (select(bars.c.open_time, bars.c.open, bars.c.high, bars.c.low, bars.c.close,
                        bars.c.volume)
                 .where(*self._series(instrument, timeframe), *self._range(start, end))
                 .order_by(bars.c.open_time))
        with read_transaction(self._engine) as conn:
            return [BarRecord(*row) for row in conn.execute(query)]

    def open_times(self, instrument: str, timeframe: str, start: datetime, end: datetime
                   ) -> set[datetime]:
        """The open times stored in [start, end) (gap checks need nothing more)."""
        query = select(bars.c.open_time).where(*self._series(instrument, timeframe),
                                               *self._range(start, end))
        with read_transaction(self._engine) as conn:
            return set(conn.execute(query).scalars())

    def timeframes(self, instrument: str) -> list[str]:
        with read_transaction(self._engine) as conn:
            return sorted(conn.execute(select(bars.c.timeframe).distinct()
                                       .where(bars.c.instrument == instrument)).scalars())

    def summaries(self, instruments: Iterable[str] | None = None) -> list[SeriesSummary]:
        query = (select(bars.c.instrument, bars.c.timeframe, func.count(),
                        func.min(bars.c.open_time), func.max(bars.c.open_time))
                 .group_by(bars.c.instrument, bars.c.timeframe)
                 .order_by(bars.c.instrument, bars.c.timeframe))
        if instruments is not None:
            query = query.where(bars.c.instrument.in_(list(instruments)))
        with read_transaction(self._engine) as conn:
            return [SeriesSummary(*row) for row in conn.execute(query)]

    @staticmethod
    def _series(instrument: str, timeframe: str) -> tuple[Any, ...]:
        return (bars.c.instrument == instrument, bars.c.timeframe == check_timeframe(timeframe))

    @staticmethod
    def _range(start: datetime, end: datetime) -> tuple[Any, ...]:
        return (bars.c.open_time >= require_utc(start, what="start"),
                bars.c.open_time < require_utc(end, what="end"))
