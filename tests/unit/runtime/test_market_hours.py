"""When a market-hours service should run: windows from sessions, leads and lags, holidays,
24/7 markets that must not restart at midnight — on a fake calendar and on the real ones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.models import ServiceSettings
from fleetkit.core.sessions import Session
from fleetkit.runtime.market_hours import Plan, Window, plan_for, service_windows


def utc(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Weekdays:
    """09:00-17:00 UTC on weekdays, except the given holidays; 24/7 for the crypto calendar."""

    def __init__(self, holidays: tuple[date, ...] = ()) -> None:
        self.holidays = holidays

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        found = []
        day = start
        while day <= end:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if calendar == "24/7":
                found.append(Session(midnight, midnight + timedelta(days=1)))
            elif day.weekday() < 5 and day not in self.holidays:
                found.append(Session(midnight + timedelta(hours=9),
                                     midnight + timedelta(hours=17)))
            day += timedelta(days=1)
        return found


def service(market: str = "NYSE", **fields: object) -> ServiceSettings:
    return ServiceSettings.model_validate({"name": "collector", "command": "metrics serve",
                                           "market": market, **fields})


# 2026-03-02 is a Monday.
@pytest.mark.parametrize(("now", "expected"), [
    (utc(2, 8, 0), Plan(False, utc(2, 9, 0))),      # before the open
    (utc(2, 9, 0), Plan(True, utc(2, 17, 0))),      # at the open
    (utc(2, 16, 59), Plan(True, utc(2, 17, 0))),
    (utc(2, 17, 0), Plan(False, utc(3, 9, 0))),     # at the close: off till tomorrow
    (utc(6, 18, 0), Plan(False, utc(9, 9, 0))),     # Friday evening: off till Monday
    (utc(7, 12, 0), Plan(False, utc(9, 9, 0))),     # Saturday
])
def test_a_service_runs_from_open_to_close(now: datetime, expected: Plan) -> None:
    assert plan_for(service(), Weekdays(), now) == expected


def test_lead_and_lag_widen_the_window() -> None:
    widened = service(start_minutes_before_open=15, stop_minutes_after_close=30)
    assert plan_for(widened, Weekdays(), utc(2, 8, 50)) == Plan(True, utc(2, 17, 30))
    assert plan_for(widened, Weekdays(), utc(2, 17, 20)) == Plan(True, utc(2, 17, 30))
    assert plan_for(widened, Weekdays(), utc(2, 17, 30)) == Plan(False, utc(3, 8, 45))


def test_a_holiday_keeps_the_service_off_all_day() -> None:
    holiday = Weekdays(holidays=(date(2026, 3, 3),))
    assert plan_for(service(), holiday, utc(3, 12, 0)) == Plan(False, utc(4, 9, 0))
    assert plan_for(service(), holiday, utc(2, 17, 0)) == Plan(False, utc(4, 9, 0))


def test_a_24_7_market_runs_through_midnight_as_one_window() -> None:
    windows = service_windows(service("CRYPTO"), Weekdays(), utc(2), utc(9))
    assert len(windows) == 1
    plan = plan_for(service("CRYPTO"), Weekdays(), utc(2, 23, 59))
    assert plan.run and plan.until is not None and plan.until > utc(10)


def test_windows_that_overlap_through_long_lags_merge() -> None:
    night = service(start_minutes_before_open=480, stop_minutes_after_close=480)  # 01:00-01:00
    windows = service_windows(night, Weekdays(), utc(2), utc(6, 12))
    assert windows[0] == Window(utc(2, 1, 0), utc(7, 1, 0))


def test_no_session_ahead_says_so() -> None:
    class Closed:
        def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
            return []

    plan = plan_for(service(), Closed(), utc(2, 12))
    assert plan == Plan(False, None)
    assert "no session ahead" in plan.describe("NYSE")


def test_real_calendars_nse_holiday_and_session_hours() -> None:
    nse = service("NSE")
    calendars = MarketCalendars()
    # 2026-01-26 (Monday) is Republic Day: no session, so off until Tuesday's open.
    plan = plan_for(nse, calendars, datetime(2026, 1, 26, 6, 0, tzinfo=UTC))
    assert not plan.run
    assert plan.until == datetime(2026, 1, 27, 3, 45, tzinfo=UTC)  # 09:15 IST
    during = plan_for(nse, calendars, datetime(2026, 1, 27, 6, 0, tzinfo=UTC))
    assert during == Plan(True, datetime(2026, 1, 27, 10, 0, tzinfo=UTC))  # 15:30 IST


def test_real_calendars_tokyo_runs_through_lunch() -> None:
    during_lunch = plan_for(service("JPX"), MarketCalendars(),
                            datetime(2026, 3, 3, 3, 0, tzinfo=UTC))  # 12:00 JST
    assert during_lunch.run


@pytest.mark.parametrize(("fields", "message"), [
    ({"market": "MARS"}, "unknown market 'MARS'"),
    ({"command": "fleet metrics serve"}, "without 'fleet'"),
    ({"command": ""}, "command is empty"),
    ({"name": "Bad Name"}, "service names are"),
    ({"start_minutes_before_open": -5}, "greater than or equal to 0"),
])
def test_bad_service_settings_are_refused_with_the_fix(fields: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServiceSettings.model_validate({"name": "collector", "command": "metrics serve",
                                        "market": "NSE", **fields})


def test_on_the_sandbox_clock_hours_are_judged_in_venue_time_and_planned_in_wall_time() -> None:
    on_sandbox = service(clock="sandbox")
    shifted = -timedelta(hours=10)  # demo time: the venue runs 10 hours behind the wall
    # 20:00 wall is 10:00 venue: open, and it stops at the venue's 17:00, 03:00 wall.
    assert plan_for(on_sandbox, Weekdays(), utc(2, 20), shifted) == Plan(True, utc(3, 3))
    # 04:00 wall is 18:00 venue: closed till the venue's 09:00, 19:00 wall.
    assert plan_for(on_sandbox, Weekdays(), utc(3, 4), shifted) == Plan(False, utc(3, 19))
    assert "sandbox time" in on_sandbox.describe_hours()
