"""The bar recorder: backfill each instrument's one-minute history from its venue, then keep
writing each bar as it closes. A thin loop over the venue port and the bar store.

Resumable without a cursor of its own (law 1): the newest stored bar is where it goes on,
history is fetched and written a chunk per transaction (a kill loses at most the chunk in
flight, and the rerun fetches it again), and the store ignores bars it has already (the
key is unique, ON CONFLICT DO NOTHING), so overlapping runs never duplicate.

Given the market's sessions, each pass judges the minutes it asked for against them: a
minute inside a session that the venue did not serve (or served as a bad bar) is a gap,
told once through the GapAlerts port (a `data.gap` event), however many passes see it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetkit.core.bar_gaps import Gap, find_gaps
from fleetkit.core.bars import ONE_MINUTE, BarRecord
from fleetkit.core.errors import DatabaseUnavailableError, TransientBrokerError
from fleetkit.core.market_data import Bar
from fleetkit.core.numbers import ceil_minute, floor_minute, require_utc
from fleetkit.data.ports import BarSource, GapAlerts, SessionsOf
from fleetkit.engine.ports import Clock
from fleetkit.store.bars import BarStore

logger = logging.getLogger("fleetkit.data")

MINUTE = timedelta(minutes=1)
DEFAULT_LOOKBACK = timedelta(days=7)
# A day of minutes per request and per transaction: two ccxt pages of 1,000 candles, and
# small enough that a kill mid-backfill costs little to fetch again.
DEFAULT_CHUNK = timedelta(days=1)
# Wait this long after a minute closes before asking for its bar: venues publish a closed
# candle a moment after the boundary.
SETTLE = timedelta(seconds=2)
# Missing minutes at the end of a pass are asked for again by the next one (it resumes
# after the newest stored bar), so they are a gap only once the venue is this late with
# them: a candle published a moment after SETTLE is not worth waking anyone for.
LATE_AFTER = timedelta(minutes=2)



@dataclass(frozen=True, slots=True)
class Feed:
    """One instrument ("NSE:INFY") and the venue its history comes from."""

    instrument: str
    source: BarSource

    @property
    def market(self) -> str:
        return self.instrument.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Catchup:
    """What one pass over one instrument did."""

    instrument: str
    source: str
    start: datetime  # the first minute asked for
    end: datetime  # the venue's last closed minute boundary
    fetched: int
    inserted: int
    rejected: int
    last: datetime | None  # the newest stored bar after the pass
    gaps: tuple[Gap, ...] = ()  # missing minutes in [start, end) (empty without sessions)

    def as_json(self) -> dict[str, object]:
        return {"instrument": self.instrument, "source": self.source,
                "from": self.start.isoformat(), "to": self.end.isoformat(),
                "fetched": self.fetched, "inserted": self.inserted, "rejected": self.rejected,
                "last": self.last.isoformat() if self.last else None,
                "gaps": [g.as_json() for g in self.gaps]}


class BarRecorder:
    def __init__(self, store: BarStore, clock: Clock, *, lookback: timedelta = DEFAULT_LOOKBACK,
                 chunk: timedelta = DEFAULT_CHUNK, sessions: SessionsOf | None = None,
                 alerts: GapAlerts | None = None) -> None:
        """Without `sessions` no gaps are judged (and `alerts` is never called)."""
        if lookback <= timedelta(0) or chunk < MINUTE:
            raise ValueError("lookback must be positive and chunk at least a minute")
        self._store = store
        self._clock = clock
        self._lookback = lookback
        self._chunk = chunk
        self._sessions = sessions
        self._alerts = alerts

    def catch_up(self, feed: Feed, since: datetime | None = None,
                 until: datetime | None = None) -> Catchup:
        """Fetch and store every closed minute from the newest stored bar (or `since`, or
        the lookback when nothing is stored) up to the venue's now (or `until`)."""
        end = floor_minute(feed.source.now(feed.market))
        if until is not None:
            end = min(end, floor_minute(require_utc(until, what="until")))
        start = self._start(feed, end, since)
        fetched = inserted = rejected = 0
        window = start
        while window < end:
            stop = min(window + self._chunk, end)
            bars = feed.source.minute_bars(feed.instrument, window, stop)
            records, refused = to_records(feed.instrument, bars, window, stop)
            fetched += len(bars)
            rejected += refused
            inserted += self._store.write(feed.instrument, ONE_MINUTE, records,
                                          source=feed.source.name,
                                          recorded_at=self._clock.now())
            window = stop
        last = self._store.last_open_time(feed.instrument, ONE_MINUTE)
        return Catchup(feed.instrument, feed.source.name, start, end, fetched, inserted,
                       rejected, last, self._judge(feed, start, end, last))

    def _judge(self, feed: Feed, start: datetime, end: datetime, last: datetime | None
               ) -> tuple[Gap, ...]:
        """The gaps in what this pass asked for, each told once."""
        if self._sessions is None or start >= end:
            return ()
        present = self._store.open_times(feed.instrument, ONE_MINUTE, start, end)
        gaps = tuple(g for g in find_gaps(present, self._sessions(feed.market, start, end),
                                          start, end)
                     if not _pending(g, last, end))
        if self._alerts is None:
            return gaps
        now = self._clock.now()
        for gap in gaps:
            try:
                told = self._alerts.gap_found(feed.instrument, gap, feed.source.name, now)
            except DatabaseUnavailableError as exc:
                # The bars are stored and `fleet data gaps` still shows the hole; a lost
                # alert must not stop the recording.
                logger.warning("%s: gap %s..%s not alerted: %s", feed.instrument,
                               gap.start.isoformat(), gap.end.isoformat(), exc)
                continue
            if told:
                logger.warning("%s: %d minute(s) missing from %s (%s served none)",
                               feed.instrument, gap.minutes, gap.start.isoformat(),
                               feed.source.name)
        return gaps

    def _start(self, feed: Feed, end: datetime, since: datetime | None) -> datetime:
        if since is not None:
            return ceil_minute(require_utc(since, what="since"))
        last = self._store.last_open_time(feed.instrument, ONE_MINUTE)
        return last + MINUTE if last is not None else floor_minute(end - self._lookback)

    def follow(self, feeds: Sequence[Feed], stop: threading.Event,
               on_pass: Callable[[Catchup], None] | None = None,
               wait: Callable[[float], object] | None = None) -> None:
        """Catch every feed up, then again after each minute closes, until `stop` is set.
        A venue or database that cannot answer is logged and asked again next minute: the
        next pass resumes from the newest stored bar, so nothing in between is lost.
        `wait(seconds)` sleeps until the next pass (default: on `stop`, so a stop is prompt;
        tests on a manual clock pass one that returns at once)."""
        pause = stop.wait if wait is None else wait
        while not stop.is_set():
            for feed in feeds:
                if stop.is_set():
                    return
                try:
                    done = self.catch_up(feed)
                except (TransientBrokerError, DatabaseUnavailableError) as exc:
                    logger.warning("bars of %s not recorded this minute: %s",
                                   feed.instrument, exc)
                    continue
                if on_pass is not None:
                    on_pass(done)
            now = self._clock.now()
            pause((floor_minute(now) + MINUTE + SETTLE - now).total_seconds())


def _pending(gap: Gap, last: datetime | None, end: datetime) -> bool:
    """A run of missing minutes after the newest stored bar that is not yet LATE_AFTER old:
    the next pass asks for it again."""
    return (last is None or gap.start > last) and end - gap.start < LATE_AFTER


def to_records(instrument: str, bars: Sequence[Bar], start: datetime, end: datetime
               ) -> tuple[list[BarRecord], int]:
    """The venue's bars as records, and how many were refused: outside [start, end), off
    the minute, repeated, or not a bar at all (NaN, crossed high and low). A bad bar is
    logged and never stored as good data; the minute then shows as a gap."""
    records: list[BarRecord] = []
    refused = 0
    previous: datetime | None = None
    for bar in bars:
        ts = bar.ts
        if not start <= ts < end or ts != floor_minute(ts) or (
                previous is not None and ts <= previous):
            refused += 1
            logger.warning("%s: bar at %s refused (outside %s..%s, off the minute or out of "
                           "order)", instrument, ts.isoformat(), start.isoformat(),
                           end.isoformat())
            continue
        try:
            records.append(BarRecord.from_floats(ts, bar.open, bar.high, bar.low, bar.close,
                                                 bar.volume))
        except ValueError as exc:
            refused += 1
            logger.warning("%s: bar refused: %s", instrument, exc)
            continue
        previous = ts
    return records, refused
