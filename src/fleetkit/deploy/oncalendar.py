"""A job's crontab line as a systemd OnCalendar expression, for `fleet deploy systemd` timers.

Every field is written as the explicit list of values it matches ("*/15" becomes
"00,15,30,45"), which systemd reads the same on every version and leaves no doubt about
ranges with steps. The job's time zone goes at the end (systemd 235+). Both systemd and
fleetkit's scheduler (APScheduler) match a day when the day of month AND the day of week
both match, so restricting both means the same thing in both places.

What has no OnCalendar form (APScheduler extras such as "last" or "2nd fri") raises
ValueError; the deployment then leaves that job to the scheduler service.
"""

from __future__ import annotations

from fleetkit.config.models import JobSettings, crontab_weekday_numbers

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_RANGES = {"minute": (0, 59), "hour": (0, 23), "day of month": (1, 31), "month": (1, 12)}


def on_calendar(job: JobSettings) -> str:
    """The OnCalendar line for a cron job (ValueError if it has no exact equivalent)."""
    if job.cron is None:
        raise ValueError(f"job {job.name} follows a market calendar, not a cron line")
    minute, hour, dom, month, dow = job.cron.split()
    days = "" if dow == "*" else ",".join(_DAYS[d] for d in crontab_weekday_numbers(dow)) + " "
    date = f"*-{_field(month, 'month')}-{_field(dom, 'day of month')}"
    return f"{days}{date} {_field(hour, 'hour')}:{_field(minute, 'minute')}:00 {job.zone_name}"


def _field(text: str, what: str) -> str:
    if text == "*":
        return "*"
    return ",".join(f"{value:02d}" for value in _values(text, what))


def _values(text: str, what: str) -> list[int]:
    low, high = _RANGES[what]
    found: set[int] = set()
    for item in text.lower().split(","):
        spec, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{what} step {step_text!r} has no OnCalendar form")
        step = int(step_text) if slash else 1
        if spec == "*":
            first, last = low, high
        else:
            start, dash, end = spec.partition("-")
            first = _number(start, what)
            last = _number(end, what) if dash else (high if slash else first)
        if not low <= first <= last <= high:
            raise ValueError(f"{what} {item!r} has no OnCalendar form")
        found.update(range(first, last + 1, step))
    return sorted(found)


def _number(text: str, what: str) -> int:
    if text.isdigit():
        return int(text)
    if what == "month" and text in _MONTHS:
        return _MONTHS.index(text) + 1
    raise ValueError(f"{what} {text!r} has no OnCalendar form")
