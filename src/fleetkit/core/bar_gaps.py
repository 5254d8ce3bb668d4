"""Gaps in a one-minute bar history, judged against the market's sessions.

A minute is expected when the market trades in it (inside a session, outside its break) and
it has closed by `now`. A missing expected minute is a gap; a holiday or a weekend has no
session, so it expects nothing and can hold no gap. Runs of missing minutes are reported
as one gap each, so a venue outage of an hour is one line, not sixty.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetkit.core.numbers import ceil_minute, require_utc
from fleetkit.core.sessions import Session

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing minutes [start, end): `end` is the first minute present again (or the end of
    the trading stretch, or of the range asked about)."""

    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        return int((self.end - self.start) / MINUTE)

    def as_json(self) -> dict[str, object]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "minutes": self.minutes}


def expected_minutes(sessions: Iterable[Session], start: datetime, end: datetime
                     ) -> Iterator[datetime]:
    """Each minute the market trades in, within [start, end), oldest first."""
    start, end = require_utc(start, what="start"), require_utc(end, what="end")
    for session in sorted(sessions, key=lambda s: s.open):
        for span_start, span_end in session.trading_spans():
            minute = ceil_minute(max(span_start, start))
            stop = min(span_end, end)
            while minute < stop:
                yield minute
                minute += MINUTE


def find_gaps(present: Collection[datetime], sessions: Iterable[Session], start: datetime,
              end: datetime) -> list[Gap]:
    """Runs of expected minutes in [start, end) with no bar in `present` (bar open times);
    `end` should be no later than the last closed minute, or the forming one counts."""
    gaps: list[Gap] = []
    run_start: datetime | None = None
    previous: datetime | None = None
    for minute in expected_minutes(sessions, start, end):
        if minute in present:
            if run_start is not None and previous is not None:
                gaps.append(Gap(run_start, previous + MINUTE))
            run_start = None
        elif run_start is None or previous is None or minute != previous + MINUTE:
            # A new run; one broken by a session's close or break ends where the trading did.
            if run_start is not None and previous is not None:
                gaps.append(Gap(run_start, previous + MINUTE))
            run_start = minute
        previous = minute
    if run_start is not None and previous is not None:
        gaps.append(Gap(run_start, previous + MINUTE))
    return gaps
