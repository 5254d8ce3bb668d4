"""`fleet calendar`: a market's sessions and holidays, and how far each calendar is trusted."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleetkit.cli.dates import parse_date
from fleetkit.cli.errors import fail
from fleetkit.cli.options import ConfigOption, DbOption, JsonOption

if TYPE_CHECKING:
    from fleetkit.calendars.coverage import Coverage, Expiring
    from fleetkit.calendars.days import CalendarDay
    from fleetkit.calendars.overrides import Overrides
    from fleetkit.config.loader import LoadedConfig
    from fleetkit.core.instruments import Market

# Command bodies import what they need: bot processes load this module too.

DEFAULT_DAYS = 14
MAX_RANGE_DAYS = 3 * 366


def calendar_command(
        market: Annotated[str | None, typer.Argument(
            help="NYSE, NSE, LSE, JPX, XETRA or CRYPTO (any case)", show_default=False)]
        = None,
        start: Annotated[str | None, typer.Option(
            "--from", metavar="DATE", help="first day, YYYY-MM-DD (default: today in the "
            "exchange's time zone)")] = None,
        end: Annotated[str | None, typer.Option(
            "--to", metavar="DATE", help=f"last day, YYYY-MM-DD (default: {DEFAULT_DAYS} days "
            "after --from)")] = None,
        check: Annotated[bool, typer.Option(
            "--check", help="how far every market's calendar data is trusted; exit 1 if any "
            "ends within --within days (recorded as a warning event)")] = False,
        within: Annotated[int, typer.Option(
            "--within", min=0, metavar="DAYS", help="with --check: warn this many days ahead")]
        = 30,
        config: ConfigOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """A market's sessions (local time and UTC), breaks and holidays; --check: coverage."""
    from fleetkit.config.loader import load_config
    from fleetkit.runtime.calendar_watch import calendar_overrides

    if check:
        chosen = _market(market) if market is not None else None
        loaded = load_config(config)
        raise typer.Exit(_check(loaded, calendar_overrides(loaded), chosen, within, db,
                                as_json))
    if market is None:
        fail("name a market, e.g. `fleet calendar NSE`, or pass --check for every market's "
             "coverage")
    shown = _market(market)
    first, last = _range(shown, start, end)
    loaded = load_config(config)
    _show_days(shown, first, last, calendar_overrides(loaded), as_json)


def _market(text: str) -> Market:
    from fleetkit.core.instruments import MARKETS

    wanted = text.strip().upper()
    for candidate in MARKETS.values():
        if wanted in (candidate.code, candidate.calendar):
            return candidate
    fail(f"unknown market {text!r}: use one of {', '.join(MARKETS)} (any case)")


def _range(market: Market, start: str | None, end: str | None) -> tuple[date, date]:
    from zoneinfo import ZoneInfo

    today = datetime.now(UTC).astimezone(ZoneInfo(market.timezone)).date()
    first = parse_date(start, "--from") if start is not None else None
    last = parse_date(end, "--to") if end is not None else None
    if first is None:
        first = today if last is None or last >= today else last - timedelta(days=DEFAULT_DAYS)
    if last is None:
        last = first + timedelta(days=DEFAULT_DAYS)
    if first > last:
        fail(f"--from {first} is after --to {last}: swap them")
    days = (last - first).days + 1
    if days > MAX_RANGE_DAYS:
        fail(f"--from {first} --to {last} spans {days} days; at most {MAX_RANGE_DAYS} "
             "(3 years) at a time — narrow the range")
    return first, last


# --- sessions and holidays ---------------------------------------------------------------

def _show_days(market: Market, first: date, last: date, overrides: Overrides,
               as_json: bool) -> None:
    from fleetkit.calendars.coverage import market_coverage
    from fleetkit.calendars.days import calendar_days

    days = calendar_days(market.calendar, first, last, overrides=overrides)
    coverage = market_coverage([market.code], overrides)[0]
    if as_json:
        typer.echo(json.dumps(_days_json(market, first, last, days, coverage), indent=2))
        return
    typer.echo(f"{market.code} — {market.name} — calendar {market.calendar}, {first} to "
               f"{last}")
    typer.echo(f"{'date':<10}  {'day':<3}  {'local (' + market.timezone + ')':<{_COLUMN}}  "
               f"{'UTC':<{_COLUMN}}  note")
    for day in days:
        typer.echo(_day_line(market, day))
    sessions = sum(1 for d in days if not d.is_holiday)
    holidays = len(days) - sessions
    typer.echo(f"{sessions} session{'' if sessions == 1 else 's'}, "
               f"{holidays} holiday{'' if holidays == 1 else 's'}")
    if coverage.ends is not None and last > coverage.ends:
        typer.echo(f"warning: {market.calendar} data is trusted until {coverage.ends} "
                   f"({coverage.basis}); days after it show regular hours on every weekday "
                   "— see `fleet calendar --check`")


_COLUMN = 34


def _day_line(market: Market, day: CalendarDay) -> str:
    from zoneinfo import ZoneInfo

    head = f"{day.day}  {day.day:%a}"
    if day.session is None:
        note = "holiday" + (f": {day.name}" if day.name else "")
        return f"{head}  {'closed':<{_COLUMN}}  {'':<{_COLUMN}}  {note}"
    zone = ZoneInfo(market.timezone)
    s = day.session
    local = _hours(day.day, s.open.astimezone(zone), s.close.astimezone(zone))
    utc = _hours(day.day, s.open, s.close)
    if s.break_start is not None and s.break_end is not None:
        local += " break " + _hours(day.day, s.break_start.astimezone(zone),
                                    s.break_end.astimezone(zone), zone_name=False)
        utc += " break " + _hours(day.day, s.break_start, s.break_end, zone_name=False)
    note = ""
    if day.special:
        note = day.special + (f": {day.name}" if day.name else "")
    return f"{head}  {local:<{_COLUMN}}  {utc:<{_COLUMN}}  {note}".rstrip()


def _hours(day: date, opens: datetime, closes: datetime, *, zone_name: bool = True) -> str:
    text = f"{_clock(day, opens)}-{_clock(day, closes)}"
    return f"{text} {opens:%Z}" if zone_name else text


def _clock(day: date, moment: datetime) -> str:
    """HH:MM, with the day offset when the moment falls on another date than `day`."""
    shift = (moment.date() - day).days
    if shift == 1 and (moment.hour, moment.minute) == (0, 0):
        return "24:00"
    return f"{moment:%H:%M}" + (f"{shift:+d}d" if shift else "")


def _days_json(market: Market, first: date, last: date, days: list[CalendarDay],
               coverage: Coverage) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(market.timezone)

    def both(start: datetime | None, end: datetime | None) -> dict[str, str] | None:
        if start is None or end is None:
            return None
        return {"start_local": start.astimezone(zone).isoformat(),
                "end_local": end.astimezone(zone).isoformat(),
                "start_utc": start.isoformat(), "end_utc": end.isoformat()}

    sessions = [{"date": d.day.isoformat(), "weekday": f"{d.day:%a}",
                 "open_local": d.session.open.astimezone(zone).isoformat(),
                 "close_local": d.session.close.astimezone(zone).isoformat(),
                 "open_utc": d.session.open.isoformat(), "close_utc": d.session.close.isoformat(),
                 "break": both(d.session.break_start, d.session.break_end),
                 "special": d.special, "name": d.name}
                for d in days if d.session is not None]
    holidays = [{"date": d.day.isoformat(), "weekday": f"{d.day:%a}", "name": d.name}
                for d in days if d.session is None]
    return {"market": market.code, "calendar": market.calendar, "timezone": market.timezone,
            "from": first.isoformat(), "to": last.isoformat(),
            "coverage": _coverage_json(coverage, None), "sessions": sessions,
            "holidays": holidays}


# --- coverage ----------------------------------------------------------------------------

def _check(loaded: LoadedConfig, overrides: Overrides, chosen: Market | None, within: int,
           db: str | None, as_json: bool) -> int:
    from fleetkit.calendars.coverage import calendars_expiring, market_coverage
    from fleetkit.core.instruments import MARKETS

    now = datetime.now(UTC)
    today = now.date()
    codes = [chosen.code] if chosen else list(MARKETS)
    coverage = market_coverage(codes, overrides)
    expiring = calendars_expiring(codes, today, within, overrides)
    recorded = _record(loaded, db, expiring, now) if expiring else None
    if as_json:
        typer.echo(json.dumps({
            "today": today.isoformat(), "within_days": within,
            "markets": [_coverage_json(c, today) for c in coverage],
            "expiring": [e.market for e in expiring], "alerts_recorded": recorded,
            "override_files": list(overrides.sources)}, indent=2))
    else:
        _print_coverage(coverage, expiring, today, within, recorded)
    return 1 if expiring else 0


def _coverage_json(coverage: Coverage, today: date | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "market": coverage.market, "calendar": coverage.calendar,
        "ends": coverage.ends.isoformat() if coverage.ends else None, "basis": coverage.basis,
        "library_ends": coverage.library_ends.isoformat() if coverage.library_ends else None,
        "override_until": (coverage.override_until.isoformat() if coverage.override_until
                           else None)}
    if today is not None:
        found["days_left"] = coverage.days_left(today)
    return found


def _print_coverage(coverage: list[Coverage], expiring: list[Expiring], today: date, within: int,
                    recorded: int | None) -> None:
    from fleetkit.runtime.calendar_watch import alert_message

    typer.echo(f"{'market':<8}{'calendar':<10}{'trusted until':<15}{'days left':>10}  basis")
    for c in coverage:
        ends = str(c.ends) if c.ends else "-"
        left = c.days_left(today)
        typer.echo(f"{c.market:<8}{c.calendar:<10}{ends:<15}"
                   f"{'-' if left is None else left:>10}  {c.basis}")
    if not expiring:
        typer.echo(f"every calendar is trusted for more than {within} days")
        return
    for item in expiring:
        typer.echo(f"warning: {alert_message(item, today)}")
    if recorded is not None:
        typer.echo(f"{recorded} warning events recorded (at most one per calendar per day)")


def _record(loaded: LoadedConfig, db: str | None, expiring: list[Expiring],
            now: datetime) -> int | None:
    """Write the alert events; without a reachable fleet database, say so and go on."""
    from fleetkit.core.errors import FleetError
    from fleetkit.runtime.calendar_watch import record_coverage_alerts
    from fleetkit.runtime.wiring import database_url
    from fleetkit.store.database import open_database

    try:
        database = open_database(database_url(loaded, db), must_exist=True)
    except FleetError as exc:
        typer.echo(f"note: alert not recorded: {exc}", err=True)
        return None
    try:
        return record_coverage_alerts(database.engine, expiring, now)
    except FleetError as exc:
        typer.echo(f"note: alert not recorded: {exc}", err=True)
        return None
    finally:
        database.dispose()


def register(app: typer.Typer) -> None:
    app.command("calendar")(calendar_command)
