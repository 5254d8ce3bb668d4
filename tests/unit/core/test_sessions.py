"""Trading sessions: validation, and open/next-open/next-close answered across breaks and gaps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.sessions import Session, SessionSchedule

PROPERTY = settings(max_examples=200, deadline=None, database=None)
BASE = datetime(2026, 3, 9, tzinfo=UTC)
Span = tuple[datetime, datetime]


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def tokyo_day(day: int) -> Session:
    """A Tokyo-like session: 00:00-06:30 UTC with lunch 02:30-03:30, `day` days after BASE."""
    start = day * 24 * 60
    return Session(at(start), at(start + 390), break_start=at(start + 150),
                   break_end=at(start + 210))


def new_york_day(day: int) -> Session:
    start = day * 24 * 60
    return Session(at(start + 870), at(start + 1260))  # 14:30-21:00 UTC


# --- Session ------------------------------------------------------------------------------


def test_session_is_open_between_open_and_close_but_not_at_close() -> None:
    session = new_york_day(0)
    assert not session.is_open(at(869))
    assert session.is_open(at(870))
    assert session.is_open(at(1259))
    assert not session.is_open(at(1260))


def test_session_is_closed_during_its_break_and_reopens_at_break_end() -> None:
    session = tokyo_day(0)
    assert session.is_open(at(149))
    assert not session.is_open(at(150))
    assert not session.is_open(at(209))
    assert session.is_open(at(210))
    assert session.trading_spans() == ((at(0), at(150)), (at(210), at(390)))


def test_session_without_a_break_is_one_span() -> None:
    assert new_york_day(0).trading_spans() == ((at(870), at(1260)),)


@pytest.mark.parametrize("close_minute", [0, -5])
def test_session_must_close_after_it_opens(close_minute: int) -> None:
    with pytest.raises(ValueError, match="before it opens"):
        Session(at(0), at(close_minute))


@pytest.mark.parametrize(("break_start", "break_end"), [
    (0, 30),     # starts at the open
    (-10, 30),   # starts before the open
    (300, 390),  # ends at the close
    (300, 400),  # ends after the close
    (60, 60),    # empty
    (90, 60),    # backwards
])
def test_session_break_must_lie_inside_the_session(break_start: int, break_end: int) -> None:
    with pytest.raises(ValueError, match="a session break must lie inside the session"):
        Session(at(0), at(390), break_start=at(break_start), break_end=at(break_end))


def test_session_break_needs_both_ends() -> None:
    with pytest.raises(ValueError, match="needs both a start and an end"):
        Session(at(0), at(390), break_start=at(150))
    with pytest.raises(ValueError, match="needs both a start and an end"):
        Session(at(0), at(390), break_end=at(210))


def test_session_refuses_a_naive_open() -> None:
    naive = datetime(2026, 3, 9, 0, 0)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="session open must be timezone-aware"):
        Session(naive, at(390))


def test_session_refuses_a_naive_close() -> None:
    naive = datetime(2026, 3, 9, 6, 30)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="session close must be timezone-aware"):
        Session(at(0), naive)


def test_session_accepts_any_aware_timezone() -> None:
    tokyo = timezone(timedelta(hours=9))
    session = Session(datetime(2026, 3, 9, 9, 0, tzinfo=tokyo),
                      datetime(2026, 3, 9, 15, 30, tzinfo=tokyo))
    assert session.is_open(at(60))


# --- SessionSchedule by example ---------------------------------------------------------


@pytest.fixture
def tokyo_week() -> SessionSchedule:
    # Given out of order on purpose: the schedule sorts them.
    return SessionSchedule([tokyo_day(2), tokyo_day(0), tokyo_day(1)])


def test_schedule_is_open_in_the_morning_closed_at_lunch(tokyo_week: SessionSchedule) -> None:
    assert tokyo_week.is_open(at(60))
    assert not tokyo_week.is_open(at(180))
    assert tokyo_week.is_open(at(300))


def test_schedule_during_lunch_next_opens_at_break_end(tokyo_week: SessionSchedule) -> None:
    assert tokyo_week.next_open(at(180)) == at(210)
    assert tokyo_week.next_close(at(180)) == at(390)
    assert tokyo_week.last_close(at(180)) == at(150)
    assert tokyo_week.span_at(at(180)) is None


def test_schedule_in_the_morning_next_closes_at_lunch(tokyo_week: SessionSchedule) -> None:
    assert tokyo_week.next_close(at(60)) == at(150)
    assert tokyo_week.span_at(at(60)) == (at(0), at(150))
    assert tokyo_week.last_close(at(60)) is None


def test_schedule_overnight_next_opens_the_next_day(tokyo_week: SessionSchedule) -> None:
    overnight = at(12 * 60)
    assert not tokyo_week.is_open(overnight)
    assert tokyo_week.next_open(overnight) == at(24 * 60)
    assert tokyo_week.next_close(overnight) == at(24 * 60 + 150)
    assert tokyo_week.last_close(overnight) == at(390)


def test_schedule_past_its_end_has_no_next_open_or_close(tokyo_week: SessionSchedule) -> None:
    late = at(3 * 24 * 60)
    assert not tokyo_week.is_open(late)
    assert tokyo_week.next_open(late) is None
    assert tokyo_week.next_close(late) is None
    assert tokyo_week.last_close(late) == at(2 * 24 * 60 + 390)


def test_schedule_before_its_start_is_closed(tokyo_week: SessionSchedule) -> None:
    early = at(-60)
    assert not tokyo_week.is_open(early)
    assert tokyo_week.next_open(early) == at(0)
    assert tokyo_week.last_close(early) is None


def test_schedule_covers_first_open_to_last_close(tokyo_week: SessionSchedule) -> None:
    assert tokyo_week.covers(at(0))
    assert tokyo_week.covers(at(2 * 24 * 60 + 390))
    assert not tokyo_week.covers(at(-1))
    assert not tokyo_week.covers(at(2 * 24 * 60 + 391))


def test_schedule_spans_list_both_halves_of_each_session(tokyo_week: SessionSchedule) -> None:
    assert len(tokyo_week.spans) == 6
    assert tokyo_week.spans[:2] == [(at(0), at(150)), (at(210), at(390))]


def test_back_to_back_sessions_are_open_at_the_handover() -> None:
    schedule = SessionSchedule([Session(at(0), at(60)), Session(at(60), at(120))])
    assert schedule.is_open(at(60))
    assert schedule.span_at(at(60)) == (at(60), at(120))
    assert schedule.last_close(at(60)) == at(60)


def test_empty_schedule_fails_loudly() -> None:
    schedule = SessionSchedule([])
    assert not schedule.covers(at(0))
    with pytest.raises(LookupError, match="the session schedule is empty"):
        schedule.is_open(at(0))
    with pytest.raises(LookupError):
        schedule.next_open(at(0))


def test_overlapping_sessions_are_refused() -> None:
    with pytest.raises(ValueError, match="sessions overlap at"):
        SessionSchedule([Session(at(0), at(60)), Session(at(30), at(90))])


def test_session_inside_another_sessions_break_is_refused() -> None:
    with pytest.raises(ValueError, match="sessions overlap"):
        SessionSchedule([tokyo_day(0), Session(at(160), at(200))])


# --- SessionSchedule against a brute-force scan ------------------------------------------


@dataclass(frozen=True)
class RawSession:
    """Minutes from BASE: open, close and an optional break."""

    open: int
    close: int
    breaks: tuple[int, int] | None

    def spans(self) -> list[tuple[int, int]]:
        if self.breaks is None:
            return [(self.open, self.close)]
        return [(self.open, self.breaks[0]), (self.breaks[1], self.close)]

    def session(self) -> Session:
        if self.breaks is None:
            return Session(at(self.open), at(self.close))
        return Session(at(self.open), at(self.close), at(self.breaks[0]), at(self.breaks[1]))


@st.composite
def raw_schedules(draw: st.DrawFn) -> list[RawSession]:
    """Sorted, non-overlapping sessions; gaps may be zero (back to back)."""
    cursor = draw(st.integers(0, 100))
    out = []
    for _ in range(draw(st.integers(1, 6))):
        cursor += draw(st.integers(0, 300))
        length = draw(st.integers(1, 600))
        breaks = None
        if length >= 3 and draw(st.booleans()):
            start = draw(st.integers(1, length - 2))
            end = draw(st.integers(start + 1, length - 1))
            breaks = (cursor + start, cursor + end)
        out.append(RawSession(cursor, cursor + length, breaks))
        cursor += length
    return out


@st.composite
def schedules_and_moments(draw: st.DrawFn) -> tuple[list[RawSession], list[float]]:
    raw = draw(raw_schedules())
    edges = sorted({m for r in raw for span in r.spans() for m in span})
    near_edges = st.sampled_from(edges).flatmap(
        lambda m: st.sampled_from([m - 1 / 60, m, m + 1 / 60]))
    anywhere = st.floats(min_value=edges[0] - 60, max_value=edges[-1] + 60,
                         allow_nan=False).map(lambda m: round(m * 60) / 60)
    moments = draw(st.lists(st.one_of(near_edges, anywhere), min_size=1, max_size=20))
    return raw, moments


def brute_spans(raw: list[RawSession]) -> list[Span]:
    return [(at(a), at(b)) for r in raw for a, b in r.spans()]


@given(schedules_and_moments())
@PROPERTY
def test_schedule_answers_agree_with_a_brute_force_scan(
        case: tuple[list[RawSession], list[float]]) -> None:
    raw, minutes = case
    schedule = SessionSchedule([r.session() for r in reversed(raw)])
    spans = brute_spans(raw)
    for minute in minutes:
        t = at(minute)
        containing = [s for s in spans if s[0] <= t < s[1]]
        later = [s for s in spans if s[0] > t]
        closed_by_now = [end for _, end in spans if end <= t]
        assert schedule.is_open(t) == bool(containing)
        assert schedule.is_open(t) == any(r.session().is_open(t) for r in raw)
        assert schedule.span_at(t) == (containing[-1] if containing else None)
        assert schedule.next_open(t) == (later[0][0] if later else None)
        expected_close = containing[-1][1] if containing else (later[0][1] if later else None)
        assert schedule.next_close(t) == expected_close
        assert schedule.last_close(t) == (max(closed_by_now) if closed_by_now else None)


@given(raw_schedules())
@PROPERTY
def test_schedule_spans_are_sorted_and_never_overlap(raw: list[RawSession]) -> None:
    spans = SessionSchedule([r.session() for r in raw]).spans
    assert list(spans) == brute_spans(raw)
    assert all(a[1] <= b[0] for a, b in pairwise(spans))


@given(raw_schedules(), st.data())
@PROPERTY
def test_a_session_shifted_into_its_neighbour_is_refused(raw: list[RawSession],
                                                         data: st.DataObject) -> None:
    if len(raw) < 2:
        return
    i = data.draw(st.integers(1, len(raw) - 1))
    previous_close = raw[i - 1].close
    intruder = RawSession(previous_close - 1, raw[i].close, None)
    sessions = [r.session() for r in raw[:i]] + [intruder.session()]
    with pytest.raises(ValueError, match="sessions overlap"):
        SessionSchedule(sessions)
