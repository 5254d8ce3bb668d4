"""Fault injection for the sandbox service, so a fleet can rehearse a venue misbehaving.

`FaultConfig` says how often each fault happens (probabilities; 0, the default, is never).
`FaultInjector` is a RequestHandler around the venue's API: for every request on an account
route (orders, fills, positions, balances) it rolls seeded dice — a hash of (seed, request
number, fault), so one seed and one request sequence always give the same faults, and
switching one fault on never moves another — and counts every fault it injects, by kind.
Health, market data and the admin routes are never touched: a supervisor must always be
able to tell the process is alive, and an operator to switch the faults off again.

Per request, in this order (the first three end the request):

    refuse            close the connection unanswered, without processing the request
    error_5xx         answer 503 "unavailable", without processing the request
    drop_ack          (submit) process it, then close the connection unanswered
    reject            (submit) store and answer it as REJECTED, reason "injected reject"
    fill_after_cancel (cancel) fill what is left of an open order, then cancel: FILLED
    delay_fills_s     submit answers and fill pages leave out fills younger than this
    duplicate_fill    a fill page repeats one of its fills and one delivered earlier
    garbage           a missing field, a NaN or negative price, or a fill for an order
                      or an instrument the account never had
    latency_spike     sleep latency_spike_ms before answering

A lost answer and a refused connection look alike to a client (a transport error), but
only the first leaves an order behind: that is the case a bot must settle by lookup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from fleetkit.core.errors import BadBrokerReplyError

from .api import (
    NO_ANSWER,
    ApiRequest,
    ApiResponse,
    RequestHandler,
    SandboxApi,
    answer_for_error,
    error_response,
    no_answer,
)
from .book import Submission, SubmissionCounts
from .venue import SandboxVenue
from .wire import (
    JsonObject,
    Reader,
    loads,
    order_report_to_dict,
    order_request_from_dict,
    submission_counts_from_dict,
    submission_from_dict,
    time_text,
)

logger = logging.getLogger("fleetkit.sandbox")
T = TypeVar("T")
FakeFill = Callable[[str | None, str | None], "JsonObject"]
"""Makes up a fill for (client order id, instrument); None for either: an unknown one."""

GARBAGE_KINDS: tuple[str, ...] = (
    "missing_field", "nan_price", "negative_price", "unknown_order_fill",
    "unknown_instrument_fill")
PROBABILITIES: tuple[str, ...] = (
    "drop_ack_probability", "reject_probability", "error_5xx_probability",
    "refuse_probability", "latency_spike_probability", "duplicate_fill_probability",
    "fill_after_cancel_probability", "garbage_probability")
FAULT_KINDS: tuple[str, ...] = (
    "refuse", "error_5xx", "drop_ack", "reject", "fill_after_cancel", "delay_fills",
    "duplicate_fill", "garbage", "latency_spike")
COUNTER_NAMES: tuple[str, ...] = (
    "requests", *FAULT_KINDS, *(f"garbage_{kind}" for kind in GARBAGE_KINDS))

INJECTED_REJECT = "injected reject"
NEVER_TRADED = "GARBAGE:NEVER-TRADED"
MAX_LATENCY_SPIKE_MS = 60_000
MAX_FILL_DELAY_S = 86_400.0
_RECENT_FILLS_PER_ACCOUNT = 32
_RECENT_FILL_ACCOUNTS = 1024


@dataclass(frozen=True)
class FaultConfig:
    """How often the sandbox misbehaves. Every probability is per request, 0 to 1."""

    seed: int = 0
    drop_ack_probability: float = 0.0
    reject_probability: float = 0.0
    error_5xx_probability: float = 0.0
    refuse_probability: float = 0.0
    latency_spike_probability: float = 0.0
    latency_spike_ms: int = 0
    duplicate_fill_probability: float = 0.0
    delay_fills_s: float = 0.0
    fill_after_cancel_probability: float = 0.0
    garbage_probability: float = 0.0
    garbage_kinds: tuple[str, ...] = GARBAGE_KINDS

    def __post_init__(self) -> None:
        _require_int("seed", self.seed)
        for name in PROBABILITIES:
            object.__setattr__(self, name, _number(name, getattr(self, name), 1.0))
        _require_int("latency_spike_ms", self.latency_spike_ms)
        if not 0 <= self.latency_spike_ms <= MAX_LATENCY_SPIKE_MS:
            raise ValueError(f"latency_spike_ms must be between 0 and {MAX_LATENCY_SPIKE_MS}, "
                             f"got {self.latency_spike_ms}")
        object.__setattr__(self, "delay_fills_s",
                           _number("delay_fills_s", self.delay_fills_s, MAX_FILL_DELAY_S))
        object.__setattr__(self, "garbage_kinds", _garbage_kinds(self.garbage_kinds))

    @property
    def active(self) -> bool:
        """Whether any fault can happen at all."""
        return self.delay_fills_s > 0 or any(getattr(self, name) > 0 for name in PROBABILITIES)

    def to_dict(self) -> JsonObject:
        return {f.name: (list(value) if isinstance(value := getattr(self, f.name), tuple)
                         else value) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: object) -> FaultConfig:
        """Build from parsed JSON or YAML; unknown keys are refused, missing ones are off."""
        if not isinstance(data, Mapping):
            raise ValueError("fault settings must be an object of setting: value")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault setting(s) {', '.join(map(str, unknown))}; "
                             f"known: {', '.join(known)}")
        return cls(**{str(name): value for name, value in data.items()})

    def with_text(self, assignments: Mapping[str, str]) -> FaultConfig:
        """This config with settings changed from text (a command line's NAME=VALUE);
        garbage_kinds is a comma-separated list."""
        types = {f.name: f.type for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, text in assignments.items():
            kind = types.get(name)
            if kind is None:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(types)}")
            changes[name] = _from_text(name, text.strip(), str(kind))
        return dataclasses.replace(self, **changes)


def _require_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")


def _number(name: str, value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= maximum:
        raise ValueError(f"{name} must be between 0 and {maximum:g}, got {value!r}")
    return number


def _garbage_kinds(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"garbage_kinds must be a list of {', '.join(GARBAGE_KINDS)}")
    kinds = tuple(value)
    unknown = [kind for kind in kinds if kind not in GARBAGE_KINDS]
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"garbage_kinds must list some of {', '.join(GARBAGE_KINDS)} once "
                         f"each, got {list(kinds)!r}")
    return kinds


def _from_text(name: str, text: str, kind: str) -> object:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a "
                         f"{'whole number' if kind == 'int' else 'number'}") from None
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class SandboxStats:
    """The admin API's counters: faults injected by kind (COUNTER_NAMES) and, per account,
    submissions received, duplicates among them (a bot resending) and new orders rejected."""

    faults: Mapping[str, int]
    accounts: Mapping[str, SubmissionCounts]

    @property
    def submissions(self) -> int:
        return sum(counts.submissions for counts in self.accounts.values())

    @property
    def duplicates(self) -> int:
        return sum(counts.duplicates for counts in self.accounts.values())

    @classmethod
    def from_dict(cls, data: object, where: str = "stats") -> SandboxStats:
        r = Reader(data, where)
        faults = Reader(r.raw("faults"), r.path("faults"))
        accounts = Reader(r.raw("accounts"), r.path("accounts"))
        return cls({name: faults.integer(name) for name in faults.field_names()},
                   {name: submission_counts_from_dict(accounts.raw(name), accounts.path(name))
                    for name in accounts.field_names()})


@dataclass(frozen=True)
class SubmissionPage:
    """Submissions oldest first; `cursor` is the last one's sequence (pass it as `after`)."""

    submissions: tuple[Submission, ...]
    cursor: int
    more: bool

    @classmethod
    def from_dict(cls, data: object, where: str = "page") -> SubmissionPage:
        r = Reader(data, where)
        return cls(tuple(submission_from_dict(item, path) for path, item in r.items("submissions")),
                   r.integer("cursor"), r.boolean("more"))


# --- state shared with the admin API ----------------------------------------------------


class FaultState:
    """The current FaultConfig and the count of faults injected, by kind; thread-safe.
    It is what the admin routes show and change (api.FaultControl)."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._active = config.active  # read on every request: kept, not recomputed
        self._request_number = 0
        self._counts = dict.fromkeys(COUNTER_NAMES, 0)

    @property
    def config(self) -> FaultConfig:
        return self._config

    @property
    def active(self) -> bool:
        return self._active

    def replace(self, config: FaultConfig) -> None:
        """Switch to `config`; request numbers (what the dice roll on) start again at 0,
        so a seed replays the same faults from the moment it is set. Counts carry on."""
        with self._lock:
            self._config = config
            self._active = config.active
            self._request_number = 0

    def next_request(self) -> tuple[FaultConfig, int]:
        with self._lock:
            number = self._request_number
            self._request_number += 1
            self._counts["requests"] += 1
            return self._config, number

    def count(self, kind: str, by: int = 1) -> None:
        with self._lock:
            self._counts[kind] += by

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def settings(self) -> JsonObject:
        return self._config.to_dict()

    def replace_settings(self, data: object) -> JsonObject:
        config = FaultConfig.from_mapping(data)
        self.replace(config)
        return config.to_dict()


# --- deciding ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dice:
    """Uniform numbers in [0, 1) from (seed, request number, purpose) alone: no RNG state,
    so requests answered concurrently or faults switched on one by one never shift others."""

    seed: int
    request: int

    def roll(self, purpose: str) -> float:
        material = f"{self.seed}\x1f{self.request}\x1f{purpose}".encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64

    def hits(self, probability: float, purpose: str) -> bool:
        return probability > 0 and self.roll(purpose) < probability

    def pick(self, options: Sequence[T], purpose: str) -> T:
        return options[int(self.roll(purpose) * len(options))]


class Route(Enum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    LOOKUP = "lookup"
    OPEN_ORDERS = "open_orders"
    FILLS = "fills"
    POSITIONS = "positions"
    BALANCES = "balances"
    OTHER = "other"


_ROUTES: Mapping[tuple[str, str, int], Route] = {
    ("POST", "orders", 1): Route.SUBMIT,
    ("GET", "orders", 1): Route.OPEN_ORDERS,
    ("GET", "orders", 2): Route.LOOKUP,
    ("DELETE", "orders", 2): Route.CANCEL,
    ("GET", "fills", 1): Route.FILLS,
    ("GET", "positions", 1): Route.POSITIONS,
    ("GET", "balances", 1): Route.BALANCES,
}
_REPORTS = frozenset({Route.SUBMIT, Route.LOOKUP, Route.CANCEL})
_CARRY_FILLS = frozenset({Route.SUBMIT, Route.FILLS})


def account_route(request: ApiRequest) -> tuple[str, Route] | None:
    """The account and route of a request on /v1/accounts/..., None for any other path."""
    segments = request.segments
    if len(segments) < 4 or segments[:2] != ("v1", "accounts"):
        return None
    leaf = segments[3:]
    return segments[2], _ROUTES.get((request.method, leaf[0], len(leaf)), Route.OTHER)


# --- the injector -----------------------------------------------------------------------


class FaultInjector:
    """A RequestHandler that passes requests to `handler` (the venue's API) and injects
    the faults `state.config` asks for into account routes. Never raises."""

    def __init__(self, handler: RequestHandler, venue: SandboxVenue,
                 state: FaultState | None = None) -> None:
        self._handler = handler
        self._venue = venue
        self._state = state if state is not None else FaultState(FaultConfig())
        self._recent = _RecentFills()
        self._fabricated = itertools.count(1)

    @property
    def state(self) -> FaultState:
        return self._state

    def __call__(self, request: ApiRequest) -> ApiResponse:
        route = account_route(request) if self._state.active else None
        if route is None:
            return self._handler(request)  # the common case: faults off, nothing counted
        config, number = self._state.next_request()
        try:
            return self._inject(request, route[0], route[1], config, Dice(config.seed, number))
        except Exception as exc:
            return answer_for_error(exc, request)

    def _inject(self, request: ApiRequest, account: str, route: Route, config: FaultConfig,
                dice: Dice) -> ApiResponse:
        if dice.hits(config.refuse_probability, "refuse"):
            self._injected("refuse", request)
            return no_answer()
        if dice.hits(config.error_5xx_probability, "error_5xx"):
            self._injected("error_5xx", request)
            return error_response(503, "unavailable", "injected fault: the venue is unavailable")
        response = self._process(request, account, route, config, dice)
        if response.status == NO_ANSWER:
            return response
        if response.status == 200:
            self._alter(request, response.payload, account, route, config, dice)
        if config.latency_spike_ms and dice.hits(config.latency_spike_probability, "spike"):
            self._injected("latency_spike", request)
            time.sleep(config.latency_spike_ms / 1000)
        return response

    def _process(self, request: ApiRequest, account: str, route: Route, config: FaultConfig,
                 dice: Dice) -> ApiResponse:
        if route is Route.SUBMIT:
            response = self._submit(request, account, config, dice)
            if dice.hits(config.drop_ack_probability, "drop_ack"):
                self._injected("drop_ack", request)
                return no_answer()
            return response
        if (route is Route.CANCEL
                and dice.hits(config.fill_after_cancel_probability, "fill_after_cancel")
                and self._venue.fill_remainder(account, request.segments[4]) is not None):
            self._injected("fill_after_cancel", request)
        return self._handler(request)

    def _submit(self, request: ApiRequest, account: str, config: FaultConfig,
                dice: Dice) -> ApiResponse:
        if dice.hits(config.reject_probability, "reject"):
            try:
                order = order_request_from_dict(loads(request.body, what="order"))
            except BadBrokerReplyError:
                return self._handler(request)  # let the API explain what is wrong with it
            report = self._venue.reject(account, order, INJECTED_REJECT)
            if report.reason == INJECTED_REJECT:  # not a resend answered with its own order
                self._injected("reject", request)
            return ApiResponse(200, order_report_to_dict(report))
        return self._handler(request)

    def _alter(self, request: ApiRequest, payload: JsonObject, account: str, route: Route,
               config: FaultConfig, dice: Dice) -> None:
        """Change a successful answer in place: late fills, repeated fills, garbage."""
        if route in _CARRY_FILLS:
            if config.delay_fills_s > 0 and self._withhold_young_fills(
                    request, payload, route, config.delay_fills_s):
                self._injected("delay_fills", request)
            if route is Route.FILLS and dice.hits(config.duplicate_fill_probability,
                                                  "duplicate_fill"):
                self._injected("duplicate_fill", request, self._repeat_fills(
                    payload["fills"], account, dice))
            if config.duplicate_fill_probability > 0:
                self._recent.add(account, payload["fills"])
        if dice.hits(config.garbage_probability, "garbage"):
            kind = garble(payload, route, config.garbage_kinds, dice, self._fake_fill)
            if kind is not None:
                self._injected("garbage", request)
                self._state.count(f"garbage_{kind}")

    def _withhold_young_fills(self, request: ApiRequest, payload: JsonObject, route: Route,
                              delay_s: float) -> bool:
        """Keep only the fills at least `delay_s` old, up to the first younger one; a page's
        cursor stays before what was withheld, so the next page brings it once it is due."""
        cutoff = self._venue.wall_now() - timedelta(seconds=delay_s)
        fills: list[JsonObject] = payload["fills"]
        kept = list(itertools.takewhile(
            lambda fill: datetime.fromisoformat(fill["ts"]) <= cutoff, fills))
        if len(kept) == len(fills):
            return False
        payload["fills"] = kept
        if route is Route.FILLS:
            payload["cursor"] = kept[-1]["broker_fill_id"] if kept else (
                request.query.get("after") or None)
            payload["more"] = False  # the rest is not out yet: nothing to fetch right away
        return True

    def _repeat_fills(self, fills: list[JsonObject], account: str, dice: Dice) -> int:
        """Repeat one fill of the page, and put one already delivered before it."""
        copies = 0
        on_page = {fill["broker_fill_id"] for fill in fills}
        earlier = [f for f in self._recent.of(account) if f["broker_fill_id"] not in on_page]
        if fills:
            i = int(dice.roll("repeat_in_page") * len(fills))
            fills.insert(i + 1, dict(fills[i]))
            copies += 1
        if earlier:
            fills.insert(0, dict(dice.pick(earlier, "repeat_earlier")))
            copies += 1
        return copies

    def _fake_fill(self, client_order_id: str | None, instrument: str | None) -> JsonObject:
        number = next(self._fabricated)
        return {"broker_fill_id": f"injected-{number}",
                "client_order_id": client_order_id or f"injected-unknown-order-{number}",
                "instrument": instrument or NEVER_TRADED, "side": "buy", "quantity": "1",
                "price": "1", "fee": "0", "ts": time_text(self._venue.wall_now())}

    def _injected(self, kind: str, request: ApiRequest, times: int = 1) -> None:
        if times:
            self._state.count(kind, times)
            logger.info("sandbox fault %s injected into %s /%s", kind, request.method,
                        "/".join(request.segments))


def fault_injecting_api(venue: SandboxVenue, config: FaultConfig) -> FaultInjector:
    """The venue's API behind a FaultInjector starting with `config`, its admin routes
    showing and changing that injector's state."""
    state = FaultState(config)
    return FaultInjector(SandboxApi(venue, faults=state), venue, state)


# --- garbage ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where the records of an answer are and which fields a client cannot do without."""

    container: str | None  # the key of the list (or map) of records; None: the answer is one
    required: tuple[str, ...]
    price: str | None  # the price field to spoil; None: any field (a balance per currency)


_ORDER_FIELDS = ("status", "quantity", "client_order_id", "side")
_SHAPES: Mapping[Route, _Shape] = {
    Route.SUBMIT: _Shape(None, _ORDER_FIELDS, "average_fill_price"),
    Route.LOOKUP: _Shape(None, _ORDER_FIELDS, "average_fill_price"),
    Route.CANCEL: _Shape(None, _ORDER_FIELDS, "average_fill_price"),
    Route.OPEN_ORDERS: _Shape("orders", _ORDER_FIELDS, "average_fill_price"),
    Route.FILLS: _Shape("fills", ("broker_fill_id", "price", "quantity", "ts"), "price"),
    Route.POSITIONS: _Shape("positions", ("instrument", "quantity", "average_price"),
                            "average_price"),
    Route.BALANCES: _Shape("balances", (), None),
}


def garble(payload: JsonObject, route: Route, kinds: Sequence[str], dice: Dice,
           fake_fill: FakeFill) -> str | None:
    """Corrupt a successful answer in place with one of `kinds` that fits it; returns the
    kind, or None if none fits (an answer with nothing to corrupt that way)."""
    shape = _SHAPES.get(route)
    if shape is None:
        return None
    records = _records(payload, shape)
    fitting = [kind for kind in kinds if _fits(kind, route, shape, records)]
    if not fitting:
        return None
    kind = dice.pick(fitting, "garbage_kind")
    if kind in ("unknown_order_fill", "unknown_instrument_fill"):
        _add_fake_fill(payload, route, kind, fake_fill)
    elif kind == "missing_field":
        _drop_field(payload, shape, records, dice)
    else:
        record = dice.pick(records, "garbage_record")
        field = shape.price or dice.pick(sorted(record), "garbage_field")
        record[field] = "NaN" if kind == "nan_price" else "-1"
    return kind


def _records(payload: JsonObject, shape: _Shape) -> list[JsonObject]:
    if shape.container is None:
        return [payload]
    held = payload.get(shape.container)
    if isinstance(held, list):
        return [record for record in held if isinstance(record, dict)]
    return [held] if isinstance(held, dict) and held else []


def _fits(kind: str, route: Route, shape: _Shape, records: list[JsonObject]) -> bool:
    if kind in ("unknown_order_fill", "unknown_instrument_fill"):
        return route in _REPORTS or route is Route.FILLS
    if kind == "negative_price":
        return bool(records) and shape.price is not None  # a negative balance is possible
    return kind == "missing_field" or bool(records)


def _drop_field(payload: JsonObject, shape: _Shape, records: list[JsonObject],
                dice: Dice) -> None:
    if records and shape.required:
        del dice.pick(records, "garbage_record")[dice.pick(shape.required, "garbage_field")]
    elif shape.container is not None:
        del payload[shape.container]


def _add_fake_fill(payload: JsonObject, route: Route, kind: str, fake_fill: FakeFill) -> None:
    fills: list[JsonObject] = payload["fills"]
    if route in _REPORTS:
        order, instrument = payload["client_order_id"], payload["instrument"]
    else:
        order = fills[0]["client_order_id"] if fills else None
        instrument = fills[0]["instrument"] if fills else None
    if kind == "unknown_order_fill":
        fills.append(fake_fill(None, instrument))
    else:
        fills.append(fake_fill(order, NEVER_TRADED))


class _RecentFills:
    """The last fills each account was told about, so a later page can repeat one; bounded
    in fills per account and in accounts, whatever names clients make up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_account: OrderedDict[str, deque[JsonObject]] = OrderedDict()

    def add(self, account: str, fills: list[JsonObject]) -> None:
        if not fills:
            return
        with self._lock:
            recent = self._by_account.pop(account, None) or deque(
                maxlen=_RECENT_FILLS_PER_ACCOUNT)
            recent.extend(dict(fill) for fill in fills)
            self._by_account[account] = recent
            if len(self._by_account) > _RECENT_FILL_ACCOUNTS:
                self._by_account.popitem(last=False)

    def of(self, account: str) -> list[JsonObject]:
        with self._lock:
            return list(self._by_account.get(account, ()))
