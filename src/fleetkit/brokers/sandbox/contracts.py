"""Index derivatives' contracts: the per-underlying rules (shipped as derivatives.yaml) and
tradingsymbols of options and futures.

Tradingsymbols take the shape Indian brokers use, so a key read off the sandbox reads like
one from Kite or any NSE feed:

    weekly   NIFTY<YY><M><DD><strike><CE|PE>   M = 1..9, O, N, D     NIFTY26D0824000CE
    monthly  NIFTY<YY><MON><strike><CE|PE>                           NIFTY26DEC24000PE
    future   NIFTY<YY><MON>FUT                                       NIFTY26DECFUT

The functions here (`option_symbol`, `future_symbol` and their parsers) are the only
places that know the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import IntEnum
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetkit.core.errors import ConfigError
from fleetkit.core.instruments import MARKETS, AssetClass, instrument_key
from fleetkit.core.numbers import plain
from fleetkit.core.options import OptionKind
from fleetkit.core.yamltext import parse_yaml, read_user_file

from .catalog import describe_validation_error

RULES_RESOURCE = "derivatives.yaml"

_WEEKLY_MONTH_CODES = "123456789OND"
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                "DEC")


class Weekday(IntEnum):
    monday = 0
    tuesday = 1
    wednesday = 2
    thursday = 3
    friday = 4


class ExpirySchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday"]
    listed: int = Field(ge=0, le=12)

    @property
    def weekday_number(self) -> int:
        return Weekday[self.weekday].value


class ContractRules(BaseModel):
    """How one underlying's options are listed. `root` is the tradingsymbol's prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str
    spot: str
    exchange: str
    lot_size: int = Field(gt=0)
    strike_step: Decimal = Field(gt=0)
    strikes_each_side: int = Field(ge=0, le=500)
    weekly: ExpirySchedule | None = None
    monthly: ExpirySchedule | None = None
    atm_volatility: float = Field(gt=0, lt=3)
    atm_open_interest_lots: int = Field(gt=0)
    # Index futures: how many monthly contracts are listed (NSE lists three: near, next,
    # far), on the monthly schedule's days; the front rolls `roll_days_before` trading days
    # before its expiry (0: at its close).
    futures_listed: int = Field(default=0, ge=0, le=6)
    roll_days_before: int = Field(default=0, ge=0, le=15)
    # Initial margin of a futures position, as a share of its value (SPAN-like, flat).
    margin_rate: Decimal = Field(default=Decimal("0.12"), gt=0, le=1)

    @property
    def spot_market(self) -> str:
        return self.spot.split(":", 1)[0]

    def instrument(self, expiry: date, strike: Decimal, kind: OptionKind) -> str:
        """The instrument key of one contract: "NFO:NIFTY26D0824000CE"."""
        return instrument_key(self.exchange, option_symbol(self, expiry, strike, kind))

    def future_instrument(self, expiry: date) -> str:
        """The key of one future: "NFO:NIFTY26DECFUT"."""
        return instrument_key(self.exchange, future_symbol(self, expiry))

    def is_monthly(self, expiry: date) -> bool:
        """Whether `expiry` is its month's monthly expiry: the last `monthly.weekday`, or a
        day up to six before it (where a holiday moved it; the week before's expiry is
        seven days earlier)."""
        if self.monthly is None:
            return False
        scheduled = last_weekday_of_month(expiry.year, expiry.month, self.monthly.weekday_number)
        return 0 <= (scheduled - expiry).days < 7


def last_weekday_of_month(year: int, month: int, weekday: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


@dataclass(frozen=True, slots=True)
class OptionContract:
    underlying: str
    expiry: date
    strike: Decimal
    kind: OptionKind
    key: str
    monthly: bool


def option_symbol(rules: ContractRules, expiry: date, strike: Decimal, kind: OptionKind) -> str:
    """The tradingsymbol: weekly or monthly shape by whether `expiry` is the monthly date."""
    strike_text = _strike_text(strike)
    year = f"{expiry.year % 100:02d}"
    if rules.is_monthly(expiry):
        return f"{rules.root}{year}{_MONTH_NAMES[expiry.month - 1]}{strike_text}{kind.value}"
    month = _WEEKLY_MONTH_CODES[expiry.month - 1]
    return f"{rules.root}{year}{month}{expiry.day:02d}{strike_text}{kind.value}"


def future_symbol(rules: ContractRules, expiry: date) -> str:
    """A future's tradingsymbol: NIFTY<YY><MON>FUT (futures are monthly only)."""
    return f"{rules.root}{expiry.year % 100:02d}{_MONTH_NAMES[expiry.month - 1]}FUT"


def parse_future_symbol(symbol: str, roots: tuple[str, ...]) -> tuple[str, int, int] | None:
    """(root, year, month) of a future's tradingsymbol, or None."""
    for root in sorted(roots, key=len, reverse=True):
        if symbol.startswith(root):
            found = _FUTURE_PATTERN.fullmatch(symbol[len(root):])
            if found:
                year, month_name = found.groups()
                return root, 2000 + int(year), _MONTH_NAMES.index(month_name) + 1
    return None


@dataclass(frozen=True, slots=True)
class ParsedSymbol:
    """A tradingsymbol taken apart. A monthly symbol names only the month: `expiry_day` is
    None and the listing decides which day of it."""

    root: str
    year: int
    month: int
    expiry_day: int | None
    strike: Decimal
    kind: OptionKind


def parse_option_symbol(symbol: str, roots: tuple[str, ...]) -> ParsedSymbol | None:
    """`symbol` taken apart, or None when it is no option of these roots."""
    for root in sorted(roots, key=len, reverse=True):  # BANKNIFTY before NIFTY, were it to clash
        if not symbol.startswith(root):
            continue
        rest = symbol[len(root):]
        weekly = _WEEKLY_PATTERN.fullmatch(rest)
        if weekly:
            year, month_code, day, strike, kind = weekly.groups()
            return ParsedSymbol(root, 2000 + int(year), _WEEKLY_MONTH_CODES.index(month_code) + 1,
                                int(day), Decimal(strike), OptionKind(kind))
        monthly = _MONTHLY_PATTERN.fullmatch(rest)
        if monthly:
            year, month_name, strike, kind = monthly.groups()
            return ParsedSymbol(root, 2000 + int(year), _MONTH_NAMES.index(month_name) + 1,
                                None, Decimal(strike), OptionKind(kind))
    return None


_STRIKE = r"([1-9][0-9]*(?:\.[0-9]*[1-9])?)"
_WEEKLY_PATTERN = re.compile(rf"([0-9]{{2}})([{_WEEKLY_MONTH_CODES}])([0-9]{{2}}){_STRIKE}(CE|PE)")
_FUTURE_PATTERN = re.compile(rf"([0-9]{{2}})({'|'.join(_MONTH_NAMES)})FUT")
_MONTHLY_PATTERN = re.compile(rf"([0-9]{{2}})({'|'.join(_MONTH_NAMES)}){_STRIKE}(CE|PE)")


def _strike_text(strike: Decimal) -> str:
    if strike <= 0:
        raise ValueError(f"a strike must be positive, got {strike}")
    return plain(strike)


# --- the rules as data ---------------------------------------------------------------------


def load_contract_rules(path: str | Path | None = None) -> dict[str, ContractRules]:
    """The rules shipped with fleetkit, keyed by root ("NIFTY"), with the file at `path` (the
    config's `sandbox.derivatives_file`), if any, laid over them (`lay_over_rules`).
    ConfigError in one line naming the file, the key and the fix when that file is bad."""
    shipped = dict(_shipped_rules())
    if path is None:
        return shipped
    file, text = read_user_file(path, "derivatives file", "sandbox.derivatives_file")
    try:
        return lay_over_rules(shipped, parse_yaml(text, str(file)))
    except ValueError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def lay_over_rules(shipped: Mapping[str, ContractRules], override: object
                   ) -> dict[str, ContractRules]:
    """`override` (derivatives.yaml's shape: `{ROOT: {field: value}}`) laid over `shipped`,
    key by key: a root it names keeps every field it does not give (inside `weekly` and
    `monthly` too), a new root must give them all, `weekly: null` or `monthly: null` drops
    that schedule, and `ROOT: null` stops listing the root. ValueError naming the root and
    key; an empty document changes nothing."""
    if override is None:
        return dict(shipped)
    if not isinstance(override, Mapping):
        raise ValueError("the file must map underlying roots (NIFTY:) to the rules to change, "
                         "as the shipped derivatives.yaml does")
    found = dict(shipped)
    changed: dict[object, object] = {}
    for root, fields in override.items():
        _check_root(root)
        if fields is None:
            found.pop(str(root), None)
            continue
        if not isinstance(fields, Mapping):
            raise ValueError(f"{root}: expected a mapping of the rules to change, like "
                             f"{root}: {{lot_size: 65}} (or null to stop listing it)")
        _check_keys(root, fields)
        changed[root] = _merged(root, shipped.get(str(root)), fields)
    found.update(parse_contract_rules(changed))
    return found


_SCHEDULES = ("weekly", "monthly")


def _check_keys(root: object, fields: Mapping[object, object]) -> None:
    known = sorted(set(ContractRules.model_fields) - {"root"})
    for key, value in fields.items():
        if key not in known:
            raise ValueError(f"{root}.{key}: unknown key; known: {', '.join(known)}")
        if key in _SCHEDULES and isinstance(value, Mapping):
            for inner in value:
                if inner not in ExpirySchedule.model_fields:
                    raise ValueError(f"{root}.{key}.{inner}: unknown key; known: "
                                     f"{', '.join(sorted(ExpirySchedule.model_fields))}")


def _merged(root: object, base: ContractRules | None, fields: Mapping[object, object]
            ) -> dict[str, object]:
    given = {str(key): value for key, value in fields.items()}  # checked field names
    if base is None:  # a root fleetkit does not ship: nothing to keep, so all is required
        required = [name for name, info in ContractRules.model_fields.items()
                    if info.is_required() and name != "root" and name not in given]
        if required:
            raise ValueError(f"{root}: a new underlying needs every rule; missing "
                             f"{', '.join(required)}")
        return given
    merged: dict[str, object] = base.model_dump(exclude={"root"})
    for key, value in given.items():
        kept = merged.get(key)
        if key in _SCHEDULES and isinstance(value, Mapping) and isinstance(kept, Mapping):
            merged[key] = {**kept, **value}  # `weekday: thursday` keeps the `listed` count
        else:
            merged[key] = value
    return merged


@cache
def _shipped_rules() -> Mapping[str, ContractRules]:
    text = files(__package__).joinpath(RULES_RESOURCE).read_text(encoding="utf-8")
    try:
        return parse_contract_rules(yaml.safe_load(text))
    except ValueError as exc:
        raise ValueError(f"the shipped {RULES_RESOURCE} is invalid: {exc}") from exc


def parse_contract_rules(mapping: object) -> dict[str, ContractRules]:
    """Validate `{ROOT: {spot: ..., ...}}`; ValueError naming the root and field."""
    if not isinstance(mapping, Mapping):
        raise ValueError("contract rules must map underlying roots to their rules")
    found: dict[str, ContractRules] = {}
    for root, fields in mapping.items():
        _check_root(root)
        if not isinstance(fields, Mapping):
            raise ValueError(f"{root}: expected a mapping of fields")
        try:
            rules = ContractRules.model_validate({**fields, "root": root})
        except ValidationError as exc:
            raise ValueError(f"{root}: {describe_validation_error(exc)}") from None
        _check_markets(rules)
        found[root] = rules
    return found


def _check_root(root: object) -> None:
    if not (isinstance(root, str) and root.isalnum() and root.isupper()):
        raise ValueError(f"{root!r}: a root is capital letters and digits, like NIFTY")


def _check_markets(rules: ContractRules) -> None:
    exchange = MARKETS.get(rules.exchange)
    if exchange is None or exchange.asset_class is not AssetClass.DERIVATIVE:
        segments = sorted(c for c, m in MARKETS.items() if m.asset_class is AssetClass.DERIVATIVE)
        raise ValueError(f"{rules.root}: exchange {rules.exchange!r} is not a derivatives "
                         f"segment; use one of {', '.join(segments)}")
    if rules.spot_market not in MARKETS or ":" not in rules.spot:
        raise ValueError(f"{rules.root}: spot {rules.spot!r} must be an instrument key like "
                         "'NSE:NIFTY 50'")
    if rules.weekly is None and rules.monthly is None:
        raise ValueError(f"{rules.root}: give a weekly or a monthly expiry schedule")
    if rules.futures_listed and rules.monthly is None:
        raise ValueError(f"{rules.root}: futures expire on the monthly schedule; give "
                         "monthly (listed may be 0) or set futures_listed to 0")
    listed = (rules.weekly.listed if rules.weekly else 0) + (
        rules.monthly.listed if rules.monthly else 0)
    if listed == 0:
        raise ValueError(f"{rules.root}: no expiry is listed; set weekly.listed or "
                         "monthly.listed above 0")
