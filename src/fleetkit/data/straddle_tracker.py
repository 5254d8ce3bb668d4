"""The straddle tracker: the ATM straddle of each underlying's nearest expiry, and strangles
around it, followed tick by tick over a QuoteStream and persisted in small batches.

A thin loop over the ports (ChainSource for REST, QuoteStream for ticks) and two sinks (the
snapshot store, the collector counters). It owns no socket: the stream adapter reconnects,
resubscribes and screens bad ticks; this turns good ticks into snapshots, re-centres when
spot crosses to a new strike, rolls when the nearest expiry ends, and fills each outage the
stream reports (a StreamGap) from REST, recording it as a CollectorGap.

Restart-safe without a cursor (law 1): snapshots are keyed by (tracker, underlying, width,
at) and written ON CONFLICT DO NOTHING, and a start finds the newest stored snapshot and
records the time since as an outage, filled by the REST snapshot it starts from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from fleetkit.core.errors import BrokerError, ConfigError, FleetError, TransientBrokerError
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.core.options import OptionKind, atm_strike
from fleetkit.core.straddles import (
    LegQuote,
    SnapshotSource,
    StraddleSnapshot,
    leg_iv,
    leg_strikes,
    years_to_expiry,
)
from fleetkit.core.ticks import StreamError, StreamEvent, StreamGap, Tick
from fleetkit.data.ports import ChainSource, QuoteStream
from fleetkit.store.collector_stats import CollectorGap

logger = logging.getLogger("fleetkit.data.straddles")

# Strikes fetched beyond the widest structure when re-centring: the REST spot may sit a
# strike or two from the stream's, and the new legs must be in the answer either way.
STRIKE_MARGIN = 3
# Snapshots held while the database is down, before the oldest are let go (and counted).
MAX_PENDING = 100_000


class SnapshotSink(Protocol):
    """Where snapshots go (store.straddle_snapshots.StraddleSnapshotStore)."""

    def write(self, snapshots: Sequence[StraddleSnapshot], now: datetime) -> int: ...

    def latest(self, tracker: str | None = None) -> dict[str, StraddleSnapshot]: ...


class StatsSink(Protocol):
    """Where counters and outages go (store.collector_stats.CollectorStats)."""

    def add(self, collector: str, trading_day: date, counts: Mapping[str, int],
            now: datetime) -> None: ...

    def peak(self, collector: str, trading_day: date, peaks: Mapping[str, int],
             now: datetime) -> None: ...

    def record_gap(self, gap: CollectorGap, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class TrackerOptions:
    """What to track and how often to write; StraddleTrackerSettings gives the first five."""

    name: str
    underlyings: tuple[str, ...]
    strangles: tuple[int, ...] = (1, 2)
    flush_interval_s: float = 0.25
    max_batch: int = 200
    counters_interval_s: float = 5.0
    heartbeat_interval_s: float = 10.0
    expiry_check_interval_s: float = 30.0

    @property
    def widths(self) -> tuple[int, ...]:
        return (0, *sorted(set(self.strangles) - {0}))


@dataclass
class _Book:
    """One underlying: its expiry, centre, spot and the latest price of every leg."""

    underlying: str
    spot_instrument: str
    step: Decimal
    expiry: date
    atm: Decimal
    spot: Decimal
    legs: dict[str, LegQuote] = field(default_factory=dict)
    structures: dict[int, tuple[str, str]] = field(default_factory=dict)  # width -> legs
    widths_of: dict[str, list[int]] = field(default_factory=dict)  # leg -> widths


@dataclass
class _Pending:
    snapshot: StraddleSnapshot
    received: float  # monotonic time the tick (or REST answer) that made it arrived


Clock = Callable[[], datetime]
Heartbeat = Callable[[str, int], None]  # detail, cycles


class StraddleTracker:
    """`now`: UTC wall time; `venue_offset`: added to it for the venue's own time (the
    sandbox's demo time), which is what an expiry's remaining life is measured in;
    `trading_day`: the market's trading day of a UTC time."""

    def __init__(self, options: TrackerOptions, chains: ChainSource, stream: QuoteStream,
                 snapshots: SnapshotSink, stats: StatsSink, *, now: Clock,
                 trading_day: Callable[[datetime], date],
                 venue_offset: timedelta = timedelta(0),
                 monotonic: Callable[[], float] = time.monotonic,
                 heartbeat: Heartbeat | None = None,
                 on_persisted: Callable[[Sequence[float]], None] | None = None) -> None:
        self.options = options
        self._chains = chains
        self._stream = stream
        self._snapshots = snapshots
        self._stats = stats
        self._now = now
        self._trading_day = trading_day
        self._offset = venue_offset
        self._monotonic = monotonic
        self._heartbeat = heartbeat
        self._on_persisted = on_persisted
        self.books: dict[str, _Book] = {}
        self._owner: dict[str, str] = {}  # subscribed instrument -> underlying
        self._pending: dict[tuple[str, int, datetime], _Pending] = {}
        self._counts: dict[str, int] = {}
        self._rejected_seen: dict[str, int] = {}
        self._slowest: tuple[date, int] | None = None  # this process's slowest write of a day
        self.gaps_today = 0
        self.cycles = 0
        self._database_down = False
        started = monotonic()
        self._due = {"counters": started + options.counters_interval_s,
                     "heartbeat": started, "expiry": started + options.expiry_check_interval_s}

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Start, then follow the stream until `stop` is set; flush everything on the way out."""
        self.start()
        try:
            while not stop.is_set():
                event = self._stream.receive(self._wait_s())
                if event is not None:
                    self.handle(event)
                self.housekeeping()
        finally:
            self.flush()
            self.flush_counters()
            if self._heartbeat is not None:
                self._heartbeat("stopped cleanly", self.cycles)

    def start(self) -> None:
        """Centre every underlying on its nearest expiry's REST chain and subscribe. An
        underlying the venue does not list is a ConfigError; one it cannot serve now is
        retried at the next expiry check."""
        newest = self._snapshots.latest(self.options.name)
        for underlying in self.options.underlyings:
            if underlying in self.books:
                continue
            try:
                chain = self._chain(underlying, None)
            except TransientBrokerError as exc:
                logger.warning("straddles: %s not centred yet (%s); retrying", underlying, exc)
                continue
            written = self._centre(underlying, chain)
            self._restart_gap(underlying, newest.get(underlying), chain.ts, written)

    def handle(self, event: StreamEvent) -> None:
        self.cycles += 1
        if isinstance(event, Tick):
            self._take_tick(event)
        elif isinstance(event, StreamGap):
            self._fill_gap(event)
        elif isinstance(event, StreamError):
            self._count("stream_errors")
            logger.warning("straddles: the venue refused %s: %s", event.instrument or "a request",
                           event.message)
            if event.instrument in self._owner:  # a leg gone (expired): roll at once
                self._due["expiry"] = self._monotonic()

    def housekeeping(self) -> None:
        """Whatever is due: a batch to write, counters, the expiry check, a heartbeat."""
        now = self._monotonic()
        if self._pending and (len(self._pending) >= self.options.max_batch
                              or now - self._oldest_pending() >= self.options.flush_interval_s):
            self.flush()
        if now >= self._due["counters"]:
            self.flush_counters()
            self._due["counters"] = now + self.options.counters_interval_s
        if now >= self._due["expiry"]:
            self.check_expiries()
            self._due["expiry"] = now + self.options.expiry_check_interval_s
        if now >= self._due["heartbeat"] and self._heartbeat is not None:
            self._heartbeat(self.summary(), self.cycles)
            self._due["heartbeat"] = now + self.options.heartbeat_interval_s

    # --- ticks ------------------------------------------------------------------------------

    def _take_tick(self, tick: Tick) -> None:
        underlying = self._owner.get(tick.instrument)
        book = self.books.get(underlying) if underlying else None
        if book is None:
            return  # a straggler of a leg just dropped by a re-centre
        self._count("ticks")
        received = self._monotonic()
        if tick.instrument == book.spot_instrument:
            book.spot = tick.last_price
            if atm_strike(book.spot, book.step) != book.atm:
                self._recentre(book, book.expiry, "spot crossed to a new strike")
            return
        old = book.legs.get(tick.instrument)
        if old is None:
            return
        book.legs[tick.instrument] = LegQuote(old.instrument, old.strike, old.kind, tick.bid,
                                              tick.ask, tick.last_price)
        for width in book.widths_of.get(tick.instrument, ()):
            self._emit(book, width, tick.ts, "stream", received)

    def _emit(self, book: _Book, width: int, at: datetime, source: SnapshotSource,
              received: float) -> None:
        call_key, put_key = book.structures[width]
        call, put = book.legs[call_key], book.legs[put_key]
        years = years_to_expiry(book.expiry, at + self._offset)
        snapshot = StraddleSnapshot(self.options.name, book.underlying, width, at,
                                    self._trading_day(at), book.expiry, book.atm, book.spot,
                                    call, put, leg_iv(call, book.spot, years),
                                    leg_iv(put, book.spot, years), source)
        # Two prices at one instant: the later holds both, so it replaces the earlier.
        self._pending[(book.underlying, width, at)] = _Pending(snapshot, received)

    # --- centring, re-centring, rolling -----------------------------------------------------

    def _chain(self, underlying: str, expiry: date | None) -> OptionChain:
        try:
            return self._chains.chain(underlying, expiry, max(self.options.widths)
                                      + STRIKE_MARGIN)
        except TransientBrokerError:
            raise
        except BrokerError as exc:
            if expiry is not None:
                raise
            raise ConfigError(f"market_data.straddle_tracker.underlyings: {exc} — remove "
                              f"{underlying!r} or name one the venue lists") from None

    def _centre(self, underlying: str, chain: OptionChain) -> int:
        """Follow `underlying` on `chain` (its expiry, its ATM): swap the subscriptions, take
        the legs' first prices from the chain and emit every structure ('rest'). How many
        snapshots that emitted; 0 when the chain lacks a leg (nothing changes)."""
        atm = chain.atm_strike
        quotes: dict[str, ChainQuote] = {}
        structures: dict[int, tuple[str, str]] = {}
        for width in self.options.widths:
            call_strike, put_strike = leg_strikes(atm, chain.strike_step, width)
            call_row, put_row = chain.row(call_strike), chain.row(put_strike)
            if call_row is None or put_row is None:
                logger.warning("straddles: %s chain at %s has no strike %s or %s; keeping "
                               "the old centre", underlying, atm, call_strike, put_strike)
                return 0
            structures[width] = (call_row.call.instrument, put_row.put.instrument)
            quotes[call_row.call.instrument] = call_row.call
            quotes[put_row.put.instrument] = put_row.put
        old = self.books.get(underlying)
        book = _Book(underlying, chain.spot_instrument, chain.strike_step, chain.expiry, atm,
                     chain.spot, {key: _leg(q) for key, q in quotes.items()}, structures)
        for width, legs in structures.items():
            for leg in legs:
                book.widths_of.setdefault(leg, []).append(width)
        self.books[underlying] = book
        self._swap_subscriptions(underlying, old, book)
        received = self._monotonic()
        for width in self.options.widths:
            self._emit(book, width, chain.ts, "rest", received)
        return len(self.options.widths)

    def _swap_subscriptions(self, underlying: str, old: _Book | None, new: _Book) -> None:
        wanted = {new.spot_instrument, *new.legs}
        had = {old.spot_instrument, *old.legs} if old is not None else set()
        leaving = sorted(had - wanted)
        if leaving:
            self._stream.unsubscribe(leaving)
            for key in leaving:
                self._owner.pop(key, None)
        joining = sorted(wanted - had)
        for key in joining:
            self._owner[key] = underlying
        if joining:
            self._stream.subscribe(joining, "quote")

    def _recentre(self, book: _Book, expiry: date | None, why: str) -> int:
        try:
            chain = self._chain(book.underlying, expiry)
        except BrokerError as exc:
            self._count("rest_errors")
            logger.warning("straddles: %s not re-centred (%s): %s", book.underlying, why, exc)
            return 0
        logger.info("straddles: %s %s: %s %s -> %s %s", book.underlying, why, book.expiry,
                    book.atm, chain.expiry, chain.atm_strike)
        return self._centre(book.underlying, chain)

    def check_expiries(self) -> None:
        """Roll an underlying whose expiry has ended to the nearest one listed now; centre
        one that could not be centred at start."""
        self.start()
        venue_now = self._now() + self._offset
        for book in list(self.books.values()):
            if years_to_expiry(book.expiry, venue_now) <= 0:
                self._recentre(book, None, "expiry ended, rolling")

    # --- outages ----------------------------------------------------------------------------

    def _fill_gap(self, gap: StreamGap) -> None:
        """Fill an outage from REST: the affected legs' quotes now, a 'rest' snapshot of each
        structure at the gap's end, and the outage recorded with what was filled."""
        self._count("gaps")
        for book in list(self.books.values()):
            keys = [book.spot_instrument, *book.legs]
            if gap.instruments.isdisjoint(keys):
                continue
            reason = "quote stream dropped"
            filled = 0
            try:
                quotes = self._chains.option_quotes(list(book.legs))
            except BrokerError as exc:
                self._count("rest_errors")
                reason = f"quote stream dropped; REST fill failed: {exc}"
            else:
                filled = self._take_rest_quotes(book, quotes, gap.end)
            self._record_gap(CollectorGap(self.options.name, book.underlying, gap.start,
                                          gap.end, reason, filled))

    def _take_rest_quotes(self, book: _Book, quotes: Mapping[str, ChainQuote],
                          at: datetime) -> int:
        for key, quote in quotes.items():
            if key in book.legs:
                book.legs[key] = _leg(quote)
                book.spot = quote.underlying_price
        if atm_strike(book.spot, book.step) != book.atm:
            return self._recentre(book, book.expiry, "spot crossed during the outage")
        received = self._monotonic()
        for width in self.options.widths:
            self._emit(book, width, at, "rest", received)
        return len(self.options.widths)

    def _restart_gap(self, underlying: str, newest: StraddleSnapshot | None, now: datetime,
                     filled: int) -> None:
        """The time since this tracker's newest snapshot of today is an outage (a kill, a
        crash): recorded, filled by the REST snapshot the start wrote."""
        if newest is None or newest.trading_day != self._trading_day(now) or newest.at >= now:
            return  # a new day: the market-hours service starts it at the open
        self._record_gap(CollectorGap(self.options.name, underlying, newest.at, now,
                                      "tracker not running", filled))

    def _record_gap(self, gap: CollectorGap) -> None:
        self.gaps_today += 1
        try:
            self._stats.record_gap(gap, self._now())
        except FleetError as exc:
            logger.warning("straddles: outage of %s not recorded (%s)", gap.scope, exc)

    # --- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what is pending in one transaction; on a database outage keep it for the
        next try (up to MAX_PENDING, then the oldest go, counted as "dropped")."""
        if not self._pending:
            return
        batch = list(self._pending.values())
        started = self._monotonic()
        try:
            written = self._snapshots.write([p.snapshot for p in batch], self._now())
        except FleetError as exc:
            if not self._database_down:
                logger.warning("straddles: snapshots not written, will retry: %s", exc)
            self._database_down = True
            self._shed()
            return
        committed = self._monotonic()
        if self._database_down:
            logger.info("straddles: snapshots written again")
            self._database_down = False
        self._pending.clear()
        elapsed_ms = round((committed - started) * 1000)
        self._count("snapshots", written)
        self._count("write_ms_sum", elapsed_ms)
        self._count("write_count")
        day = self._trading_day(self._now())
        if self._slowest is None or self._slowest[0] != day or self._slowest[1] < elapsed_ms:
            self._slowest = (day, elapsed_ms)
        if self._on_persisted is not None:
            self._on_persisted([committed - p.received for p in batch])

    def _shed(self) -> None:
        over = len(self._pending) - MAX_PENDING
        if over > 0:
            for key in list(self._pending)[:over]:
                del self._pending[key]
            self._count("dropped", over)

    def flush_counters(self) -> None:
        """Add what was counted since the last flush to today's counters, and raise the
        day's slowest write (write_ms_max, a maximum: CollectorStats.peak keeps the
        highest any process reported, where add would sum them)."""
        day = self._trading_day(self._now())
        for reason, total in self._stream.rejected().items():
            self._count(f"rejected.{reason}", total - self._rejected_seen.get(reason, 0))
            self._rejected_seen[reason] = total
        try:
            self._stats.add(self.options.name, day, self._counts, self._now())
            self._counts.clear()
            if self._slowest is not None:
                slowest_day, slowest_ms = self._slowest
                self._stats.peak(self.options.name, slowest_day, {"write_ms_max": slowest_ms},
                                 self._now())
        except FleetError as exc:
            logger.warning("straddles: counters not written, will retry: %s", exc)

    # --- reporting --------------------------------------------------------------------------

    def summary(self) -> str:
        """The heartbeat's detail: "NIFTY 24000 straddle 312.40 · 3 underlyings · 0 gaps today"."""
        first = next(iter(self.books.values()), None)
        head = "not centred yet"
        if first is not None:
            call_key, put_key = first.structures[0]
            call, put = first.legs[call_key].mark, first.legs[put_key].mark
            premium = f"{call + put:.2f}" if call is not None and put is not None else "-"
            head = f"{first.underlying} {first.atm} straddle {premium}"
        count = len(self.books)
        return (f"{head} · {count} underlying{'' if count == 1 else 's'} · "
                f"{self.gaps_today} gap{'' if self.gaps_today == 1 else 's'} today")

    def _count(self, name: str, value: int = 1) -> None:
        if value:
            self._counts[name] = self._counts.get(name, 0) + value

    def _oldest_pending(self) -> float:
        return min(p.received for p in self._pending.values())

    def _wait_s(self) -> float:
        """How long to wait for the next event: until the batch is due, at most 0.5 s."""
        if not self._pending:
            return 0.5
        due = self._oldest_pending() + self.options.flush_interval_s - self._monotonic()
        return min(max(due, 0.0), 0.5)


def _leg(quote: ChainQuote) -> LegQuote:
    kind = OptionKind(quote.kind)
    return LegQuote(quote.instrument, quote.strike, kind, quote.bid, quote.ask, quote.last)
