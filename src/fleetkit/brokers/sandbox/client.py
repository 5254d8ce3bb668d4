"""SandboxClient: one account at a SandboxService, as the engine's Broker and MarketData over HTTP.

It translates, it does not retry: a refused connection, a timeout or a 5xx raises
TransientBrokerError and the engine decides what to do (an order whose submit timed out is
resolved by lookup, never resent blindly).

The admin methods (faults, set_faults, stats, submissions) are for operators and tests;
they import the fault module only when called, so a bot process never loads it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from fleetkit.core.backoff import equal_jitter_delay
from fleetkit.core.errors import BadBrokerReplyError, OrderRejectedError, TransientBrokerError
from fleetkit.core.futures import FundingPayment, FuturesCurve, PerpetualQuote
from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.core.orders import OrderStatus
from fleetkit.engine.ports import (
    FillPage,
    FundingPage,
    OrderReport,
    OrderRequest,
    PositionReport,
)

from .derivatives_wire import (
    chain_from_dict,
    funding_from_dict,
    futures_from_dict,
    perpetual_from_dict,
    quotes_from_dict,
)
from .errors import (
    DerivativesUnavailableError,
    OrderNotFoundError,
    UnknownInstrumentError,
    UnknownMarketError,
)
from .wire import (
    JsonObject,
    Reader,
    balances_from_dict,
    bar_from_dict,
    dumps,
    fill_page_from_dict,
    funding_page_from_dict,
    instrument_from_dict,
    list_from,
    loads,
    market_clock_from_dict,
    order_report_from_dict,
    order_request_to_dict,
    position_from_dict,
    quote_from_dict,
    time_text,
)

if TYPE_CHECKING:
    from .faults import FaultConfig, SandboxStats, SubmissionPage

_ERRORS_BY_CODE: Mapping[str, type[Exception]] = {
    "order_not_found": OrderNotFoundError,
    "unknown_instrument": UnknownInstrumentError,
    "unknown_market": UnknownMarketError,
    "no_derivatives": DerivativesUnavailableError,
}


def _segment(value: str) -> str:
    """One path segment, with '/' and ':' (in instrument keys and order ids) escaped."""
    return quote(value, safe="")


# A blip (one dropped connection, one 503) should not pause a bot: safe requests get this
# many quick retries, 0.1 s then 0.2 s (with jitter), before the error reaches the engine.
RETRIES = 2
RETRY_BASE_S = 0.1
_JITTER = random.Random()  # noqa: S311 - retry jitter, not security
KEEPALIVE_S = 30.0  # < the service's IDLE_CONNECTION_TIMEOUT_S (60 s)


class SandboxClient:
    """Broker + MarketData for `account` at the sandbox service at `base_url`.

    Keeps one keep-alive connection pool; close() it (or use it as a context manager).
    `transport` lets tests plug in httpx.MockTransport or a fault-injecting transport.
    """

    def __init__(self, base_url: str, account: str, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None, retries: int = RETRIES) -> None:
        """`retries`: quick retries of requests that are safe to repeat (0 turns them off)."""
        if retries < 0:
            raise ValueError("retries must be zero or more")
        self._retries = retries
        self._base_url = base_url.rstrip("/")
        self._account = account
        self._orders_path = f"/v1/accounts/{_segment(account)}/orders"
        # Keep the connection between a bot's calls (every heartbeat, at most 10 s apart by
        # default) instead of httpx's 5 s: no reconnect storm at each bar close. Shorter than
        # the server's idle timeout, so the client always closes first and never sends on a
        # connection the server is closing.
        self._http = httpx.Client(base_url=self._base_url, timeout=timeout_s,
                                  transport=transport,
                                  limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S),
                                  headers={"Content-Type": "application/json"})

    @property
    def account(self) -> str:
        return self._account

    # --- Broker ---------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> OrderReport:
        body = dumps(order_request_to_dict(request))
        report = order_report_from_dict(self._call("POST", self._orders_path, body=body))
        if report.client_order_id != request.client_order_id:
            raise BadBrokerReplyError(f"submitted {request.client_order_id!r}, the sandbox "
                                      f"answered for {report.client_order_id!r}")
        if report.status is OrderStatus.REJECTED:
            raise OrderRejectedError(report.reason)
        return report

    def cancel(self, client_order_id: str) -> OrderReport:
        return order_report_from_dict(self._call("DELETE", self._order_path(client_order_id)))

    def lookup(self, client_order_id: str) -> OrderReport | None:
        try:
            data = self._call("GET", self._order_path(client_order_id))
        except OrderNotFoundError:
            return None
        return order_report_from_dict(data)

    def open_orders(self) -> list[OrderReport]:
        data = self._call("GET", self._orders_path, params={"status": "open"})
        return list_from(data, "orders", order_report_from_dict)

    def fills_since(self, cursor: str | None, limit: int = 500) -> FillPage:
        params = {"limit": str(limit)} | ({} if cursor is None else {"after": cursor})
        return fill_page_from_dict(self._call("GET", self._account_path("fills"), params=params))

    def funding_since(self, cursor: str | None, limit: int = 500) -> FundingPage:
        """Perpetual funding this account paid or received after `cursor`, oldest first."""
        params = {"limit": str(limit)} | ({} if cursor is None else {"after": cursor})
        return funding_page_from_dict(self._call("GET", self._account_path("funding"),
                                                 params=params))

    def positions(self) -> list[PositionReport]:
        data = self._call("GET", self._account_path("positions"))
        return list_from(data, "positions", position_from_dict)

    def balances(self) -> dict[str, Decimal]:
        data = self._call("GET", self._account_path("balances"))
        return balances_from_dict(Reader(data, "body").raw("balances"), "body.balances")

    def cash(self) -> dict[str, Decimal]:
        """The sandbox gives every bot an account of its own: its cash is the bot's."""
        return self.balances()

    # --- MarketData -----------------------------------------------------------------------

    def market_clock(self, market: str) -> MarketClock:
        return market_clock_from_dict(self._call("GET", "/v1/clock", params={"market": market}))

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime) -> list[Bar]:
        params = {"instrument": instrument, "interval_s": str(interval_s),
                  "start": time_text(start), "end": time_text(end)}
        return list_from(self._call("GET", "/v1/bars", params=params), "bars", bar_from_dict)

    def quote(self, instrument: str) -> Quote:
        return quote_from_dict(self._call("GET", "/v1/quote", params={"instrument": instrument}))

    def instruments(self) -> dict[str, Instrument]:
        found = list_from(self._call("GET", "/v1/instruments"), "instruments",
                          instrument_from_dict)
        return {instrument.key: instrument for instrument in found}

    # --- ChainSource (option chains and quotes) and index futures ----------------------

    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        params = {"underlying": underlying}
        if expiry is not None:
            params["expiry"] = expiry.isoformat()
        if strikes_each_side is not None:
            params["strikes"] = str(strikes_each_side)
        if at is not None:
            params["at"] = time_text(at)
        return chain_from_dict(self._call("GET", "/v1/chain", params=params))

    def option_quotes(self, instruments: Sequence[str]) -> dict[str, ChainQuote]:
        if not instruments:
            return {}
        if any("," in key for key in instruments):
            raise ValueError("an instrument key cannot contain ','")
        found = quotes_from_dict(self._call("GET", "/v1/quotes",
                                            params={"instruments": ",".join(instruments)}))
        missing = [key for key in instruments if key not in found]
        if missing:
            raise BadBrokerReplyError(f"the sandbox left out quotes for {', '.join(missing)}")
        return found

    def futures(self, underlying: str, at: datetime | None = None) -> FuturesCurve:
        params = {"underlying": underlying} | ({} if at is None else {"at": time_text(at)})
        return futures_from_dict(self._call("GET", "/v1/futures", params=params))

    def perpetual(self, instrument: str) -> PerpetualQuote:
        """A perpetual swap's mark and index price and its funding ("CRYPTO:BTC/USDT:USDT")."""
        return perpetual_from_dict(self._call("GET", "/v1/perpetual",
                                              params={"instrument": instrument}))

    def funding_history(self, instrument: str, start: datetime, end: datetime
                        ) -> list[FundingPayment]:
        params = {"instrument": instrument, "start": time_text(start), "end": time_text(end)}
        return list_from(self._call("GET", "/v1/funding", params=params), "funding",
                         funding_from_dict)

    def market_offset(self, market: str) -> timedelta:
        """Venue time minus wall-clock time for `market`, as the service reports it (the
        service and this process share a host, so they share a wall clock)."""
        reader = Reader(Reader(self.health(), "health").raw("offsets_s"), "health.offsets_s")
        if market not in reader.field_names():
            raise UnknownMarketError(f"the sandbox prices no instrument in market {market!r}")
        return timedelta(seconds=reader.integer(market))

    def health(self) -> JsonObject:
        data = self._call("GET", "/v1/health")
        if not isinstance(data, dict) or data.get("status") != "ok":
            raise BadBrokerReplyError(f"sandbox health: expected status ok, got {data!r}")
        return data

    # --- admin: fault injection and invariant counters ---------------------------------

    def faults(self) -> FaultConfig:
        """The fault-injection settings the service runs with now."""
        return _fault_config(self._call("GET", "/v1/admin/faults"))

    def set_faults(self, config: FaultConfig) -> FaultConfig:
        """Replace the service's fault-injection settings; returns them as applied."""
        body = dumps(config.to_dict())
        return _fault_config(self._call("PUT", "/v1/admin/faults", body=body))

    def stats(self) -> SandboxStats:
        """Faults injected so far by kind; submissions and duplicates per account."""
        from .faults import SandboxStats

        return SandboxStats.from_dict(self._call("GET", "/v1/admin/stats"))

    def submissions(self, account: str | None = None, after: int = 0,
                    limit: int = 1000) -> SubmissionPage:
        """Order submissions the venue received (of `account`, or of all), oldest first."""
        from .faults import SubmissionPage

        params = {"after": str(after), "limit": str(limit)} | (
            {} if account is None else {"account": account})
        return SubmissionPage.from_dict(self._call("GET", "/v1/admin/submissions",
                                                   params=params))

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------

    def _account_path(self, leaf: str) -> str:
        return f"/v1/accounts/{_segment(self._account)}/{leaf}"

    def _order_path(self, client_order_id: str) -> str:
        return f"{self._orders_path}/{_segment(client_order_id)}"

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              body: bytes | None = None) -> object:
        """One request, retried a bounded number of times with jittered backoff when it is
        safe to repeat (reads, and cancels, which the venue treats idempotently). A submit
        is never retried here: its outcome may be unknown, and that is settled by lookup."""
        attempts = 1 if method == "POST" else 1 + self._retries
        for attempt in range(attempts):
            try:
                return self._call_once(method, path, params=params, body=body)
            except TransientBrokerError:
                if attempt + 1 == attempts:
                    raise
                time.sleep(equal_jitter_delay(attempt, RETRY_BASE_S, math.inf, _JITTER))
        raise AssertionError("unreachable")

    def _call_once(self, method: str, path: str, *, params: Mapping[str, str] | None,
                   body: bytes | None) -> object:
        where = f"{method} {self._base_url}{path}"
        try:
            response = self._http.request(method, path, params=params, content=body)
        except httpx.TransportError as exc:
            raise TransientBrokerError(f"{where}: {exc.__class__.__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise BadBrokerReplyError(f"{where}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise TransientBrokerError(f"{where}: HTTP {response.status_code} "
                                       f"{_error_text(response)}")
        if response.status_code >= 400:
            raise _client_error(where, response)
        if response.status_code != 200:
            raise BadBrokerReplyError(f"{where}: unexpected HTTP {response.status_code}")
        return loads(response.content, what=where)


def _fault_config(data: object) -> FaultConfig:
    from .faults import FaultConfig

    try:
        return FaultConfig.from_mapping(data)
    except (TypeError, ValueError) as exc:
        raise BadBrokerReplyError(f"sandbox fault settings: {exc}") from None


def _client_error(where: str, response: httpx.Response) -> Exception:
    code, message = _error_fields(response)
    error = _ERRORS_BY_CODE.get(code) if response.status_code == 404 else None
    if error is not None:
        return error(message)
    return BadBrokerReplyError(f"{where}: the sandbox refused it (HTTP {response.status_code} "
                               f"{code}): {message}")


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    try:
        data = loads(response.content)
        reader = Reader(data, "error")
        return reader.text("error"), reader.text("message", empty=True)
    except BadBrokerReplyError:
        return "unknown", response.text[:200]


def _error_text(response: httpx.Response) -> str:
    code, message = _error_fields(response)
    return f"{code}: {message}"
