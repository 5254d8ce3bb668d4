"""When jobs are due: fire times from cron lines or market sessions, and what to run of the
periods missed while no scheduler was running. Pure functions of (schedule, last, now):
tests move a clock instead of sleeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fleetkit.config.models import JobSettings, JobWhen, crontab_trigger, zone
from fleetkit.core.instruments import MARKETS
from fleetkit.core.numbers import require_utc
from fleetkit.engine.ports import SessionSource

# The most due periods looked at in one go: enough for any sane max_catch_up, and it keeps
# a minutely job that was down for a month from costing 40,000 cron steps per tick.
MAX_DUE = 1000
_FIRST_WINDOW = timedelta(hours=1)
_LONGEST_WINDOW = timedelta(days=3660)
_TICK = timedelta(microseconds=1)


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (UTC), or None if there is none."""
        ...


class CronSchedule:
    """A crontab line in a time zone, via APScheduler's CronTrigger.

    Across a DST change each local wall-clock time fires once: a time skipped when clocks
    go forward fires at the same instant an hour later by the new offset (APScheduler's
    choice), and a time that occurs twice when clocks go back fires only the first time.
    """

    def __init__(self, cron: str, timezone: str) -> None:
        self.trigger: Any = crontab_trigger(cron, timezone)
        self._zone = zone(timezone)

    def next_after(self, moment: datetime) -> datetime | None:
        start = require_utc(moment, what="moment") + _TICK
        while True:
            found: datetime | None = self.trigger.get_next_fire_time(None, start)
            if found is None:
                return None
            fire = found.astimezone(UTC)
            if not self._repeated_wall_time(fire):
                return fire
            start = fire + _TICK

    def _repeated_wall_time(self, fire: datetime) -> bool:
        local = fire.astimezone(self._zone)
        return local.replace(fold=0).astimezone(UTC) != fire


class MarketSchedule:
    """At each session's open or close of a market (offset by minutes): trading days only,
    so a holiday has no fire time at all."""

    def __init__(self, when: JobWhen, sessions: SessionSource) -> None:
        self._when = when
        self._calendar = MARKETS[when.market].calendar
        self._sessions = sessions
        self._offset = timedelta(minutes=when.offset_minutes)

    def next_after(self, moment: datetime) -> datetime | None:
        moment = require_utc(moment, what="moment")
        day = (moment - self._offset).date() - timedelta(days=1)
        for _ in range(60):  # a week at a time, up to ~14 months ahead
            for session in self._sessions.sessions(self._calendar, day, day + timedelta(days=6)):
                edge = session.open if self._when.at == "open" else session.close
                fire = edge + self._offset
                if fire > moment:
                    return fire
            day += timedelta(days=7)
        return None


def schedule_for(job: JobSettings, sessions: SessionSource | None = None) -> Schedule:
    """The job's schedule; market-calendar jobs need a session source."""
    if job.when is not None:
        if sessions is None:
            raise ValueError(f"job {job.name} follows the {job.when.market} calendar: "
                             "a session source is needed")
        return MarketSchedule(job.when, sessions)
    if job.cron is None:
        raise ValueError(f"job {job.name} has neither cron nor when")
    return CronSchedule(job.cron, job.zone_name)


def fire_times(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Every fire time in (after, until], oldest first."""
    found: list[datetime] = []
    fire = schedule.next_after(after)
    while fire is not None and fire <= until:
        found.append(fire)
        fire = schedule.next_after(fire)
    return found


def due_runs(schedule: Schedule, last_period: datetime | None, now: datetime,
             limit: int = MAX_DUE) -> list[datetime]:
    """The periods due at `now`: fire times after the last recorded one, up to `now`,
    oldest first — at most the newest `limit` of them.

    A job with no recorded period has none due (it first runs at its next fire time).
    The search starts an hour back and doubles, so a long outage costs about as much as
    the periods it returns, not as many as it missed.
    """
    if last_period is None or limit < 1:
        return []
    window = _FIRST_WINDOW
    while True:
        start = max(last_period, now - window)
        if window >= _LONGEST_WINDOW:
            start = last_period
        found = fire_times(schedule, start, now)
        if len(found) >= limit or start == last_period:
            return found[-limit:]
        window *= 2


@dataclass(frozen=True, slots=True)
class CatchUpPlan:
    """What to do with the due periods: run these (oldest first), and record the newest of
    the others as skipped with `skip_detail` (so they are not due again)."""

    run: tuple[datetime, ...]
    skip: datetime | None = None
    skip_detail: str = ""


def catch_up_plan(job: JobSettings, due: Sequence[datetime], now: datetime,
                  grace_s: float) -> CatchUpPlan:
    """Apply the job's catch_up policy to its due periods.

    A period is on time while `now` is within `grace_s` of it; older ones were missed.
    none: only an on-time period runs. latest: only the newest due period runs, on time or
    not. all: the newest `max_catch_up` missed periods run, oldest first, then an on-time
    one. Everything else is dropped, and the newest dropped period is recorded as skipped.
    """
    if not due:
        return CatchUpPlan(())
    newest = due[-1]
    on_time = (now - newest).total_seconds() <= grace_s
    missed = list(due[:-1]) if on_time else list(due)
    if job.catch_up == "latest":
        run = [newest]
    elif job.catch_up == "all":
        run = missed[-job.max_catch_up:] + ([newest] if on_time else [])
    else:
        run = [newest] if on_time else []
    dropped = [period for period in due if period not in run]
    if not dropped:
        return CatchUpPlan(tuple(run))
    count = f"{len(dropped)}+" if len(due) >= MAX_DUE else str(len(dropped))
    policy = f"catch_up: {job.catch_up}" + (
        f", max_catch_up: {job.max_catch_up}" if job.catch_up == "all" else "")
    span = (f"{_short(dropped[0])}" if len(dropped) == 1
            else f"{_short(dropped[0])} to {_short(dropped[-1])}")
    return CatchUpPlan(tuple(run), dropped[-1],
                       f"not run: {count} missed period(s), {span} ({policy})")


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
