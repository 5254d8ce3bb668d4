"""Trading sessions as plain data, and the pure questions asked of them.

Where sessions come from (pandas_market_calendars, an override file, 24/7) is an adapter's
business; this module only answers "is it open at t, and when does that change".
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from itertools import pairwise

from fleetkit.core.numbers import require_utc


@dataclass(frozen=True, slots=True)
class Session:
    """One trading session in UTC, optionally with a midday break (Tokyo has one)."""

    open: datetime
    close: datetime
    break_start: datetime | None = None
    break_end: datetime | None = None

    def __post_init__(self) -> None:
        require_utc(self.open, what="session open")
        require_utc(self.close, what="session close")
        if self.close <= self.open:
            raise ValueError(f"session closes ({self.close}) before it opens ({self.open})")
        if (self.break_start is None) != (self.break_end is None):
            raise ValueError("a session break needs both a start and an end")
        if self.break_start is not None and self.break_end is not None and not (
            self.open < self.break_start < self.break_end < self.close
        ):
            raise ValueError("a session break must lie inside the session")

    def is_open(self, moment: datetime) -> bool:
        if not self.open <= moment < self.close:
            return False
        if self.break_start is not None and self.break_end is not None:
            return not self.break_start <= moment < self.break_end
        return True

    def shifted(self, delta: timedelta) -> Session:
        """The same session `delta` later: a demo venue's session as the wall clock sees
        it (venue time = wall time + offset, so the wall sees it `-offset` later)."""
        return Session(self.open + delta, self.close + delta,
                       None if self.break_start is None else self.break_start + delta,
                       None if self.break_end is None else self.break_end + delta)

    def trading_spans(self) -> tuple[tuple[datetime, datetime], ...]:
        """The continuous stretches of trading: one, or two around a break."""
        if self.break_start is None or self.break_end is None:
            return ((self.open, self.close),)
        return ((self.open, self.break_start), (self.break_end, self.close))


class SessionSchedule:
    """Sessions sorted by open time, answering open/next-open/next-close by bisection.

    Covers [first open, last close]; asking about a time outside that range raises, so a
    schedule that ran out (a calendar with no data yet) fails loudly instead of guessing.
    """

    __slots__ = ("_opens", "_spans")

    def __init__(self, sessions: Sequence[Session]) -> None:
        ordered = sorted(sessions, key=lambda s: s.open)
        spans: list[tuple[datetime, datetime]] = []
        for session in ordered:
            spans.extend(session.trading_spans())
        for (_, prev_close), (next_open, _) in pairwise(spans):
            if next_open < prev_close:
                raise ValueError(f"sessions overlap at {next_open.isoformat()}")
        self._spans = spans
        self._opens = [start for start, _ in spans]

    @property
    def spans(self) -> Sequence[tuple[datetime, datetime]]:
        return self._spans

    def covers(self, moment: datetime) -> bool:
        return bool(self._spans) and self._spans[0][0] <= moment <= self._spans[-1][1]

    def _index(self, moment: datetime) -> int:
        """Index of the last span starting at or before `moment` (-1 if none)."""
        if not self._spans:
            raise LookupError("the session schedule is empty")
        return bisect_right(self._opens, moment) - 1

    def is_open(self, moment: datetime) -> bool:
        i = self._index(moment)
        return i >= 0 and moment < self._spans[i][1]

    def span_at(self, moment: datetime) -> tuple[datetime, datetime] | None:
        i = self._index(moment)
        if i >= 0 and moment < self._spans[i][1]:
            return self._spans[i]
        return None

    def next_open(self, moment: datetime) -> datetime | None:
        """First span start strictly after `moment`; None past the schedule's end."""
        i = self._index(moment) + 1
        return self._spans[i][0] if i < len(self._spans) else None

    def next_close(self, moment: datetime) -> datetime | None:
        """End of the span containing `moment`, or of the next one."""
        i = self._index(moment)
        if i >= 0 and moment < self._spans[i][1]:
            return self._spans[i][1]
        return self._spans[i + 1][1] if i + 1 < len(self._spans) else None

    def last_close(self, moment: datetime) -> datetime | None:
        """End of the most recent span that closed at or before `moment`."""
        i = self._index(moment)
        if i < 0:
            return None
        if moment >= self._spans[i][1]:
            return self._spans[i][1]
        return self._spans[i - 1][1] if i >= 1 else None


def day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of `day` in `zone` (a market's zone)."""
    return (datetime.combine(day, time(), zone),
            datetime.combine(day + timedelta(days=1), time(), zone))
