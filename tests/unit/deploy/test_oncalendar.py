"""Cron lines as systemd OnCalendar expressions: systemd itself (systemd-analyze calendar,
where installed) must fire at the same instants as fleetkit's scheduler does."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from fleetkit.config.models import JobSettings
from fleetkit.deploy.oncalendar import on_calendar
from fleetkit.runtime.schedule import CronSchedule

CASES = [
    ("0 2 * * *", "UTC"),
    ("*/15 9-16 * * 1-5", "America/New_York"),
    ("30 9 1,15 jan-mar 0", "Asia/Kolkata"),
    ("0 0 * * 7", "UTC"),
    ("5 */6 * * mon,wed-fri", "Europe/London"),
    ("45 3 29 2 *", "Asia/Tokyo"),
    ("0 10-20/5 * * *", "Europe/Berlin"),
]
BASE = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)


def job(cron: str, timezone: str = "UTC") -> JobSettings:
    return JobSettings.model_validate({"name": "j", "command": "db current", "cron": cron,
                                       "timezone": timezone})


def test_fields_are_written_as_explicit_lists() -> None:
    assert on_calendar(job("0 2 * * *")) == "*-*-* 02:00:00 UTC"
    assert on_calendar(job("*/20 9 * * 1-5", "Asia/Kolkata")) == \
        "Mon,Tue,Wed,Thu,Fri *-*-* 09:00,20,40:00 Asia/Kolkata"


def test_a_market_job_has_no_on_calendar_form() -> None:
    market = JobSettings.model_validate({"name": "j", "command": "db current",
                                         "when": {"market": "NSE", "at": "open"}})
    with pytest.raises(ValueError, match="market calendar"):
        on_calendar(market)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize(("cron", "timezone"), CASES)
def test_systemd_fires_when_the_scheduler_does(cron: str, timezone: str) -> None:
    expression = on_calendar(job(cron, timezone))
    result = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=12",
         f"--base-time={BASE:%Y-%m-%d %H:%M:%S} UTC", expression],
        capture_output=True, text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})
    theirs = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for m in
              re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", result.stdout)]
    assert len(theirs) == 12, result.stdout
    schedule = CronSchedule(cron, timezone)
    ours = []
    moment = BASE
    for _ in range(12):
        fire = schedule.next_after(moment)
        assert fire is not None
        ours.append(fire)
        moment = fire
    assert theirs == ours
