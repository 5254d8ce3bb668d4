"""option_chain_minutes: each chain snapshot's spot and ATM quotes, written with the
minute's quotes, so that a day's straddle series reads about 1,500 small rows instead of a
day of chains (350,000 rows: too many to scan in 50 ms).

The series read from them is exactly the one read from the quotes themselves
(store/option_quotes.py): a minute's price is the lowest underlying price of its rows (the
lowest of its chains' spots), its ATM strike follows from the strike step asked for, and
the legs are the chosen expiry's quotes at that strike. Where the chain's own ATM strike
(from its strikes' spacing) is that strike, the legs are in the summary row; where it is
not (the chains of a minute disagree on the spot across a strike boundary, or the caller's
step is not the chain's) those minutes' legs are read from the quotes, a few rows each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, text

from fleetkit.core.option_quotes import OptionQuote, StraddlePoint, mark
from fleetkit.core.options import atm_strike
from fleetkit.sqlutil.upsert import dialect_insert
from fleetkit.store.schema import option_chain_minutes, option_quotes

KEY = ("trading_day", "underlying", "expiry", "minute")
_LEGS = ("bid", "ask", "last")


def chain_minute_rows(trading_day: date, minute: datetime,
                      quotes: Iterable[OptionQuote]) -> list[dict[str, Any]]:
    """One summary row per (underlying, expiry) among `quotes` (one minute's snapshot)."""
    chains: dict[tuple[str, date], list[OptionQuote]] = {}
    for quote in quotes:
        chains.setdefault((quote.underlying, quote.expiry), []).append(quote)
    rows = []
    for (underlying, expiry), found in sorted(chains.items()):
        spot = min(q.underlying_price for q in found)
        step = strike_step(q.strike for q in found)
        atm = atm_strike(spot, step) if step is not None else None
        legs = {q.option_type: q for q in found if atm is not None and q.strike == atm}
        row: dict[str, Any] = {"trading_day": trading_day, "underlying": underlying,
                               "expiry": expiry, "minute": minute, "spot": spot,
                               "atm_strike": atm, "quotes": len(found)}
        for kind, prefix in (("CE", "call"), ("PE", "put")):
            leg = legs.get(kind)
            for field in _LEGS:
                row[f"{prefix}_{field}"] = None if leg is None else getattr(leg, field)
        rows.append(row)
    return rows


def strike_step(strikes: Iterable[Decimal]) -> Decimal | None:
    """The spacing of a chain's strikes: the smallest gap between neighbours (None for a
    chain of one strike)."""
    ordered = sorted(set(strikes))
    gaps = [b - a for a, b in pairwise(ordered)]
    return min(gaps) if gaps else None


def write_chain_minutes(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert the summaries not there yet (a retried or overlapping minute adds nothing).
    One statement executed for many rows: compiled once and cached, unlike a multi-row
    VALUES whose text changes with the row count."""
    if not rows:
        return
    conn.execute(dialect_insert(conn, option_chain_minutes).on_conflict_do_nothing(
        index_elements=list(KEY)), list(rows))


def straddle_from_summaries(conn: Connection, underlying: str, trading_day: date,
                            strike_step_asked: Decimal, expiry: date | None
                            ) -> list[StraddlePoint] | None:
    """The day's ATM straddle from the summaries; None when the day has none (quotes
    written before they existed, or loaded around the store): read the quotes then."""
    c = option_chain_minutes.c
    found = conn.execute(
        option_chain_minutes.select().with_only_columns(
            c.expiry, c.minute, c.spot, c.atm_strike, c.call_bid, c.call_ask, c.call_last,
            c.put_bid, c.put_ask, c.put_last)
        .where(c.trading_day == trading_day, c.underlying == underlying)).all()
    if not found:
        return None
    if expiry is None:
        expiry = min((row.expiry for row in found if row.expiry >= trading_day), default=None)
        if expiry is None:
            return []
    prices: dict[datetime, Decimal] = {}
    chosen: dict[datetime, Any] = {}
    for row in found:
        spot = _decimal(row.spot)
        if row.minute not in prices or spot < prices[row.minute]:
            prices[row.minute] = spot
        if row.expiry == expiry:
            chosen[row.minute] = row
    strikes = {m: atm_strike(p, strike_step_asked) for m, p in prices.items()}
    marks, elsewhere = _summary_marks(chosen, strikes)
    if elsewhere:
        marks |= _quoted_marks(conn, underlying, trading_day, expiry, elsewhere, strikes)
    return [StraddlePoint(m, prices[m], strikes[m], marks.get((m, "CE")),
                          marks.get((m, "PE"))) for m in sorted(prices)]


Marks = dict[tuple[datetime, str], "Decimal | None"]


def _summary_marks(chosen: dict[datetime, Any], strikes: dict[datetime, Decimal]
                   ) -> tuple[Marks, list[datetime]]:
    """The legs the summaries hold (where the chain's ATM is the strike asked for), and
    the minutes whose legs are at another strike of the chain."""
    marks: Marks = {}
    elsewhere: list[datetime] = []
    for minute, strike in strikes.items():
        row = chosen.get(minute)
        if row is None:
            continue  # the expiry was not quoted that minute: no legs
        if row.atm_strike is not None and _decimal(row.atm_strike) == strike:
            marks[minute, "CE"] = mark(*(_maybe(getattr(row, f"call_{f}")) for f in _LEGS))
            marks[minute, "PE"] = mark(*(_maybe(getattr(row, f"put_{f}")) for f in _LEGS))
        else:
            elsewhere.append(minute)
    return marks, elsewhere


def _quoted_marks(conn: Connection, underlying: str, trading_day: date, expiry: date,
                  minutes: list[datetime], strikes: dict[datetime, Decimal]) -> Marks:
    q = option_quotes.c
    marks: Marks = {}
    for chunk in _chunks(minutes, 500):
        legs = conn.execute(option_quotes.select().with_only_columns(
            q.minute, q.strike, q.option_type, q.bid, q.ask, q.last).where(
            q.trading_day == trading_day, q.underlying == underlying, q.expiry == expiry,
            q.minute.in_(chunk), q.strike.in_(sorted({strikes[m] for m in chunk}))))
        for minute, strike, kind, bid, ask, last in legs:
            if strikes[minute] == _decimal(strike):
                marks[minute, kind] = mark(_maybe(bid), _maybe(ask), _maybe(last))
    return marks


# Summaries of a day whose quotes were loaded around the store (a bulk COPY, an import):
# per chain snapshot its lowest spot, its strikes' smallest spacing, the ATM strike of that
# step (round() on NUMERIC rounds halves away from zero: up, for a positive spot, as
# core.options.atm_strike does) and the quotes at it. PostgreSQL only.
_REBUILD = text("""
INSERT INTO option_chain_minutes (trading_day, underlying, expiry, minute, spot, atm_strike,
    call_bid, call_ask, call_last, put_bid, put_ask, put_last, quotes)
WITH spaced AS (
    SELECT underlying, expiry, minute,
           strike - lag(strike) OVER (PARTITION BY underlying, expiry, minute
                                      ORDER BY strike) AS gap
    FROM (SELECT DISTINCT underlying, expiry, minute, strike FROM option_quotes
          WHERE trading_day = :day) AS strikes),
steps AS (
    SELECT underlying, expiry, minute, min(gap) FILTER (WHERE gap > 0) AS step
    FROM spaced GROUP BY underlying, expiry, minute),
chains AS (
    SELECT underlying, expiry, minute, min(underlying_price) AS spot, count(*) AS quotes
    FROM option_quotes WHERE trading_day = :day GROUP BY underlying, expiry, minute),
centred AS (
    SELECT c.*, round(c.spot / s.step) * s.step AS atm
    FROM chains c JOIN steps s USING (underlying, expiry, minute))
SELECT :day, c.underlying, c.expiry, c.minute, c.spot, c.atm,
       max(q.bid) FILTER (WHERE q.option_type = 'CE'),
       max(q.ask) FILTER (WHERE q.option_type = 'CE'),
       max(q.last) FILTER (WHERE q.option_type = 'CE'),
       max(q.bid) FILTER (WHERE q.option_type = 'PE'),
       max(q.ask) FILTER (WHERE q.option_type = 'PE'),
       max(q.last) FILTER (WHERE q.option_type = 'PE'),
       c.quotes
FROM centred c LEFT JOIN option_quotes q
  ON q.trading_day = :day AND q.underlying = c.underlying AND q.expiry = c.expiry
 AND q.minute = c.minute AND q.strike = c.atm
GROUP BY c.underlying, c.expiry, c.minute, c.spot, c.atm, c.quotes
ON CONFLICT DO NOTHING
""")


def rebuild_day(conn: Connection, trading_day: date) -> int:
    """Summarise a day's quotes loaded around the store (PostgreSQL); how many rows were
    added (chain snapshots summarised before are left as they are)."""
    if conn.dialect.name != "postgresql":
        raise NotImplementedError("summaries are rebuilt on PostgreSQL only")
    return conn.execute(_REBUILD, {"day": trading_day}).rowcount


def _maybe(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value)


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _chunks(items: list[datetime], size: int) -> Iterable[list[datetime]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
