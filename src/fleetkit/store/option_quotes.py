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
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, func, select, text

from fleetkit.core.numbers import floor_minute, require_utc
from fleetkit.core.option_quotes import (
    OptionQuote,
    StraddlePoint,
    mark,
)
from fleetkit.core.options import atm_strike
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import upsert
from fleetkit.store.option_chain_minutes import (
    chain_minute_rows,
    straddle_from_summaries,
    write_chain_minutes,
)
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
            write_chain_minutes(conn, chain_minute_rows(trading_day, minute, quotes))
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
        underlying price (the lowest recorded in the minute), by minute."""
        with read_transaction(self._engine) as conn:
            summarised = straddle_from_summaries(conn, underlying, trading_day, strike_step,
                                                 expiry)
            if summarised is not None:
                return summarised
            if conn.dialect.name == "postgresql":
                return _straddle_in_one_pass(conn, underlying, trading_day, strike_step,
                                             expiry)
            return _straddle(conn, underlying, trading_day, strike_step, expiry)

    def underlyings(self) -> list[str]:
        """Every underlying with quotes recorded, by name: one index probe per underlying
        (a loose index scan over (underlying, minute)), never a scan of the quotes."""
        with read_transaction(self._engine) as conn:
            return list(conn.execute(_UNDERLYINGS).scalars())

    def latest_minute(self, underlying: str, at: datetime | None = None) -> datetime | None:
        """The newest minute with quotes of `underlying` (at or before `at` when given)."""
        q = option_quotes.c
        query = select(func.max(q.minute)).where(q.underlying == underlying)
        if at is not None:
            query = query.where(q.minute <= require_utc(at, what="at"))
        with read_transaction(self._engine) as conn:
            found: datetime | None = conn.execute(query).scalar_one_or_none()
        return found

    @staticmethod
    def _status(conn: Connection, collector: str, minute: datetime) -> str | None:
        m = option_quote_minutes.c
        found: str | None = conn.execute(select(m.status).where(
            m.collector == collector, m.minute == minute)).scalar_one_or_none()
        return found


_QUOTE_FIELDS = ("instrument", "underlying", "expiry", "strike", "option_type", "bid", "ask",
                 "last", "volume", "open_interest", "underlying_price", "iv", "source")


# Each step finds the next name after the last by the (underlying, minute) index; the
# recursion ends with NULL. SQLite and PostgreSQL both run it.
_UNDERLYINGS = text(
    "WITH RECURSIVE found(name) AS ("
    " SELECT min(underlying) FROM option_quotes"
    " UNION ALL SELECT (SELECT min(underlying) FROM option_quotes WHERE underlying > name)"
    " FROM found WHERE name IS NOT NULL)"
    " SELECT name FROM found WHERE name IS NOT NULL ORDER BY name")

# PostgreSQL's straddle: one pass over the underlying's rows of the day (the partition's
# (underlying, minute) index, in minute order), per minute the lowest and highest
# underlying price, the nearest expiry, and the quotes whose strike is ATM for their own
# row's price (strike in (price - step/2, price + step/2], as atm_strike rounds halves up):
# a handful of rows a minute instead of the whole chain. Where a minute's rows agree on
# the price, which is the usual minute, those hold its ATM legs.
_STRADDLE_PASS = text(
    "SELECT minute, min(underlying_price), max(underlying_price),"
    " min(expiry) FILTER (WHERE expiry >= :day),"
    " json_agg(json_build_array(to_char(expiry, 'YYYY-MM-DD'), strike::text, option_type,"
    " bid::text, ask::text, last::text)) FILTER (WHERE strike > underlying_price - :half"
    " AND strike <= underlying_price + :half)"
    " FROM option_quotes WHERE trading_day = :day AND underlying = :underlying"
    " GROUP BY minute ORDER BY minute")


def _straddle_in_one_pass(conn: Connection, underlying: str, trading_day: date,
                          strike_step: Decimal, expiry: date | None) -> list[StraddlePoint]:
    """The straddle as _straddle finds it, from one pass over the day (_STRADDLE_PASS)
    instead of three; the rare minute whose rows disagree on the underlying price (two
    snapshots in one minute) has its legs read again, exactly as _straddle does."""
    minutes = conn.execute(_STRADDLE_PASS, {"day": trading_day, "underlying": underlying,
                                            "half": strike_step / 2}).all()
    if expiry is None:
        expiry = min((m[3] for m in minutes if m[3] is not None), default=None)
        if expiry is None:
            return []
    wanted = expiry.isoformat()
    points: dict[datetime, tuple[Decimal, Decimal]] = {}
    marks: dict[tuple[datetime, str], Decimal | None] = {}
    mixed: list[datetime] = []
    for at, low, high, _, candidates in minutes:
        minute = at.astimezone(UTC)  # a text query's timestamps come in the session's zone
        price = _decimal(low)
        strike = atm_strike(price, strike_step)
        points[minute] = (price, strike)
        if low != high:
            mixed.append(minute)
            continue
        for leg_expiry, leg_strike, kind, bid, ask, last in candidates or ():
            if leg_expiry == wanted and Decimal(leg_strike) == strike:
                marks[minute, kind] = mark(*(None if v is None else Decimal(v)
                                             for v in (bid, ask, last)))
    if mixed:
        q = option_quotes.c
        legs = conn.execute(select(q.minute, q.strike, q.option_type, q.bid, q.ask, q.last)
                            .where(q.trading_day == trading_day, q.underlying == underlying,
                                   q.expiry == expiry, q.minute.in_(mixed)))
        for minute, strike, kind, bid, ask, last in legs:
            if points[minute][1] == strike:
                marks[minute, kind] = mark(bid, ask, last)
    return [StraddlePoint(m, price, strike, marks.get((m, "CE")), marks.get((m, "PE")))
            for m, (price, strike) in points.items()]


def _straddle(conn: Connection, underlying: str, trading_day: date, strike_step: Decimal,
              expiry: date | None) -> list[StraddlePoint]:
    """The straddle in three queries (SQLite, where decimals are text and cannot be
    compared in SQL): the expiry, each minute's price, then the ATM legs."""
    q = option_quotes.c
    day = (q.trading_day == trading_day, q.underlying == underlying)
    if expiry is None:
        expiry = conn.execute(select(func.min(q.expiry)).where(
            *day, q.expiry >= trading_day)).scalar_one_or_none()
        if expiry is None:
            return []
    # The lowest underlying price of the minute: two snapshots in a minute may differ.
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
