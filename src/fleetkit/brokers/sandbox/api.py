"""The sandbox's HTTP API as a plain function from request to response, free of sockets.

SandboxService adapts HTTP to `ApiRequest -> ApiResponse`; keeping the API apart means the
fault-injection layer (faults.FaultInjector: dropped acks, duplicate fills ...) wraps
`SandboxApi` as just another `RequestHandler`, and tests can call it without a server. A
response with status NO_ANSWER makes the service close the connection without answering.

    GET    /v1/health                                    status, wall time, offsets_s per market
    GET    /v1/clock?market=M
    GET    /v1/quote?instrument=K
    GET    /v1/bars?instrument=K&interval_s=N&start=T&end=T
    GET    /v1/instruments
    GET    /v1/chain?underlying=U&expiry=D&strikes=N&at=T   an option chain (derivatives.py):
                                                         expiry (default nearest), strikes
                                                         each side of ATM, at (default now)
    GET    /v1/quotes?instruments=K1,K2,...              option quotes, Kite-shaped (<= 500)
    GET    /v1/futures?underlying=U&at=T                 listed index futures and the front
    GET    /v1/perpetual?instrument=K                    a perpetual's mark, index, funding
    GET    /v1/funding?instrument=K&start=T&end=T        its funding settlements (8-hourly)
    POST   /v1/accounts/{account}/orders                 body: an OrderRequest
    GET    /v1/accounts/{account}/orders?status=open
    GET    /v1/accounts/{account}/orders/{client_order_id}
    DELETE /v1/accounts/{account}/orders/{client_order_id}
    GET    /v1/accounts/{account}/fills?after=CURSOR&limit=N
    GET    /v1/accounts/{account}/funding?after=CURSOR&limit=N   perpetual funding it paid
                                                         or received, paged like fills
    GET    /v1/accounts/{account}/positions
    GET    /v1/accounts/{account}/balances
    GET    /v1/admin/faults                              the fault-injection settings
    PUT    /v1/admin/faults                              body: new settings (all keys optional)
    GET    /v1/admin/stats                               faults injected by kind; submissions
                                                         and duplicates per account
    GET    /v1/admin/submissions?account=A&after=N&limit=N   each submission and its time

Path segments are percent-decoded one by one, so account names and client order ids may
contain '/' and ':' when encoded. Errors answer {"error": code, "message": text}.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from fleetkit.core.errors import BadBrokerReplyError, DatabaseUnavailableError

from .derivatives import SandboxDerivatives
from .derivatives_wire import (
    chain_to_dict,
    funding_to_dict,
    futures_to_dict,
    perpetual_to_dict,
    quotes_to_dict,
)
from .errors import (
    DerivativesUnavailableError,
    OrderNotFoundError,
    UnknownInstrumentError,
    UnknownMarketError,
)
from .perpetuals import SandboxPerpetuals
from .venue import MAX_FILL_PAGE, MAX_FUNDING_PAGE, MAX_SUBMISSION_PAGE, SandboxVenue
from .wire import (
    JsonObject,
    balances_to_dict,
    bar_to_dict,
    fill_page_to_dict,
    funding_page_to_dict,
    instrument_to_dict,
    loads,
    market_clock_to_dict,
    order_report_to_dict,
    order_request_from_dict,
    position_to_dict,
    quote_to_dict,
    submission_counts_to_dict,
    submission_to_dict,
    time_text,
)

logger = logging.getLogger("fleetkit.sandbox")

_CAPTURE = "{}"

NO_ANSWER = 0
"""The status of an ApiResponse the service answers by closing the connection unanswered."""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    segments: tuple[str, ...]
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    payload: JsonObject


RequestHandler = Callable[[ApiRequest], ApiResponse]


class FaultControl(Protocol):
    """The fault-injection settings and counters that the admin routes show and change."""

    def settings(self) -> JsonObject: ...

    def replace_settings(self, data: object) -> JsonObject:
        """Validate and apply new settings (ValueError naming the problem); returns them."""
        ...

    def counters(self) -> dict[str, int]: ...


def error_response(status: int, code: str, message: str) -> ApiResponse:
    return ApiResponse(status, {"error": code, "message": message})


def no_answer() -> ApiResponse:
    return ApiResponse(NO_ANSWER, {})


class BadRequestError(ValueError):
    """The request itself is malformed (a missing or unparseable parameter)."""


class FaultsUnavailableError(LookupError):
    """The admin routes were asked about fault injection that this service does not have."""


# Checked in this order; the first matching class decides the answer.
_ERROR_ANSWERS: tuple[tuple[type[Exception], int, str], ...] = (
    (FaultsUnavailableError, 404, "no_fault_injection"),
    (OrderNotFoundError, 404, "order_not_found"),
    (UnknownInstrumentError, 404, "unknown_instrument"),
    (UnknownMarketError, 404, "unknown_market"),
    (DerivativesUnavailableError, 404, "no_derivatives"),
    (DatabaseUnavailableError, 503, "unavailable"),
    (BadBrokerReplyError, 400, "bad_request"),
    (ValueError, 400, "bad_request"),
)


class SandboxApi:
    """Routes requests to a SandboxVenue. Never raises: every failure becomes an answer.
    `faults`, when given, is what the admin routes show and change."""

    def __init__(self, venue: SandboxVenue, *, faults: FaultControl | None = None,
                 derivatives: SandboxDerivatives | None = None) -> None:
        self._venue = venue
        self._faults = faults
        # Built on first use: a venue whose users never ask for options never pays for them.
        self._derivatives = derivatives
        self._derivatives_lock = threading.Lock()
        self._routes: tuple[tuple[str, tuple[str, ...], Callable[..., ApiResponse]], ...] = (
            ("GET", ("v1", "health"), self._health),
            ("GET", ("v1", "clock"), self._clock),
            ("GET", ("v1", "quote"), self._quote),
            ("GET", ("v1", "bars"), self._bars),
            ("GET", ("v1", "instruments"), self._instruments),
            ("GET", ("v1", "chain"), self._chain),
            ("GET", ("v1", "quotes"), self._option_quotes),
            ("GET", ("v1", "futures"), self._futures),
            ("GET", ("v1", "perpetual"), self._perpetual),
            ("GET", ("v1", "funding"), self._funding),
            ("POST", ("v1", "accounts", _CAPTURE, "orders"), self._submit),
            ("GET", ("v1", "accounts", _CAPTURE, "orders"), self._open_orders),
            ("GET", ("v1", "accounts", _CAPTURE, "orders", _CAPTURE), self._lookup),
            ("DELETE", ("v1", "accounts", _CAPTURE, "orders", _CAPTURE), self._cancel),
            ("GET", ("v1", "accounts", _CAPTURE, "fills"), self._fills),
            ("GET", ("v1", "accounts", _CAPTURE, "funding"), self._account_funding),
            ("GET", ("v1", "accounts", _CAPTURE, "positions"), self._positions),
            ("GET", ("v1", "accounts", _CAPTURE, "balances"), self._balances),
            ("GET", ("v1", "admin", "faults"), self._faults_settings),
            ("PUT", ("v1", "admin", "faults"), self._replace_faults),
            ("GET", ("v1", "admin", "stats"), self._stats),
            ("GET", ("v1", "admin", "submissions"), self._submissions),
        )

    def __call__(self, request: ApiRequest) -> ApiResponse:
        try:
            return self._dispatch(request)
        except Exception as exc:
            return answer_for_error(exc, request)

    def _dispatch(self, request: ApiRequest) -> ApiResponse:
        path_known = False
        for method, pattern, handler in self._routes:
            captured = _match(pattern, request.segments)
            if captured is None:
                continue
            if method == request.method:
                return handler(request, *captured)
            path_known = True
        if path_known:
            return error_response(405, "method_not_allowed",
                                  f"{request.method} is not allowed on this path")
        return error_response(404, "not_found", "no such route: /" + "/".join(request.segments))

    # --- market data ----------------------------------------------------------------------

    def _health(self, _request: ApiRequest) -> ApiResponse:
        offsets_s = {market: int(offset.total_seconds())
                     for market, offset in sorted(self._venue.offsets.items())}
        return ApiResponse(200, {"status": "ok", "now": time_text(self._venue.wall_now()),
                                 "time_mode": self._venue.config.time_mode,
                                 "genesis_at": time_text(self._venue.genesis_at),
                                 "offsets_s": offsets_s})

    def _clock(self, request: ApiRequest) -> ApiResponse:
        clock = self._venue.market_clock(_param(request, "market"))
        return ApiResponse(200, market_clock_to_dict(clock))

    def _quote(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, quote_to_dict(self._venue.quote(_param(request, "instrument"))))

    def _bars(self, request: ApiRequest) -> ApiResponse:
        bars = self._venue.bars(_param(request, "instrument"), _int_param(request, "interval_s"),
                                _time_param(request, "start"), _time_param(request, "end"))
        return ApiResponse(200, {"bars": [bar_to_dict(bar) for bar in bars]})

    def _instruments(self, _request: ApiRequest) -> ApiResponse:
        instruments = self._venue.instruments()
        return ApiResponse(200, {"instruments": [instrument_to_dict(instruments[key])
                                                 for key in sorted(instruments)]})

    def _chain(self, request: ApiRequest) -> ApiResponse:
        expiry = _date_param(request, "expiry") if request.query.get("expiry") else None
        strikes = _int_param(request, "strikes") if request.query.get("strikes") else None
        at = _time_param(request, "at") if request.query.get("at") else None
        chain = self._options().chain(_param(request, "underlying"), expiry, strikes, at)
        return ApiResponse(200, chain_to_dict(chain))

    def _option_quotes(self, request: ApiRequest) -> ApiResponse:
        keys = [key.strip() for key in _param(request, "instruments").split(",") if key.strip()]
        return ApiResponse(200, quotes_to_dict(self._options().quotes(keys)))

    def _futures(self, request: ApiRequest) -> ApiResponse:
        at = _time_param(request, "at") if request.query.get("at") else None
        return ApiResponse(200, futures_to_dict(self._options().futures(
            _param(request, "underlying"), at)))

    def _perpetual(self, request: ApiRequest) -> ApiResponse:
        perpetuals = SandboxPerpetuals(self._venue)  # stateless: nothing to keep
        return ApiResponse(200, perpetual_to_dict(perpetuals.quote(_param(request,
                                                                          "instrument"))))

    def _funding(self, request: ApiRequest) -> ApiResponse:
        payments = SandboxPerpetuals(self._venue).funding_history(
            _param(request, "instrument"), _time_param(request, "start"),
            _time_param(request, "end"))
        return ApiResponse(200, {"funding": [funding_to_dict(p) for p in payments]})

    def _options(self) -> SandboxDerivatives:
        with self._derivatives_lock:
            if self._derivatives is None:
                self._derivatives = SandboxDerivatives(self._venue)
            return self._derivatives

    # --- accounts -------------------------------------------------------------------------

    def _submit(self, request: ApiRequest, account: str) -> ApiResponse:
        order = order_request_from_dict(loads(request.body, what="order"))
        report = self._venue.submit(account, order)
        latency_ms = self._venue.config.latency_ms
        if latency_ms:
            time.sleep(latency_ms / 1000)  # the answer travels back as slowly as a venue's
        return ApiResponse(200, order_report_to_dict(report))

    def _open_orders(self, request: ApiRequest, account: str) -> ApiResponse:
        status = request.query.get("status", "open")
        if status != "open":
            raise BadRequestError(f"status={status!r}: only status=open can be listed")
        orders = self._venue.open_orders(account)
        return ApiResponse(200, {"orders": [order_report_to_dict(o) for o in orders]})

    def _lookup(self, _request: ApiRequest, account: str, client_order_id: str) -> ApiResponse:
        report = self._venue.lookup(account, client_order_id)
        if report is None:
            raise OrderNotFoundError(f"account {account!r} has no order {client_order_id!r}")
        return ApiResponse(200, order_report_to_dict(report))

    def _cancel(self, _request: ApiRequest, account: str, client_order_id: str) -> ApiResponse:
        return ApiResponse(200, order_report_to_dict(self._venue.cancel(account, client_order_id)))

    def _fills(self, request: ApiRequest, account: str) -> ApiResponse:
        limit = _int_param(request, "limit") if "limit" in request.query else MAX_FILL_PAGE
        page = self._venue.fills_since(account, request.query.get("after") or None, limit)
        return ApiResponse(200, fill_page_to_dict(page))

    def _account_funding(self, request: ApiRequest, account: str) -> ApiResponse:
        limit = _int_param(request, "limit") if "limit" in request.query else MAX_FUNDING_PAGE
        page = self._venue.funding_since(account, request.query.get("after") or None, limit)
        return ApiResponse(200, funding_page_to_dict(page))

    def _positions(self, _request: ApiRequest, account: str) -> ApiResponse:
        positions = self._venue.positions(account)
        return ApiResponse(200, {"positions": [position_to_dict(p) for p in positions]})

    def _balances(self, _request: ApiRequest, account: str) -> ApiResponse:
        return ApiResponse(200, {"balances": balances_to_dict(self._venue.balances(account))})

    # --- admin ----------------------------------------------------------------------------

    def _fault_control(self) -> FaultControl:
        if self._faults is None:
            raise FaultsUnavailableError("this sandbox service was started without fault "
                                         "injection")
        return self._faults

    def _faults_settings(self, _request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, self._fault_control().settings())

    def _replace_faults(self, request: ApiRequest) -> ApiResponse:
        control = self._fault_control()
        settings = control.replace_settings(loads(request.body, what="faults"))
        changed = [f"{name}={value}" for name, value in settings.items()
                   if name.endswith(("_probability", "_ms", "_s")) and value]
        # A warning: whoever reads the log later must see that the venue misbehaved on purpose.
        logger.warning("sandbox fault injection set: %s", ", ".join(changed) or "all off")
        return ApiResponse(200, settings)

    def _stats(self, _request: ApiRequest) -> ApiResponse:
        counts = self._venue.submission_counts()
        return ApiResponse(200, {
            "faults": {} if self._faults is None else self._faults.counters(),
            "submissions": sum(c.submissions for c in counts.values()),
            "duplicates": sum(c.duplicates for c in counts.values()),
            "rejected": sum(c.rejected for c in counts.values()),
            "accounts": {account: submission_counts_to_dict(counts[account])
                         for account in sorted(counts)},
        })

    def _submissions(self, request: ApiRequest) -> ApiResponse:
        after = _int_param(request, "after") if "after" in request.query else 0
        limit = _int_param(request, "limit") if "limit" in request.query else MAX_SUBMISSION_PAGE
        found, more = self._venue.submissions(request.query.get("account") or None, after,
                                              limit)
        return ApiResponse(200, {"submissions": [submission_to_dict(s) for s in found],
                                 "cursor": found[-1].sequence if found else after,
                                 "more": more})


def _match(pattern: tuple[str, ...], segments: tuple[str, ...]) -> list[str] | None:
    if len(pattern) != len(segments):
        return None
    captured: list[str] = []
    for expected, actual in zip(pattern, segments, strict=True):
        if expected == _CAPTURE:
            captured.append(actual)
        elif expected != actual:
            return None
    return captured


def answer_for_error(exc: Exception, request: ApiRequest) -> ApiResponse:
    """The answer to a request that failed with `exc` (a 4xx, a 503 or a logged 500)."""
    for kind, status, code in _ERROR_ANSWERS:
        if isinstance(exc, kind):
            if status >= 500:
                logger.warning("sandbox %s %s: %s", request.method, "/".join(request.segments),
                               exc)
            return error_response(status, code, str(exc))
    logger.exception("sandbox %s /%s failed", request.method, "/".join(request.segments))
    return error_response(500, "internal", f"internal error: {exc.__class__.__name__}")


def _param(request: ApiRequest, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise BadRequestError(f"query parameter {name!r} is required")
    return value


def _int_param(request: ApiRequest, name: str) -> int:
    text = _param(request, name)
    if not (text.isascii() and text.isdigit()):
        raise BadRequestError(f"{name}={text!r}: expected a whole number")
    return int(text)


def _date_param(request: ApiRequest, name: str) -> date:
    text = _param(request, name)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"{name}={text!r}: expected a date, YYYY-MM-DD") from None


def _time_param(request: ApiRequest, name: str) -> datetime:
    text = _param(request, name)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"{name}={text!r}: expected an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise BadRequestError(f"{name}={text!r}: needs a UTC offset")
    return moment.astimezone(UTC)
