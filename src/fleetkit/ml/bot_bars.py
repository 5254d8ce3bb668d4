"""A learning bot's signal bars at one timeframe, up to the last bar complete at `end`: from
the fleet's bar store when it holds enough, else from the bot's venue — for a sandbox bot
the sandbox's invented history, computed in-process with the config's seed (prices are a
pure function of seed, instrument and time: the same bars the sandbox service serves,
whether or not it is running).

Both sources give one-minute bars, aggregated here on the exchange's sessions exactly as
the features aggregate them (features.columns), so the base bars and the features' higher
timeframes share one set of buckets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from fleetkit.brokers.sandbox.walk import EPOCH_S
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import BotSettings
from fleetkit.core.bars import ONE_MINUTE, TIMEFRAMES, BarRecord
from fleetkit.core.errors import FleetError
from fleetkit.core.instruments import ALWAYS_OPEN, market
from fleetkit.core.sessions import Session
from fleetkit.features.columns import BarColumns, SessionTable, aggregate_columns
from fleetkit.runtime.calendar_watch import market_calendars
from fleetkit.runtime.connections import prices_invented
from fleetkit.runtime.wiring import sandbox_catalog

Source = Literal["auto", "store", "sandbox"]
SOURCES: tuple[Source, ...] = ("auto", "store", "sandbox")
# Where bars come from, not a bot's mode (which only runtime.connections looks at).
INVENTED: Source = "sandbox"
DAY_MINUTES = 1440
# Sessions looked at to find a market's longest one (a short day must not set it).
_SESSION_SAMPLE_DAYS = 30
# Sessions fetched beyond the estimate: a bucket wholly inside a lunch break never exists.
_SPARE_SESSIONS = 3


@dataclass(frozen=True, slots=True)
class SignalBars:
    """Complete base bars of one instrument, oldest first (at most the count asked for),
    the sessions that hold them, and where they came from ("bar store" or "sandbox")."""

    instrument: str
    timeframe: str
    bars: BarColumns
    sessions: list[Session]
    source: str

    def __len__(self) -> int:
        return len(self.bars)


@dataclass(frozen=True, slots=True)
class BarRequest:
    """`count` bars of `timeframe` for `instrument`, the last one complete by `end`."""

    instrument: str
    timeframe: str
    count: int
    end: datetime

    @property
    def calendar(self) -> str:
        return market(self.instrument.partition(":")[0]).calendar


def session_minutes(loaded: LoadedConfig, instrument: str, end: datetime) -> int:
    """The longest session of the instrument's market in the month before `end`: what a
    feature set's warm-up is counted over (a 24/7 market's day is 1,440 minutes)."""
    calendar = market(instrument.partition(":")[0]).calendar
    if calendar == ALWAYS_OPEN:
        return DAY_MINUTES
    sessions = market_calendars(loaded).sessions(
        calendar, (end - timedelta(days=_SESSION_SAMPLE_DAYS)).date(), end.date())
    if not sessions:
        return DAY_MINUTES
    return max(math.ceil((s.close - s.open).total_seconds() / 60) for s in sessions)


def signal_bars(loaded: LoadedConfig, bot: BotSettings, request: BarRequest, *,
                source: Source = "auto", db: str | None = None,
                market_data_db: str | None = None) -> SignalBars:
    """The bars asked for from `source`; with "auto", the bar store's when it holds all
    of them, else the sandbox's (sandbox bots), else whichever found more. Fewer than
    asked are returned as found: the caller says what is missing and how to get it."""
    calendars = market_calendars(loaded)
    sessions = _sessions_back(calendars, request)
    found: list[SignalBars] = []
    if source in ("auto", "store"):
        stored = _from_store(loaded, request, sessions, db, market_data_db)
        if source == "store" or len(stored) >= request.count:
            return stored
        found.append(stored)
    if source == INVENTED or prices_invented(bot):
        found.append(_from_sandbox(loaded, calendars, request, sessions))
    return max(found, key=len)


def _sessions_back(calendars: MarketCalendars, request: BarRequest) -> list[Session]:
    """The latest sessions before `end` that hold `count` buckets of the timeframe (a few
    spare), oldest first; fewer when the calendar (or the invented prices) start later."""
    minutes = TIMEFRAMES[request.timeframe]
    end_s = request.end.timestamp()
    always = request.calendar == ALWAYS_OPEN
    days = 4 + (request.count if minutes is None else
                math.ceil(request.count * minutes / (DAY_MINUTES if always else 300)))
    days = math.ceil(days * (1 if always else 1.5))
    while True:
        first = request.end - timedelta(days=days)
        sessions = [s for s in calendars.sessions(request.calendar, first.date(),
                                                  request.end.date())
                    if s.open.timestamp() < end_s and s.open.timestamp() >= EPOCH_S]
        held, start = 0, len(sessions)
        while start > 0 and held < request.count:
            start -= 1
            held += _buckets(sessions[start], minutes, end_s)
        if held >= request.count or first.timestamp() < EPOCH_S:
            return sessions[max(start - _SPARE_SESSIONS, 0):]
        days *= 2


def _buckets(session: Session, minutes: int | None, end_s: float) -> int:
    """Complete buckets of the timeframe in the session by `end_s`."""
    open_s, close_s = session.open.timestamp(), min(session.close.timestamp(), end_s)
    if minutes is None:
        return int(session.close.timestamp() <= end_s)
    return max(0, math.floor((close_s - open_s) / (minutes * 60)))


def _from_store(loaded: LoadedConfig, request: BarRequest, sessions: Sequence[Session],
                db: str | None, market_data_db: str | None) -> SignalBars:
    from fleetkit.runtime.wiring import database_url, market_data_url
    from fleetkit.store.bars import BarStore
    from fleetkit.store.database import open_database
    from fleetkit.store.migrate import COLLECTOR_BRANCHES

    if not sessions:
        return _bars(request, [], _empty(), "bar store")
    try:
        url = market_data_url(loaded, database_url(loaded, db), market_data_db)
        database = open_database(url, branches=COLLECTOR_BRANCHES, must_exist=True,
                                 home=loaded.home, application_name="fleet-ml")
    except FleetError:  # no market-data database yet: it holds nothing
        return _bars(request, sessions, _empty(), "bar store")
    try:
        records = BarStore(database.engine).read(request.instrument, ONE_MINUTE,
                                                 sessions[0].open, request.end)
    finally:
        database.dispose()
    return _bars(request, sessions, _record_columns(records), "bar store")


def _from_sandbox(loaded: LoadedConfig, calendars: MarketCalendars, request: BarRequest,
                  sessions: Sequence[Session]) -> SignalBars:
    from fleetkit.brokers.sandbox.prices import InventedPrices

    catalog = sandbox_catalog(loaded.config)
    if request.instrument not in catalog or not sessions:
        return _bars(request, sessions, _empty(), "sandbox")
    prices = InventedPrices(loaded.config.sandbox.seed, catalog, calendars)
    end_s = request.end.timestamp()
    count = sum(math.ceil((min(s.close.timestamp(), end_s) - s.open.timestamp()) / 60)
                for s in sessions)
    minutes = prices.minute_arrays(request.instrument, sessions[0].open, count + 1)
    keep = minutes.ts_s + 60 <= end_s
    return _bars(request, sessions, BarColumns(
        ONE_MINUTE, minutes.ts_s[keep], minutes.open[keep], minutes.high[keep],
        minutes.low[keep], minutes.close[keep], minutes.volume[keep]), "sandbox")


def _bars(request: BarRequest, sessions: Sequence[Session], minutes: BarColumns,
          source: str) -> SignalBars:
    """The minutes as complete bars of the timeframe, the last `count` of them."""
    table = SessionTable.of(sessions)
    aggregated = aggregate_columns(minutes, request.timeframe, table)
    complete = aggregated.end_s <= request.end.timestamp()
    bars = aggregated.bars
    bars = BarColumns(bars.timeframe, bars.open_s[complete], bars.open[complete],
                      bars.high[complete], bars.low[complete], bars.close[complete],
                      bars.volume[complete]).tail(request.count)
    return SignalBars(request.instrument, request.timeframe, bars, list(sessions), source)


def _record_columns(records: Sequence[BarRecord]) -> BarColumns:
    def column(name: str) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
        return np.array([float(getattr(r, name)) for r in records], dtype=np.float64)

    return BarColumns(ONE_MINUTE, np.array([int(r.open_time.timestamp()) for r in records],
                                           dtype=np.int64),
                      column("open"), column("high"), column("low"), column("close"),
                      column("volume"))


def _empty() -> BarColumns:
    none = np.empty(0, dtype=np.float64)
    return BarColumns(ONE_MINUTE, np.empty(0, dtype=np.int64), none, none, none, none, none)
