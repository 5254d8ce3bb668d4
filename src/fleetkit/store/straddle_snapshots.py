"""The straddle tracker's snapshots: written a batch per transaction, read back as one
underlying's day for one structure, or the newest snapshot of each underlying.

Idempotent: every row goes in with ON CONFLICT DO NOTHING on (tracker, underlying, width,
at), so a batch retried after a lost commit, or a restarted tracker filling the same
outage from REST, never stores a snapshot twice.

A batch is one INSERT executed with many parameter sets (SQLAlchemy's "insertmanyvalues":
one round trip per 1,000 rows on both backends), not sqlutil.upsert.insert_many_if_absent's
INSERT ... VALUES of the rows themselves: that statement is compiled anew for each batch
size, which cost ~25 ms of CPU per batch of 20 here, a tracker writing every 50 ms can't.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from fleetkit.core.numbers import require_utc
from fleetkit.core.options import OptionKind
from fleetkit.core.straddles import LegQuote, StraddleSnapshot
from fleetkit.sqlutil.engine import read_transaction, write_transaction
from fleetkit.sqlutil.upsert import dialect_insert
from fleetkit.store.schema import straddle_snapshots

KEY = ("tracker", "underlying", "width", "at")

_LEG_FIELDS = ("instrument", "strike", "bid", "ask", "last")
_COLUMNS = ("tracker", "underlying", "width", "at", "trading_day", "expiry", "atm_strike",
            "spot", *(f"call_{f}" for f in _LEG_FIELDS), "call_iv",
            *(f"put_{f}" for f in _LEG_FIELDS), "put_iv", "source")


class StraddleSnapshotStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, snapshots: Sequence[StraddleSnapshot], now: datetime) -> int:
        """Store `snapshots` in one transaction; how many were new (the rest were stored
        before). Raises DatabaseUnavailableError when the database is down (nothing kept)."""
        recorded_at = require_utc(now, what="now")
        rows = [_row(s, recorded_at) for s in snapshots]
        if not rows:
            return 0
        with write_transaction(self._engine) as conn:
            statement = dialect_insert(conn, straddle_snapshots).on_conflict_do_nothing(
                index_elements=list(KEY)).returning(straddle_snapshots.c.tracker)
            return len(conn.execute(statement, rows).all())

    def series(self, underlying: str, trading_day: date, width: int = 0,
               tracker: str | None = None) -> list[StraddleSnapshot]:
        """One structure's snapshots of `trading_day`, oldest first (of every tracker, or
        of one)."""
        s = straddle_snapshots.c
        query = (select(*(s[name] for name in _COLUMNS))
                 .where(s.underlying == underlying, s.trading_day == trading_day,
                        s.width == width)
                 .order_by(s.at, s.tracker))
        if tracker is not None:
            query = query.where(s.tracker == tracker)
        with read_transaction(self._engine) as conn:
            return [_snapshot(row) for row in conn.execute(query)]

    def latest(self, tracker: str | None = None) -> dict[str, StraddleSnapshot]:
        """The newest ATM straddle snapshot of each underlying, by underlying."""
        s = straddle_snapshots.c
        newest = select(s.underlying, func.max(s.at).label("at")).where(s.width == 0)
        if tracker is not None:
            newest = newest.where(s.tracker == tracker)
        newest_sq = newest.group_by(s.underlying).subquery()
        query = (select(*(s[name] for name in _COLUMNS))
                 .join(newest_sq, (s.underlying == newest_sq.c.underlying)
                       & (s.at == newest_sq.c.at))
                 .where(s.width == 0).order_by(s.underlying, s.tracker))
        if tracker is not None:
            query = query.where(s.tracker == tracker)
        with read_transaction(self._engine) as conn:
            return {row.underlying: _snapshot(row) for row in conn.execute(query)}

    def underlyings(self) -> list[str]:
        """Every underlying with a snapshot stored, by name."""
        with read_transaction(self._engine) as conn:
            return sorted(conn.execute(
                select(straddle_snapshots.c.underlying).distinct()).scalars())


def _row(snapshot: StraddleSnapshot, recorded_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tracker": snapshot.tracker, "underlying": snapshot.underlying,
        "width": snapshot.width, "at": require_utc(snapshot.at, what="at"),
        "trading_day": snapshot.trading_day, "expiry": snapshot.expiry,
        "atm_strike": snapshot.atm_strike, "spot": snapshot.spot,
        "call_iv": snapshot.call_iv, "put_iv": snapshot.put_iv,
        "premium": snapshot.premium, "source": snapshot.source, "recorded_at": recorded_at}
    for side, leg in (("call", snapshot.call), ("put", snapshot.put)):
        for name in _LEG_FIELDS:
            row[f"{side}_{name}"] = getattr(leg, name)
    return row


def _snapshot(row: Any) -> StraddleSnapshot:
    values = row._mapping

    def leg(side: str, kind: OptionKind) -> LegQuote:
        return LegQuote(values[f"{side}_instrument"], _decimal(values[f"{side}_strike"]), kind,
                        _maybe(values[f"{side}_bid"]), _maybe(values[f"{side}_ask"]),
                        _maybe(values[f"{side}_last"]))

    return StraddleSnapshot(
        values["tracker"], values["underlying"], int(values["width"]),
        values["at"].astimezone(UTC), values["trading_day"], values["expiry"],
        _decimal(values["atm_strike"]), _decimal(values["spot"]),
        leg("call", OptionKind.CALL), leg("put", OptionKind.PUT),
        values["call_iv"], values["put_iv"], values["source"])


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _maybe(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value)

