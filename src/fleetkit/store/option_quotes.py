"""The option quote store: a minute's chain snapshot written in one transaction, and read
back as one minute's chain or a day's ATM straddle series.

Writing a minute is idempotent twice over. option_quote_minutes says which minutes a
collector has written: a retried minute finds its row and writes nothing. And every quote
goes in with ON CONFLICT DO NOTHING on (trading_day, instrument, minute), so two
collectors overlapping, or a minute first recorded as missed and filled late, never store
a quote twice.

PostgreSQL: one COPY a minute straight into the partitioned table, inside a savepoint.
COPY cannot skip duplicates (one aborts it), so when one is there the savepoint undoes the
attempt and the minute goes through a session-local staging table (a temporary table, rows
gone at commit) and one INSERT ... SELECT ... ON CONFLICT DO NOTHING: the usual minute
pays for one COPY, the rare overlapping one for two (bench/option_ingest.py measures both).
SQLite: an executemany INSERT OR IGNORE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, func, select

from fleetkit.core.numbers import floor_minute, require_utc
from fleetkit.core.option_quotes import (
    OptionQuote,
    StraddlePoint,
    mark,
)
from fleetkit.core.options import atm_strike
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import upsert
from fleetkit.store.option_partitions import COLUMNS, ensure_partition
from fleetkit.store.schema import option_quote_minutes, option_quotes

WRITTEN = "written"
MISSED = "missed"
_STAGING = "option_quotes_staging"
_COLUMN_LIST = ", ".join(COLUMNS)


@dataclass(frozen=True, slots=True)
class CollectedMinute:
    """One minute in a collector's ledger."""

    collector: str
    minute: datetime
    trading_day: date
    status: str  # WRITTEN or MISSED
    rows: int


class OptionQuoteStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Days this process has seen a partition for: the check runs once a day, not once
        # a minute (a partition is never dropped while its day is still being written).
        self._partitioned_days: set[date] = set()

    def write_minute(self, collector: str, minute: datetime, trading_day: date,
                     quotes: Sequence[OptionQuote], *, recorded_at: datetime) -> int:
        """Store one minute's snapshot and mark the minute written, in one transaction;
        how many quotes were new (0 for a minute written before)."""
        minute = _check_minute(minute)
        recorded_at = require_utc(recorded_at, what="recorded_at")
        rows = [(trading_day, q.instrument, minute, q.underlying, q.expiry, q.strike,
                 q.option_type, q.bid, q.ask, q.last, q.volume, q.open_interest,
                 q.underlying_price, q.iv, q.source) for q in quotes]
        with write_transaction(self._engine) as conn:
            if self._status(conn, collector, minute) == WRITTEN:
                return 0
            if conn.dialect.name == "postgresql":
                if trading_day not in self._partitioned_days:
                    ensure_partition(conn, trading_day)
                inserted = _copy_rows(conn, rows)
            else:
                inserted = _insert_rows(conn, rows)
            # rows: what this write added (a late fill of a missed minute counts its own).
            upsert(conn, option_quote_minutes, {
                "collector": collector, "minute": minute, "trading_day": trading_day,
                "status": WRITTEN, "rows": inserted, "recorded_at": recorded_at},
                ("collector", "minute"))
        self._partitioned_days.add(trading_day)
        return inserted

    def record_missed(self, collector: str, minute: datetime, trading_day: date, *,
                      recorded_at: datetime) -> bool:
        """Record that `collector` got no snapshot for `minute`; True when newly recorded
        (False: already written or already missed)."""
        minute = _check_minute(minute)
        with write_transaction(self._engine) as conn:
            if self._status(conn, collector, minute) is not None:
                return False
            upsert(conn, option_quote_minutes, {
                "collector": collector, "minute": minute, "trading_day": trading_day,
                "status": MISSED, "rows": 0,
                "recorded_at": require_utc(recorded_at, what="recorded_at")},
                ("collector", "minute"))
        return True

    def minutes(self, collector: str, trading_day: date) -> list[CollectedMinute]:
        """The collector's ledger for a day, oldest minute first."""
        m = option_quote_minutes.c
        query = (select(m.collector, m.minute, m.trading_day, m.status, m.rows)
                 .where(m.collector == collector, m.trading_day == trading_day)
                 .order_by(m.minute))
        with read_transaction(self._engine) as conn:
            return [CollectedMinute(*row) for row in conn.execute(query)]

    def first_minute(self, collector: str) -> datetime | None:
        """The oldest minute in the collector's ledger (written or missed), None if none."""
        m = option_quote_minutes.c
        with read_transaction(self._engine) as conn:
            found: datetime | None = conn.execute(select(func.min(m.minute)).where(
                m.collector == collector)).scalar_one_or_none()
        return found

    def chain(self, underlying: str, minute: datetime,
              expiry: date | None = None) -> list[OptionQuote]:
        """One minute's chain of `underlying` (one expiry, or all), by expiry, strike, type."""
        q = option_quotes.c
        query = (select(*(q[name] for name in _QUOTE_FIELDS))
                 .where(q.underlying == underlying, q.minute == _check_minute(minute))
                 .order_by(q.expiry, q.strike, q.option_type))
        if expiry is not None:
            query = query.where(q.expiry == expiry)
        with read_transaction(self._engine) as conn:
            return [OptionQuote(*row) for row in conn.execute(query)]

    def straddle(self, underlying: str, trading_day: date, strike_step: Decimal,
                 expiry: date | None = None) -> list[StraddlePoint]:
        """The ATM straddle of each minute of the day: the call and put of `expiry`
        (default: the nearest one quoted that day) at the strike nearest that minute's
        underlying price, by minute."""
        q = option_quotes.c
        day = (q.trading_day == trading_day, q.underlying == underlying)
        with read_transaction(self._engine) as conn:
            if expiry is None:
                expiry = conn.execute(select(func.min(q.expiry)).where(
                    *day, q.expiry >= trading_day)).scalar_one_or_none()
                if expiry is None:
                    return []
            # The snapshot's underlying price is the same on every row of a minute.
            prices = dict(conn.execute(select(q.minute, func.min(q.underlying_price))
                                       .where(*day).group_by(q.minute)).all())
            strikes = {m: atm_strike(_decimal(p), strike_step) for m, p in prices.items()}
            legs = conn.execute(select(q.minute, q.strike, q.option_type, q.bid, q.ask, q.last)
                                .where(*day, q.expiry == expiry,
                                       q.strike.in_(sorted(set(strikes.values())))))
            marks: dict[tuple[datetime, str], Decimal | None] = {
                (m, kind): mark(bid, ask, last)
                for m, strike, kind, bid, ask, last in legs if strikes.get(m) == strike}
        return [StraddlePoint(m, _decimal(prices[m]), strikes[m], marks.get((m, "CE")),
                              marks.get((m, "PE"))) for m in sorted(prices)]

    @staticmethod
    def _status(conn: Connection, collector: str, minute: datetime) -> str | None:
        m = option_quote_minutes.c
        found: str | None = conn.execute(select(m.status).where(
            m.collector == collector, m.minute == minute)).scalar_one_or_none()
        return found


_QUOTE_FIELDS = ("instrument", "underlying", "expiry", "strike", "option_type", "bid", "ask",
                 "last", "volume", "open_interest", "underlying_price", "iv", "source")


def _copy_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    """COPY the rows straight into the partitioned table; if any is there already (a second
    collector, a late fill overlapping a written minute, a snapshot naming an instrument
    twice), undo that attempt and go through the staging table, which skips them."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    # The usual minute collides with nothing: one COPY and the keys' own check, about
    # twice as fast as the staging hop (bench/option_ingest.py).
    cursor.execute("SAVEPOINT option_quotes_copy")
    try:
        with cursor.copy(f"COPY option_quotes ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT option_quotes_copy")
        return _copy_through_staging(cursor, rows)
    cursor.execute("RELEASE SAVEPOINT option_quotes_copy")
    return len(rows)


def _copy_through_staging(cursor: Any, rows: list[tuple[Any, ...]]) -> int:
    """COPY the rows into this session's staging table, then move the new ones across."""
    # Once per session; ON COMMIT DELETE ROWS empties it for the next minute.
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} "
                   "(LIKE option_quotes INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with cursor.copy(f"COPY {_STAGING} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cursor.execute(f"INSERT INTO option_quotes ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} "  # noqa: S608
                   f"FROM {_STAGING} ON CONFLICT DO NOTHING")
    return int(cursor.rowcount)


def _insert_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    statement = option_quotes.insert().prefix_with("OR IGNORE")
    result = conn.execute(statement, [dict(zip(COLUMNS, row, strict=True)) for row in rows])
    return int(result.rowcount)


def _check_minute(minute: datetime) -> datetime:
    minute = require_utc(minute, what="minute")
    if minute != floor_minute(minute):
        raise ValueError(f"minute {minute.isoformat()} is not on a whole minute")
    return minute


def _decimal(value: Any) -> Decimal:
    # min() over ExactDecimal comes back as the backend's raw value (text on SQLite).
    return value if isinstance(value, Decimal) else Decimal(str(value))
