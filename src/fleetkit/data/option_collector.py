"""The options collector: every minute of the session, one snapshot of the configured option
chains (each underlying's listed expiries, strikes around the money re-centred on the spot
each minute), written as one transaction into option_quotes with its ledger row.

No minute is silently skipped. The ledger (option_quote_minutes) says which minutes were
written; every minute of the session up to now that is in neither state is found at each
pass, whoever's fault it was (a kill, a restart, a database or venue outage, a minute that
took too long), recorded as missed, told once as a `data.missed_minutes` event and as a
collector gap, and then, where the venue can still serve it (the sandbox prices any past
moment; most brokers cannot), filled from the venue. A retried or filled minute never
duplicates: its ledger row and the quotes' key see to that (store/option_quotes.py).

Times: the venue stamps its quotes with the wall clock and so does the ledger; a minute's
trading day is its date in the exchange's zone. The sandbox's demo time runs a closed
market in an earlier session, `offset` behind the wall: which minutes are in session is
judged in that venue time (zero offset for a real venue).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fleetkit.core.bar_gaps import Gap
from fleetkit.core.errors import BrokerError, DatabaseUnavailableError, TransientBrokerError
from fleetkit.core.numbers import floor_minute, require_utc
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.core.option_quotes import OptionQuote
from fleetkit.core.options import OptionKind
from fleetkit.core.sessions import day_bounds
from fleetkit.data.plans import CollectorPlan, WantedChain
from fleetkit.data.ports import ChainSource, GapAlerts, SessionsOf
from fleetkit.engine.ports import Clock
from fleetkit.store.collector_stats import CollectorGap, CollectorStats
from fleetkit.store.option_quotes import OptionQuoteStore

logger = logging.getLogger("fleetkit.data.options")

MINUTE = timedelta(minutes=1)
# Filling stops this long before the next live minute's snapshot is due.
FILL_MARGIN = timedelta(seconds=5)
LOOK_BACK_DAYS = 7  # how far back a starting collector looks for days it missed
RETRY_S = 5.0  # between tries at a minute the venue did not answer for


@dataclass
class PassReport:
    """What one pass did, for logs, counters and the heartbeat."""

    written: list[tuple[datetime, int, float]] = field(default_factory=list)  # minute, rows, ms
    missed: list[datetime] = field(default_factory=list)
    filled: list[tuple[datetime, int]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    late: int = 0


class OptionCollector:
    def __init__(self, settings: CollectorPlan, source: ChainSource,
                 source_name: str, store: OptionQuoteStore, stats: CollectorStats,
                 sessions: SessionsOf, zone: ZoneInfo, clock: Clock, *,
                 offset: timedelta = timedelta(0), alerts: GapAlerts | None = None,
                 started: datetime | None = None) -> None:
        self.settings = settings
        self._source = source
        self._source_name = source_name
        self._store = store
        self._stats = stats
        self._sessions = sessions
        self._zone = zone
        self._clock = clock
        self._offset = offset
        self._alerts = alerts
        # Nothing is expected before the collector's first minute ever: a first start in
        # mid-session is a beginning, not a gap. After that, every session minute is.
        first = store.first_minute(settings.name)
        self._expected_from = first if first is not None else floor_minute(
            require_utc(started or clock.now(), what="started"))
        self._done: dict[date, set[datetime]] = {}
        self._unfillable: set[datetime] = set()  # fills the venue refused: not asked again
        self._backlog: set[date] | None = None  # earlier days still to check and fill
        self.last_written: tuple[datetime, int] | None = None

    # --- time -----------------------------------------------------------------------------

    def trading_day(self, minute: datetime) -> date:
        """The exchange's date of a (wall-clock) minute: what partitions and "today" use,
        for this collector and every reader alike."""
        return minute.astimezone(self._zone).date()

    def session_minutes(self, start: datetime, end: datetime) -> list[datetime]:
        """The wall-clock minutes in [start, end) that the market trades in (venue time),
        outside any break."""
        venue_start, venue_end = start + self._offset, end + self._offset
        minutes: list[datetime] = []
        for session in self._sessions(self.settings.market, venue_start - timedelta(days=1),
                                      venue_end + timedelta(days=1)):
            for span_start, span_end in session.trading_spans():
                moment = max(floor_minute(span_start), floor_minute(venue_start))
                while moment < min(span_end, venue_end):
                    minutes.append(moment - self._offset)
                    moment += MINUTE
        return sorted(set(minutes))

    def in_session(self, minute: datetime) -> bool:
        return bool(self.session_minutes(minute, minute + MINUTE))

    # --- one pass -------------------------------------------------------------------------

    def run_pass(self, now: datetime | None = None) -> PassReport:
        """Take the current minute if it is due and not taken, then find the minutes of
        today's session before it that are missing, record them and fill what the venue
        can still serve. Raises DatabaseUnavailableError when the ledger cannot be read
        (the next pass looks again: nothing is lost, only later)."""
        now = require_utc(now or self._clock.now(), what="now")
        report = PassReport()
        minute = floor_minute(now)
        due = minute + timedelta(seconds=self.settings.snapshot_delay_s)
        done = self._done_minutes(self.trading_day(minute))
        if now >= due and minute not in done and self.in_session(minute):
            self._take(minute, None, report, now)
        self._find_missing(minute, report, now)
        self._flush_counts(report, now)
        return report

    def _take(self, minute: datetime, at: datetime | None, report: PassReport,
              now: datetime) -> bool:
        """Snapshot `minute` (now, or at `at` for a fill) and write it; False when the
        venue gave no snapshot."""
        day = self.trading_day(minute)
        try:
            quotes = self.snapshot(at, report)
        except (BrokerError, ValueError) as exc:
            logger.warning("options %s: no snapshot for %s: %s", self.settings.name,
                           minute.isoformat(), exc)
            return False
        started = time.perf_counter()
        rows = self._store.write_minute(self.settings.name, minute, day, quotes,
                                        recorded_at=self._clock.now())
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._done_minutes(day).add(minute)
        if at is None:
            report.written.append((minute, rows, elapsed_ms))
            late_after = minute + timedelta(seconds=self.settings.late_after_s)
            if self._clock.now() > late_after:
                report.late += 1
        else:
            report.filled.append((minute, rows))
        self.last_written = (minute, len(quotes))
        return True

    def snapshot(self, at: datetime | None, report: PassReport | None = None
                 ) -> list[OptionQuote]:
        """Every configured chain at `at` (None: now) as quotes; bad quotes are left out
        and counted by reason."""
        quotes: list[OptionQuote] = []
        seen: set[str] = set()
        for chain in self._chains(at):
            for quote in _quotes_of(chain):
                reason = _problem(quote, chain.ts, self.settings.late_after_s)
                if reason is None and quote.instrument in seen:
                    reason = "duplicate"
                if reason is not None:
                    if report is not None:
                        report.rejected[reason] = report.rejected.get(reason, 0) + 1
                    continue
                seen.add(quote.instrument)
                quotes.append(self._stored(quote))
        return quotes

    def _chains(self, at: datetime | None) -> Iterator[OptionChain]:
        for wanted in self.settings.chains:
            nearest = self._source.chain(wanted.underlying, None, wanted.strikes_each_side, at)
            for expiry in _expiries(nearest, wanted):
                yield nearest if expiry == nearest.expiry else self._source.chain(
                    wanted.underlying, expiry, wanted.strikes_each_side, at)

    def _stored(self, quote: ChainQuote) -> OptionQuote:
        return OptionQuote(
            quote.instrument, quote.underlying, quote.expiry, quote.strike,
            "CE" if quote.kind is OptionKind.CALL else "PE",
            quote.bid if quote.bid > 0 else None, quote.ask if quote.ask > 0 else None,
            quote.last if quote.last > 0 else None, quote.volume, quote.open_interest,
            quote.underlying_price, quote.implied_volatility, self._source_name)

    # --- missing minutes ------------------------------------------------------------------

    def _find_missing(self, current: datetime, report: PassReport, now: datetime) -> None:
        """Record the minutes of the days being checked that the ledger does not have, and
        fill what is missing where the venue can serve it. The days checked: today, and at
        the first pass the LOOK_BACK_DAYS before it (a collector down for whole days finds
        them missing too), each until nothing of it is left to fill."""
        today = self.trading_day(current)
        if self._backlog is None:
            self._backlog = {today - timedelta(days=n) for n in range(1, LOOK_BACK_DAYS + 1)}
        to_fill: list[datetime] = []
        for day in sorted(self._backlog | {today}):
            expected = [m for m in self._day_minutes(day, current) if m >= self._expected_from]
            # Minutes neither written nor recorded missed (the ledger holds both): new gaps.
            known = self._ledger_minutes(day) if expected else set()
            self._record_missed(day, [m for m in expected if m not in known], report, now)
            done = self._done_minutes(day) if expected else set()
            pending = [m for m in expected if m not in done and m not in self._unfillable]
            if not pending or not self.settings.fill_missed:
                self._backlog.discard(day)
            to_fill.extend(pending)
        self._done = {d: m for d, m in self._done.items() if d in self._backlog or d == today}
        if self.settings.fill_missed:
            self._fill(to_fill, report, now)

    def _record_missed(self, day: date, new: list[datetime], report: PassReport,
                       now: datetime) -> None:
        for run in _runs(new):
            for minute in run:
                self._store.record_missed(self.settings.name, minute, day, recorded_at=now)
            report.missed.extend(run)
            gap = Gap(run[0], run[-1] + MINUTE)
            self._stats.record_gap(CollectorGap(self.settings.name, "", gap.start, gap.end,
                                                "no snapshot in its minute", 0), now)
            if self._alerts is not None:
                self._alerts.gap_found(f"options:{self.settings.name}", gap,
                                       self._source_name, now)
            logger.warning("options %s: %d minute(s) missed from %s", self.settings.name,
                           len(run), run[0].isoformat())

    def _fill(self, missing: list[datetime], report: PassReport, now: datetime) -> None:
        """Fill missing minutes oldest first until the next live minute draws near: a
        long outage is filled over several passes, never at the cost of a live minute."""
        filled_before = len(report.filled)
        delay = timedelta(seconds=self.settings.snapshot_delay_s)
        stop_at = floor_minute(now) + MINUTE + delay - FILL_MARGIN
        for minute in missing:
            if self._clock.now() >= stop_at:
                break
            if not self._take(minute, minute + delay, report, now):
                self._unfillable.add(minute)
        new = report.filled[filled_before:]
        if not new:
            return
        for run in _runs([m for m, _ in new]):
            # The gap row records how much of it was recovered (its start is its key; a
            # fill may cover only part of a recorded run, or several runs at once).
            for gap in self._stats.gaps(self.settings.name, since=run[0],
                                        until=run[-1] + MINUTE):
                if gap.scope:
                    continue
                covered = sum(1 for m in run if gap.started_at <= m < gap.ended_at)
                length = int((gap.ended_at - gap.started_at) / MINUTE)
                self._stats.record_gap(CollectorGap(
                    gap.collector, gap.scope, gap.started_at, gap.ended_at, gap.reason,
                    min(length, gap.filled + covered)), now)

    def _day_minutes(self, day: date, current: datetime) -> list[datetime]:
        """The session minutes of `day` before `current`."""
        start, end = (bound.astimezone(UTC) for bound in day_bounds(day, self._zone))
        return self.session_minutes(start, min(current, end))

    def _done_minutes(self, day: date) -> set[datetime]:
        if day not in self._done:
            self._done[day] = {m.minute for m in self._store.minutes(self.settings.name, day)
                               if m.status == "written"}
        return self._done[day]

    def _ledger_minutes(self, day: date) -> set[datetime]:
        return {m.minute for m in self._store.minutes(self.settings.name, day)}

    def _flush_counts(self, report: PassReport, now: datetime) -> None:
        if not (report.written or report.filled or report.missed or report.rejected):
            return
        day = self.trading_day(floor_minute(now))
        counts = {"rows": sum(r for _, r, _ in report.written) + sum(r for _, r in report.filled),
                  "minutes": len(report.written), "filled": len(report.filled),
                  "missed": len(report.missed), "late": report.late,
                  "write_count": len(report.written),
                  "write_ms_sum": round(sum(ms for _, _, ms in report.written))}
        counts |= {f"rejected.{reason}": n for reason, n in report.rejected.items()}
        self._stats.add(self.settings.name, day, counts, now)
        if report.written:
            self._stats.peak(self.settings.name, day, {"write_ms_max": round(
                max(ms for _, _, ms in report.written))}, now)

    # --- the loop -------------------------------------------------------------------------

    def follow(self, stop: threading.Event, on_pass: Callable[[PassReport], None] | None = None,
               wait: Callable[[float], object] | None = None) -> None:
        """A pass at each minute's snapshot time until `stop`: a venue or database that
        cannot answer is logged and the next pass finds what was missed."""
        pause = stop.wait if wait is None else wait
        delay = timedelta(seconds=self.settings.snapshot_delay_s)
        while not stop.is_set():
            try:
                report = self.run_pass()
            except (DatabaseUnavailableError, TransientBrokerError) as exc:
                logger.warning("options %s: pass failed, retrying: %s", self.settings.name,
                               exc)
                self._done = {}  # read the ledger again once the database is back
                pause(5.0)
                continue
            if on_pass is not None:
                on_pass(report)
            now = self._clock.now()
            minute = floor_minute(now)
            due = minute + delay
            if now >= due:
                due += MINUTE
                if self._should_retry(minute, now):
                    # The venue gave nothing this minute yet: ask again while it can still
                    # be on time, rather than give the minute up at the first refusal.
                    due = min(due, now + timedelta(seconds=RETRY_S))
            pause(max(0.0, (due - now).total_seconds()))

    def _should_retry(self, minute: datetime, now: datetime) -> bool:
        late_after = minute + timedelta(seconds=self.settings.late_after_s)
        return (now < late_after and self.in_session(minute)
                and minute not in self._done.get(self.trading_day(minute), set()))


def _expiries(nearest: OptionChain, wanted: WantedChain) -> list[date]:
    listed = list(nearest.expiries) or [nearest.expiry]
    return listed[:wanted.expiries] if wanted.expiries else listed


def _quotes_of(chain: OptionChain) -> Iterator[ChainQuote]:
    for row in chain.rows:
        yield row.call
        yield row.put


def _problem(quote: ChainQuote, snapshot_at: datetime, max_age_s: float) -> str | None:
    """Why a venue's quote is not stored as good data, or None."""
    prices = (quote.bid, quote.ask, quote.last, quote.underlying_price, quote.strike)
    if any(not p.is_finite() or p < 0 for p in prices) or quote.underlying_price <= 0 \
            or quote.strike <= 0:
        return "bad_price"
    if quote.bid > 0 and quote.ask > 0 and quote.bid > quote.ask:
        return "crossed"
    if (snapshot_at - quote.ts).total_seconds() > max_age_s:
        return "stale"
    if quote.volume < 0 or quote.open_interest < 0:
        return "bad_size"
    return None


def _runs(minutes: list[datetime]) -> list[list[datetime]]:
    """Consecutive minutes grouped, oldest first."""
    runs: list[list[datetime]] = []
    for minute in sorted(minutes):
        if runs and minute - runs[-1][-1] == MINUTE:
            runs[-1].append(minute)
        else:
            runs.append([minute])
    return runs

