"""Bar history as recorded: exact OHLCV bars, timeframes, and aggregation on session bounds.

A recorded bar keeps the venue's prices exactly (Decimal), unlike `market_data.Bar`, whose
floats serve indicator math. Higher timeframes are built from one-minute bars on the
exchange's own session boundaries, not the clock's:

    1d        one bar per session: NSE 09:15-15:30 IST; a 24/7 market's UTC day
    5m .. 4h  buckets anchored at the session open (NSE's 1h bars open 09:15, 10:15 ...,
              and the last, 15:15, is a quarter-hour long: cut at the close)

So every timeframe's buckets nest inside the next one's (4h inside 1d, 5m inside 15m), and
aggregating aggregates gives the same bars as aggregating the minutes directly. A break
inside a session (Tokyo's lunch) does not re-anchor the buckets: a bucket across it simply
holds fewer minutes. Bars outside every session belong to no bucket and are left out.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from fleetkit.core.numbers import require_utc
from fleetkit.core.sessions import Session

ONE_MINUTE = "1m"
DAILY = "1d"
# Name -> length in minutes; None for the session bar (its length is the session's).
TIMEFRAMES: dict[str, int | None] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240,
                                     "1d": None}


def check_timeframe(name: str) -> str:
    if name not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {name!r}; use one of {', '.join(TIMEFRAMES)}")
    return name


@dataclass(frozen=True, slots=True)
class BarRecord:
    """One bar of one instrument and timeframe; `open_time` is its start, tz-aware UTC."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def __post_init__(self) -> None:
        require_utc(self.open_time, what="bar open time")
        prices = (self.open, self.high, self.low, self.close)
        if not all(p.is_finite() and p > 0 for p in prices):
            raise ValueError(f"bar at {self.open_time.isoformat()}: prices must be positive "
                             f"numbers, got {', '.join(map(str, prices))}")
        if not self.volume.is_finite() or self.volume < 0:
            raise ValueError(f"bar at {self.open_time.isoformat()}: volume must be a "
                             f"non-negative number, got {self.volume}")
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(f"bar at {self.open_time.isoformat()}: open and close must lie "
                             f"within low {self.low} and high {self.high}")

    @classmethod
    def from_floats(cls, open_time: datetime, open_: float, high: float, low: float,
                    close: float, volume: float) -> BarRecord:
        """From a venue's float bar: each float read as its shortest decimal text, which is
        what the venue sent (a price on a tick grid prints as that tick, not 0.1000000001)."""
        for value in (open_, high, low, close, volume):
            if not math.isfinite(value):
                raise ValueError(f"bar at {open_time.isoformat()}: {value} is not a number")
        return cls(open_time, Decimal(repr(open_)), Decimal(repr(high)), Decimal(repr(low)),
                   Decimal(repr(close)), Decimal(repr(volume)))


def bucket_start(moment: datetime, session: Session, timeframe: str) -> datetime:
    """The start of the `timeframe` bucket of `session` that holds `moment`."""
    minutes = TIMEFRAMES[check_timeframe(timeframe)]
    if minutes is None:
        return session.open
    step = timedelta(minutes=minutes)
    return session.open + ((moment - session.open) // step) * step


class SessionIndex:
    """Sessions sorted by open, answering "which session holds this moment" by bisection."""

    __slots__ = ("_opens", "_sessions")

    def __init__(self, sessions: Iterable[Session]) -> None:
        self._sessions = sorted(sessions, key=lambda s: s.open)
        self._opens = [s.open for s in self._sessions]

    def holding(self, moment: datetime) -> Session | None:
        i = bisect_right(self._opens, moment) - 1
        if i >= 0 and moment < self._sessions[i].close:
            return self._sessions[i]
        return None


def aggregate(bars: Iterable[BarRecord], timeframe: str,
              sessions: Iterable[Session]) -> list[BarRecord]:
    """`bars` (oldest first, of one instrument, any finer timeframe whose buckets nest in
    `timeframe`'s) as `timeframe` bars on the sessions' boundaries, oldest first. A bucket
    is as many bars as were recorded for it: missing minutes make it thinner, not absent
    (`bar_gaps.find_gaps` reports them)."""
    check_timeframe(timeframe)
    index = SessionIndex(sessions)
    return [_combine(start, group) for start, group in _buckets(bars, timeframe, index)]


def _buckets(bars: Iterable[BarRecord], timeframe: str, index: SessionIndex
             ) -> Iterator[tuple[datetime, list[BarRecord]]]:
    current: datetime | None = None
    group: list[BarRecord] = []
    for bar in bars:
        session = index.holding(bar.open_time)
        if session is None:
            continue
        start = bucket_start(bar.open_time, session, timeframe)
        if start != current:
            if group and current is not None:
                yield current, group
            current, group = start, []
        group.append(bar)
    if group and current is not None:
        yield current, group


def _combine(start: datetime, group: Sequence[BarRecord]) -> BarRecord:
    return BarRecord(start, group[0].open, max(b.high for b in group),
                     min(b.low for b in group), group[-1].close,
                     sum((b.volume for b in group), Decimal(0)))
