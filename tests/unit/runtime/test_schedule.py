"""When jobs are due: cron fire times in a time zone (across DST), market-calendar times,
and the catch-up policies — all on a simulated clock, nothing sleeps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from fleetkit.config.loader import parse_config
from fleetkit.config.models import JobSettings
from fleetkit.core.errors import ConfigError
from fleetkit.core.sessions import Session
from fleetkit.runtime.schedule import (
    CronSchedule,
    MarketSchedule,
    catch_up_plan,
    due_runs,
    fire_times,
    schedule_for,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def job(**fields: Any) -> JobSettings:
    return JobSettings.model_validate({"name": "nightly", "command": "reconcile --all",
                                       "cron": "0 2 * * *", **fields})


# --- fire times --------------------------------------------------------------------------

def test_a_cron_line_fires_in_its_own_time_zone() -> None:
    schedule = CronSchedule("0 2 * * *", "Asia/Kolkata")
    # 02:00 IST is 20:30 UTC the day before.
    assert schedule.next_after(utc(2026, 1, 1, 12)) == utc(2026, 1, 1, 20, 30)


def test_due_runs_are_the_fire_times_after_the_last_period_up_to_now() -> None:
    schedule = schedule_for(job(timezone="Asia/Kolkata"))
    due = due_runs(schedule, utc(2026, 1, 1, 20, 30), utc(2026, 1, 4, 21))
    assert due == [utc(2026, 1, 2, 20, 30), utc(2026, 1, 3, 20, 30), utc(2026, 1, 4, 20, 30)]


def test_a_job_that_never_ran_has_nothing_due() -> None:
    assert due_runs(schedule_for(job()), None, utc(2026, 1, 4)) == []


def test_a_time_skipped_by_spring_forward_fires_once_an_hour_later() -> None:
    schedule = CronSchedule("30 2 * * *", "America/New_York")
    fires = fire_times(schedule, utc(2024, 3, 8), utc(2024, 3, 12))
    # 02:30 does not exist on 10 March: that day it fires at 03:30 EDT (07:30 UTC).
    assert fires == [utc(2024, 3, 8, 7, 30), utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7, 30),
                     utc(2024, 3, 11, 6, 30)]


def test_a_time_repeated_by_fall_back_fires_only_once() -> None:
    schedule = CronSchedule("30 1 * * *", "America/New_York")
    fires = fire_times(schedule, utc(2024, 11, 2), utc(2024, 11, 5))
    # 01:30 happens twice on 3 November (EDT, then EST): one run, at the first.
    assert fires == [utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_every_local_half_hour_across_fall_back_runs_each_wall_time_once() -> None:
    schedule = CronSchedule("*/30 0-3 * * *", "Europe/London")
    fires = fire_times(schedule, utc(2024, 10, 26, 22), utc(2024, 10, 27, 4))
    local = [f.astimezone(schedule._zone).strftime("%H:%M") for f in fires]
    assert local == ["00:00", "00:30", "01:00", "01:30", "02:00", "02:30", "03:00", "03:30"]
    assert len(set(fires)) == len(fires)


def test_day_of_week_numbers_follow_crontab_not_apscheduler() -> None:
    weekdays = CronSchedule("0 9 * * 1-5", "UTC")
    fires = fire_times(weekdays, utc(2026, 3, 1), utc(2026, 3, 8, 23))  # Sun 1 .. Sun 8
    assert [f.strftime("%a") for f in fires] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    sundays = CronSchedule("0 9 * * 0", "UTC")
    assert sundays.next_after(utc(2026, 3, 2)) == utc(2026, 3, 8, 9)


def test_a_long_outage_returns_only_the_newest_periods_without_walking_them_all() -> None:
    minutely = CronSchedule("* * * * *", "UTC")
    now = utc(2026, 2, 1, 12, 0, 30)
    due = due_runs(minutely, now - timedelta(days=30), now, limit=3)
    assert due == [utc(2026, 2, 1, 11, 58), utc(2026, 2, 1, 11, 59), utc(2026, 2, 1, 12, 0)]


class FakeSessions:
    """Mon-Fri 03:45-10:00 UTC (NSE's hours), with holidays."""

    def __init__(self, holidays: set[date]) -> None:
        self.holidays = holidays

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        found = []
        day = start
        while day <= end:
            if day.weekday() < 5 and day not in self.holidays:
                opens = datetime(day.year, day.month, day.day, 3, 45, tzinfo=UTC)
                found.append(Session(opens, opens + timedelta(hours=6, minutes=15)))
            day += timedelta(days=1)
        return found


def test_a_market_job_fires_at_each_open_on_trading_days_only() -> None:
    market_job = job(cron=None, when={"market": "NSE", "at": "open", "offset_minutes": -15})
    schedule = schedule_for(market_job, FakeSessions({date(2026, 3, 4)}))
    assert isinstance(schedule, MarketSchedule)
    fires = fire_times(schedule, utc(2026, 3, 2), utc(2026, 3, 9, 23))  # Mon 2 .. Mon 9
    assert fires == [utc(2026, 3, d, 3, 30) for d in (2, 3, 5, 6, 9)]  # 4th: holiday


def test_a_market_job_at_close_fires_after_each_session() -> None:
    market_job = job(cron=None, when={"market": "NSE", "at": "close"})
    schedule = schedule_for(market_job, FakeSessions(set()))
    assert schedule.next_after(utc(2026, 3, 6, 10)) == utc(2026, 3, 9, 10)  # Fri -> Mon


def test_a_market_job_follows_the_real_nse_calendar_holidays() -> None:
    from fleetkit.calendars.market_calendars import MarketCalendars

    market_job = job(cron=None, when={"market": "NSE", "at": "open"})
    schedule = schedule_for(market_job, MarketCalendars())
    fires = fire_times(schedule, utc(2024, 8, 12), utc(2024, 8, 17))
    # Independence Day, Thursday 15 August 2024: NSE is closed.
    assert [f.date().day for f in fires] == [12, 13, 14, 16]


# --- catch-up policies -------------------------------------------------------------------

HOURS = [utc(2026, 1, 1, h) for h in range(1, 6)]  # 01:00 .. 05:00


def test_none_runs_an_on_time_period_only() -> None:
    plan = catch_up_plan(job(catch_up="none"), HOURS, utc(2026, 1, 1, 5, 0, 20), grace_s=60)
    assert plan.run == (HOURS[-1],)
    assert plan.skip == HOURS[-2]
    assert "4 missed period(s)" in plan.skip_detail and "catch_up: none" in plan.skip_detail


def test_none_after_downtime_runs_nothing_and_records_the_skip() -> None:
    plan = catch_up_plan(job(catch_up="none"), HOURS, utc(2026, 1, 1, 5, 30), grace_s=60)
    assert plan.run == ()
    assert plan.skip == HOURS[-1]
    assert "5 missed period(s), 2026-01-01 01:00 UTC to 2026-01-01 05:00 UTC" \
        in plan.skip_detail


def test_latest_runs_only_the_newest_missed_period() -> None:
    plan = catch_up_plan(job(catch_up="latest"), HOURS, utc(2026, 1, 1, 5, 30), grace_s=60)
    assert plan.run == (HOURS[-1],)
    assert plan.skip == HOURS[-2]


def test_all_runs_every_missed_period_oldest_first() -> None:
    plan = catch_up_plan(job(catch_up="all"), HOURS, utc(2026, 1, 1, 5, 30), grace_s=60)
    assert plan.run == tuple(HOURS)
    assert plan.skip is None


def test_all_runs_at_most_max_catch_up_missed_periods_plus_the_on_time_one() -> None:
    plan = catch_up_plan(job(catch_up="all", max_catch_up=2), HOURS,
                         utc(2026, 1, 1, 5, 0, 10), grace_s=60)
    assert plan.run == (HOURS[2], HOURS[3], HOURS[4])  # 03:00, 04:00 missed; 05:00 on time
    assert plan.skip == HOURS[1]
    assert "max_catch_up: 2" in plan.skip_detail


def test_nothing_due_plans_nothing() -> None:
    plan = catch_up_plan(job(), [], utc(2026, 1, 1), grace_s=60)
    assert plan.run == () and plan.skip is None


# --- config ------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "expected"), [
    ('cron: "0 25 * * *"', r"jobs\[0\] \(nightly\): cron '0 25 \* \* \*' is not valid .*write "
                           r"five fields"),
    ('cron: "0 2 * *"', r"jobs\[0\] \(nightly\): cron '0 2 \* \*' has 4 fields; write"),
    ('cron: "0 2 * * *", timezone: Asia/Kolkatta',
     r"jobs\[0\] \(nightly\)\.timezone: unknown time zone 'Asia/Kolkatta': use an IANA name"),
    ("when: {market: NSX, at: open}", r"jobs\[0\] \(nightly\)\.when\.market: unknown market"),
    ('cron: "0 2 * * *", when: {market: NSE, at: open}', r"give either cron .* or when"),
    ('cron: "0 2 * * *", catch_up: sometimes', r"catch_up: must be one of"),
])
def test_a_bad_job_schedule_is_one_line_naming_the_job_and_the_fix(fields: str,
                                                                    expected: str) -> None:
    text = f'jobs: [{{name: nightly, command: "reconcile --all", {fields}}}]'
    with pytest.raises(ConfigError, match=expected) as caught:
        parse_config(text, "fleet.yaml")
    assert "\n" not in str(caught.value)


def test_job_names_are_unique() -> None:
    text = ('jobs: [{name: a, command: x, cron: "0 2 * * *"}, '
            '{name: a, command: y, cron: "0 3 * * *"}]')
    with pytest.raises(ConfigError, match="two jobs are named 'a'"):
        parse_config(text, "fleet.yaml")


def test_a_job_defaults_to_catching_up_the_latest_period_in_utc() -> None:
    config = parse_config('jobs: [{name: a, command: "reconcile --all", cron: "0 2 * * *"}]',
                          "fleet.yaml")
    (only,) = config.jobs
    assert (only.catch_up, only.zone_name, only.enabled) == ("latest", "UTC", True)
    assert only.describe_schedule() == "0 2 * * * UTC"
