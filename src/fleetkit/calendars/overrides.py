"""The calendar override file: holidays and special sessions the library lacks, and how far
each calendar's data is trusted.

fleetkit ships one (calendars/overrides.yaml); a user's file (fleet.yaml `calendars:
overrides_file`) is laid over it. The format is documented at the top of the shipped file.
Every problem is a ConfigError naming the file, the entry and the fix, on one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import yaml

from fleetkit.calendars.market_calendars import SUPPORTED_CALENDARS, CalendarOverrides
from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import MARKETS
from fleetkit.core.sessions import Session
from fleetkit.core.yamltext import StrictLoader, parse_yaml, read_user_file

SHIPPED_SOURCE = "fleetkit calendars/overrides.yaml"

# The exchange's own time zone, in which override dates and times are written.
CALENDAR_TIMEZONES: dict[str, str] = {m.calendar: m.timezone for m in MARKETS.values()}

_TOP = "top level"
_TOP_KEYS = ("calendars", "version")
_SECTION_KEYS = ("coverage_until", "holidays", "note", "replace", "special_sessions")
_HOLIDAY_KEYS = ("date", "name")
_SESSION_KEYS = ("close", "date", "name", "open")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class SpecialSession:
    """A day's trading hours in the exchange's local time (added, or replacing the usual)."""

    day: date
    open: time
    close: time
    name: str | None = None

    def session(self, timezone: str) -> Session:
        zone = ZoneInfo(timezone)
        return Session(datetime.combine(self.day, self.open, zone).astimezone(UTC),
                       datetime.combine(self.day, self.close, zone).astimezone(UTC))


@dataclass(frozen=True, slots=True)
class CalendarOverride:
    """One calendar's corrections as written: local dates, names, provenance.

    `replaces_earlier` (the file's `replace: true`) discards an earlier file's entries for
    this calendar instead of laying these over them.
    """

    calendar: str
    holidays: Mapping[date, str | None] = field(default_factory=dict)  # day -> name
    special_sessions: Mapping[date, SpecialSession] = field(default_factory=dict)
    coverage_until: date | None = None
    note: str | None = None
    replaces_earlier: bool = False

    @property
    def timezone(self) -> str:
        return CALENDAR_TIMEZONES[self.calendar]

    def applied(self) -> CalendarOverrides:
        """What MarketCalendars applies: holidays, and special sessions in UTC."""
        return CalendarOverrides(
            holidays=frozenset(self.holidays),
            special_sessions={day: s.session(self.timezone)
                              for day, s in self.special_sessions.items()})

    def laid_over(self, earlier: CalendarOverride) -> CalendarOverride:
        """These entries over `earlier`'s: a date given here replaces that date's entry."""
        if self.replaces_earlier:
            return self
        holidays = {d: n for d, n in earlier.holidays.items() if d not in self.special_sessions}
        holidays.update(self.holidays)
        specials = {d: s for d, s in earlier.special_sessions.items() if d not in self.holidays}
        specials.update(self.special_sessions)
        return CalendarOverride(
            self.calendar, holidays, specials,
            self.coverage_until if self.coverage_until is not None else earlier.coverage_until,
            self.note if self.note is not None else earlier.note)


@dataclass(frozen=True, slots=True)
class Overrides:
    """Every calendar's corrections, and the files they came from (shipped file first)."""

    calendars: Mapping[str, CalendarOverride] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def get(self, calendar: str) -> CalendarOverride | None:
        return self.calendars.get(calendar)

    def for_market_calendars(self) -> dict[str, CalendarOverrides]:
        """The argument MarketCalendars takes."""
        return {name: override.applied() for name, override in self.calendars.items()}

    def laid_under(self, later: Overrides) -> Overrides:
        """`later`'s entries laid over these (a user's file over the shipped one)."""
        merged = dict(self.calendars)
        for name, override in later.calendars.items():
            earlier = merged.get(name)
            merged[name] = override if earlier is None else override.laid_over(earlier)
        return Overrides(merged, self.sources + later.sources)


NO_OVERRIDES = Overrides()


def shipped_overrides_text() -> str:
    return resources.files("fleetkit.calendars").joinpath("overrides.yaml").read_text(
        encoding="utf-8")


def load_overrides(path: str | Path | None = None) -> Overrides:
    """The shipped override file, with the file at `path` (if any) laid over it."""
    shipped = parse_overrides(shipped_overrides_text(), SHIPPED_SOURCE)
    if path is None:
        return shipped
    file, text = read_user_file(path, "calendar override file", "calendars.overrides_file")
    return shipped.laid_under(parse_overrides(text, str(file)))


def parse_overrides(text: str, source: str) -> Overrides:
    """Parse and check one override file; `source` names it in error messages."""
    raw = _load_yaml(text, source)
    top = _Where(source, _TOP)
    if raw is None:
        return Overrides(sources=(source,))
    if not isinstance(raw, dict):
        top.fail("must be a mapping with `version: 1` and `calendars:` — see the shipped "
                 "calendars/overrides.yaml")
    _only_known(raw, _TOP_KEYS, top)
    if raw.get("version", 1) != 1:
        _Where(source, "version").fail(f"{raw['version']!r} is not understood — write 1")
    sections = raw.get("calendars") or {}
    if not isinstance(sections, dict):
        _Where(source, "calendars").fail("must be a mapping of calendar names (e.g. XNSE:) "
                                         "to their holidays and special sessions")
    parsed: dict[str, CalendarOverride] = {}
    for name, section in sections.items():
        where = _Where(source, f"calendars.{name}")
        calendar = _calendar_name(name, where)
        parsed[calendar] = _section(calendar, section, where)
    return Overrides(parsed, (source,))


@dataclass(frozen=True, slots=True)
class _Where:
    source: str
    path: str

    def at(self, part: str) -> _Where:
        if self.path == _TOP:
            return _Where(self.source, part)
        return _Where(self.source, f"{self.path}{part}" if part.startswith("[")
                      else f"{self.path}.{part}")

    def fail(self, problem: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.path}: {problem}")


class _OverridesLoader(StrictLoader):
    """Strict, and dates stay text until checked here, so a bad one (2027-13-01) is
    reported at its entry."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_OverridesLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _load_yaml(text: str, source: str) -> Any:
    return parse_yaml(text, source, _OverridesLoader)


def _only_known(raw: Mapping[Any, Any], known: tuple[str, ...], where: _Where) -> None:
    for key in raw:
        if key not in known:
            where.at(str(key)).fail(f"unknown key; known keys here: {', '.join(known)} — "
                                    "remove or rename it")


def _calendar_name(name: object, where: _Where) -> str:
    text = str(name)
    if text in SUPPORTED_CALENDARS:
        return text
    market = MARKETS.get(text.upper())
    if market is not None:
        where.fail(f"{text} is a market; its calendar is {market.calendar} — write "
                   f"{market.calendar}:")
    where.fail(f"unknown calendar {text!r} — use one of {', '.join(SUPPORTED_CALENDARS)}")


def _section(calendar: str, raw: object, where: _Where) -> CalendarOverride:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where.fail(f"must be a mapping with any of {', '.join(_SECTION_KEYS)}")
    _only_known(raw, _SECTION_KEYS, where)
    holidays = _holidays(raw.get("holidays"), where.at("holidays"))
    specials = _special_sessions(raw.get("special_sessions"), where.at("special_sessions"))
    both = sorted(set(holidays) & set(specials))
    if both:
        where.fail(f"{both[0]} is both a holiday and a special session — keep one")
    coverage = raw.get("coverage_until")
    replaces = raw.get("replace", False)
    if not isinstance(replaces, bool):
        where.at("replace").fail(f"must be true or false, got {replaces!r}")
    return CalendarOverride(
        calendar, holidays, specials,
        None if coverage is None else _date(coverage, where.at("coverage_until")),
        _text(raw.get("note"), where.at("note")), replaces)


def _entries(raw: object, where: _Where) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        where.fail("must be a list (one entry per day, e.g. [2027-01-26])")
    return raw


def _holidays(raw: object, where: _Where) -> dict[date, str | None]:
    found: dict[date, str | None] = {}
    for i, entry in enumerate(_entries(raw, where)):
        at = where.at(f"[{i}]")
        if isinstance(entry, dict):
            _only_known(entry, _HOLIDAY_KEYS, at)
            day, name = _date(_required(entry, "date", at), at.at("date")), entry.get("name")
        else:
            day, name = _date(entry, at), None
        _once(day, found, at)
        found[day] = _text(name, at.at("name"))
    return found


def _special_sessions(raw: object, where: _Where) -> dict[date, SpecialSession]:
    found: dict[date, SpecialSession] = {}
    for i, entry in enumerate(_entries(raw, where)):
        at = where.at(f"[{i}]")
        if not isinstance(entry, dict):
            at.fail('must be a mapping like {date: 2026-11-08, open: "18:00", close: "19:00"}')
        _only_known(entry, _SESSION_KEYS, at)
        day = _date(_required(entry, "date", at), at.at("date"))
        opens = _clock(_required(entry, "open", at), at.at("open"))
        closes = _clock(_required(entry, "close", at), at.at("close"))
        if opens >= closes:
            at.fail(f"open {opens:%H:%M} is not before close {closes:%H:%M} — a session "
                    "must open before it closes on the same day")
        _once(day, found, at)
        found[day] = SpecialSession(day, opens, closes, _text(entry.get("name"), at.at("name")))
    return found


def _required(entry: Mapping[str, Any], key: str, where: _Where) -> Any:
    if entry.get(key) is None:
        where.fail(f"`{key}` is missing — add it")
    return entry[key]


def _once(day: date, found: Mapping[date, object], where: _Where) -> None:
    if day in found:
        where.fail(f"{day} is listed twice — keep one")


def _date(value: object, where: _Where) -> date:
    text = str(value).strip()
    if _DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            where.fail(f"{value!r} is not a date ({exc}) — write YYYY-MM-DD")
    if _DATE.match(text[:10]):
        where.fail(f"{value!r} has more than a date — write the date alone, YYYY-MM-DD")
    where.fail(f"{value!r} is not a date — write YYYY-MM-DD")


def _clock(value: object, where: _Where) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        where.fail(f"{value} was read as a number (YAML reads 18:00 as 1080) — quote the "
                   'time: "HH:MM"')
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        where.fail(f'{value!r} is not a time of day — write "HH:MM" (24-hour, local time)')
    return time(int(match[1]), int(match[2]))


def _text(value: object, where: _Where) -> str | None:
    if value is None or isinstance(value, str):
        return value
    where.fail(f"must be text, got {value!r} — quote it")
