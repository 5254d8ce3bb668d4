"""Calendar overrides from the config, and the alert before a market calendar's data runs
out: a warning event per calendar, at most one per calendar per UTC day."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, func, select, text

from fleetkit.calendars.coverage import WARN_WITHIN_DAYS, Expiring, calendars_expiring
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import Overrides, load_overrides
from fleetkit.config.loader import LoadedConfig
from fleetkit.core.errors import FleetError
from fleetkit.core.numbers import require_utc
from fleetkit.runtime.logs import get_logger
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import events

log = get_logger("calendars")
ALERT_KIND = "calendar.coverage"
# Serializes alert writers on PostgreSQL (SQLite writers already take the lock up front),
# so two processes checking at once still write one event: "calendar" in ASCII.
_ALERT_LOCK = 0x63616C656E646172


def overrides_path(loaded: LoadedConfig) -> Path | None:
    """calendars.overrides_file, a relative path taken from the config file's directory."""
    return loaded.path_of(loaded.config.calendars.overrides_file)


def calendar_overrides(loaded: LoadedConfig) -> Overrides:
    """The shipped override file with the config's own laid over it; ConfigError if bad."""
    return load_overrides(overrides_path(loaded))


def market_calendars(loaded: LoadedConfig) -> MarketCalendars:
    """Sessions with the config's calendar overrides applied."""
    return MarketCalendars(calendar_overrides(loaded).for_market_calendars())


def alert_message(expiring: Expiring, today: date) -> str:
    days = (expiring.ends - today).days
    when = (f"ended {expiring.ends} ({-days} days ago)" if days < 0
            else f"ends {expiring.ends} (in {days} days)")
    return (f"{expiring.calendar} calendar data {when}: {expiring.market} sessions after it are "
            "guesses (regular hours every weekday) — add the exchange's holidays to your "
            "override file (calendars.overrides_file) or upgrade fleetkit")


def record_coverage_alerts(engine: Engine, expiring: Sequence[Expiring],
                           now: datetime) -> int:
    """A warning event per calendar in `expiring`, unless one was written for it on `now`'s
    UTC date; returns how many were written. Idempotent across processes and restarts."""
    now = require_utc(now, what="now")
    day_start = datetime.combine(now.date(), time(), tzinfo=UTC)
    written = 0
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ALERT_LOCK})
        for calendar, items in _by_calendar(expiring).items():
            if _alerted_since(conn, calendar, day_start):
                continue
            first = items[0]
            insert_event(conn, bot_id=None, kind=ALERT_KIND, severity="warning", code=calendar,
                         message=alert_message(first, now.date()), now=now, actor="fleet",
                         data={"calendar": calendar, "markets": [e.market for e in items],
                               "ends": first.ends.isoformat(),
                               "days_left": (first.ends - now.date()).days})
            written += 1
    return written


def watch_calendar_coverage(loaded: LoadedConfig, engine: Engine,
                            now: datetime) -> list[Expiring]:
    """At `fleet up`: warn (log and event) about the configured bots' markets whose calendar
    data ends within 30 days. Never stops the fleet: a lost alert is logged."""
    markets = sorted({bot.market for bot in loaded.config.bots})
    expiring = calendars_expiring(markets, now.date(), WARN_WITHIN_DAYS,
                                  calendar_overrides(loaded))
    for item in expiring:
        log.warning(alert_message(item, now.date()), action=ALERT_KIND, market=item.market,
                    calendar=item.calendar, ends=item.ends.isoformat())
    if expiring:
        try:
            record_coverage_alerts(engine, expiring, now)
        except FleetError as exc:
            log.warning("could not record the calendar alert", action="event.lost",
                        kind=ALERT_KIND, error=str(exc))
    return expiring


def _by_calendar(expiring: Iterable[Expiring]) -> dict[str, list[Expiring]]:
    grouped: dict[str, list[Expiring]] = {}
    for item in expiring:
        grouped.setdefault(item.calendar, []).append(item)
    return dict(sorted(grouped.items()))


def _alerted_since(conn: Connection, calendar: str, day_start: datetime) -> bool:
    count = conn.execute(select(func.count()).select_from(events).where(
        events.c.kind == ALERT_KIND, events.c.code == calendar,
        events.c.created_at >= day_start,
        events.c.created_at < day_start + timedelta(days=1))).scalar_one()
    return bool(count)
