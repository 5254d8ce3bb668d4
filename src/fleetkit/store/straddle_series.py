"""A day's ATM straddle premium per underlying, for the dashboard's chart: the straddle
tracker's own snapshots (width 0) where it ran that day, else the series the options
collector's minute snapshots give (OptionQuoteStore.straddle, its strike step inferred
from the chain's strikes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise

from sqlalchemy import Engine, func, select

from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.option_quotes import OptionQuoteStore
from fleetkit.store.schema import option_quotes, straddle_snapshots

PremiumSeries = list[tuple[datetime, Decimal | None]]


def infer_strike_step(strikes: Iterable[Decimal]) -> Decimal | None:
    """The listing's strike step: the smallest difference between adjacent strikes (a
    chain is listed on one step; a missing strike only widens one difference). None with
    fewer than two distinct strikes."""
    ordered = sorted(set(strikes))
    steps = [b - a for a, b in pairwise(ordered)]
    return min(steps) if steps else None


class StraddleSeries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def premiums(self, trading_day: date) -> dict[str, PremiumSeries]:
        """Each underlying's ATM straddle premium through the day, oldest first."""
        tracked = self._tracked(trading_day)
        for underlying in self._quoted(trading_day):
            if underlying not in tracked:
                tracked[underlying] = self._from_quotes(underlying, trading_day)
        return {name: series for name, series in sorted(tracked.items()) if series}

    def _tracked(self, trading_day: date) -> dict[str, PremiumSeries]:
        s = straddle_snapshots.c
        query = (select(s.underlying, s.at, s.premium)
                 .where(s.trading_day == trading_day, s.width == 0)
                 .order_by(s.underlying, s.at))
        series: dict[str, PremiumSeries] = {}
        with read_transaction(self._engine) as conn:
            for underlying, at, premium in conn.execute(query):
                series.setdefault(underlying, []).append((at, premium))
        return series

    def _quoted(self, trading_day: date) -> list[str]:
        q = option_quotes.c
        with read_transaction(self._engine) as conn:
            return list(conn.execute(select(q.underlying).distinct()
                                     .where(q.trading_day == trading_day)
                                     .order_by(q.underlying)).scalars())

    def _from_quotes(self, underlying: str, trading_day: date) -> PremiumSeries:
        step = self._strike_step(underlying, trading_day)
        if step is None:
            return []
        points = OptionQuoteStore(self._engine).straddle(underlying, trading_day, step)
        return [(p.minute, p.premium) for p in points]

    def _strike_step(self, underlying: str, trading_day: date) -> Decimal | None:
        return quoted_strike_step(self._engine, underlying, trading_day)


def quoted_strike_step(engine: Engine, underlying: str, trading_day: date) -> Decimal | None:
    """The step of the nearest expiry's strikes in the day's newest minute: the expiry
    the straddle is read at (a monthly may list a coarser step), and one minute's chain
    instead of the whole day's ~350,000 rows. None when nothing was quoted that day."""
    q = option_quotes.c
    day = (q.trading_day == trading_day, q.underlying == underlying)
    with read_transaction(engine) as conn:
        minute = conn.execute(select(func.max(q.minute)).where(*day)).scalar_one_or_none()
        expiry = conn.execute(select(func.min(q.expiry)).where(
            *day, q.minute == minute, q.expiry >= trading_day)).scalar_one_or_none()
        if minute is None or expiry is None:
            return None
        strikes = conn.execute(select(q.strike).distinct().where(
            *day, q.minute == minute, q.expiry == expiry)).scalars()
        return infer_strike_step(Decimal(str(s)) for s in strikes)
