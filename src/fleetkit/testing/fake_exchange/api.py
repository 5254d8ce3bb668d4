"""Binance's spot REST dialect over a FakeExchange: routes, parameters, signatures, errors.

Sockets live in `server.py`; this module maps one parsed HTTP request to one reply, so the
whole dialect can be read (and tested) without a network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl

from . import wire
from .exchange import FakeExchange
from .faults import Fault
from .klines import DEFAULT_LIMIT, MAX_LIMIT, bar_window, flat_bars, interval_seconds, kline_row
from .model import BinanceError, OrderRequest, fmt, from_ms, mandatory, to_ms

Params = dict[str, str]
Handler = Callable[["BinanceRestApi", Params], object]

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_MAX_RECV_WINDOW_MS = 60_000
_DAY_MS = 86_400_000
ORDER_PATH = "/api/v3/order"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: str
    body: str
    headers: Mapping[str, str]  # names lower-cased


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    payload: object
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> bytes:
        if isinstance(self.payload, str):
            return self.payload.encode()
        return json.dumps(self.payload, separators=(",", ":")).encode()

    @property
    def content_type(self) -> str:
        return "text/plain" if isinstance(self.payload, str) else "application/json"


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    signed: bool
    weight: int


def error_reply(error: BinanceError) -> HttpReply:
    return HttpReply(error.http_status, {"code": error.code, "msg": error.msg})


class BinanceRestApi:
    """Answers Binance spot REST requests from a FakeExchange's state."""

    def __init__(self, exchange: FakeExchange) -> None:
        self.exchange = exchange
        self._lock = threading.Lock()
        self._weight: dict[int, int] = {}  # used request weight per minute of exchange time
        self.unrouted: list[str] = []  # "METHOD /path" of requests the fake has no answer for

    def record_arrival(self, request: HttpRequest, fault: Fault | None) -> None:
        """Note an order submission before anything (a fault included) happens to it."""
        if (request.method, request.path) == ("POST", ORDER_PATH):
            params = _merged_params(request)
            self.exchange.record_submission(params.get("newClientOrderId"),
                                            fault.kind if fault else None)

    def handle(self, request: HttpRequest) -> HttpReply:
        route = ROUTES.get((request.method, request.path))
        if route is None:
            with self._lock:
                self.unrouted.append(f"{request.method} {request.path}")
            return HttpReply(404, f"fake Binance: no route for {request.method} {request.path}"
                             " (fleetkit's fake serves Binance spot endpoints only)")
        try:
            self.exchange.match()
            params = self._authenticate(request) if route.signed else _merged_params(request)
            reply = HttpReply(200, route.handler(self, params))
        except BinanceError as error:
            reply = error_reply(error)
        except Exception:  # the fake's own bug, or a price source that failed
            self.exchange.internal_errors.append(traceback.format_exc())
            reply = error_reply(BinanceError(
                500, -1000, "An unknown error occurred while processing the request."))
        used = self._use_weight(route.weight)
        reply.headers.update({"X-MBX-USED-WEIGHT": str(used),
                              "X-MBX-USED-WEIGHT-1M": str(used)})
        return reply

    def _use_weight(self, weight: int) -> int:
        minute = to_ms(self.exchange.now()) // 60_000
        with self._lock:
            used = self._weight.get(minute, 0) + weight
            self._weight = {minute: used}
            return used

    # --- signed requests ---------------------------------------------------------------

    def _authenticate(self, request: HttpRequest) -> Params:
        """Binance's HMAC scheme: API key header, then signature, then timestamp window."""
        if request.headers.get("x-mbx-apikey") != self.exchange.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query, query_sig = _split_signature(request.query)
        body, body_sig = _split_signature(request.body)
        signature = query_sig or body_sig
        if not signature:
            raise mandatory("signature")
        expected = hmac.new(self.exchange.api_secret.encode(), (query + body).encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = _merged_params(request)
        self._check_timestamp(params)
        return params

    def _check_timestamp(self, params: Params) -> None:
        timestamp = _int_param(params, "timestamp", required=True)
        window = _int_param(params, "recvWindow") or 5000
        if window > _MAX_RECV_WINDOW_MS:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        server_ms = to_ms(self.exchange.now())
        if timestamp is not None and timestamp >= server_ms + 1000:
            raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of "
                                           "the server's time.")
        if timestamp is not None and server_ms - timestamp > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the "
                                           "recvWindow.")

    # --- public endpoints --------------------------------------------------------------

    def ping(self, params: Params) -> object:
        return {}

    def time(self, params: Params) -> object:
        return {"serverTime": to_ms(self.exchange.now())}

    def exchange_info(self, params: Params) -> object:
        symbols = _symbols_param(params)
        markets = [self.exchange.market(s) for s in symbols] if symbols else list(
            self.exchange.markets.values())
        return wire.exchange_info_json(markets, self.exchange.now())

    def ticker_price(self, params: Params) -> object:
        return self._per_symbol(params, lambda m, last: {"symbol": m, "price": fmt(last)})

    def ticker_24hr(self, params: Params) -> object:
        now = self.exchange.now()
        return self._per_symbol(params, lambda m, last: wire.ticker_24hr_json(
            self.exchange.market(m), last, now))

    def book_ticker(self, params: Params) -> object:
        return self._per_symbol(params, lambda m, last: wire.book_ticker_json(
            self.exchange.market(m), last))

    def _per_symbol(self, params: Params, build: Callable[[str, Decimal], object]) -> object:
        """One object for `symbol`, else a list for `symbols` (or for every market)."""
        if "symbol" in params:
            symbol = params["symbol"]
            return build(symbol, self.exchange.price(symbol))
        symbols = _symbols_param(params) or list(self.exchange.markets)
        return [build(s, self.exchange.price(s)) for s in symbols]

    def depth(self, params: Params) -> object:
        market = self.exchange.market(_required(params, "symbol"))
        levels = min(_int_param(params, "limit") or 100, 5)
        return wire.book_json(market, self.exchange.price(market.symbol), levels,
                              self.exchange.now())

    def klines(self, params: Params) -> object:
        symbol = self.exchange.market(_required(params, "symbol")).symbol
        interval_s = interval_seconds(_required(params, "interval"))
        limit = min(_int_param(params, "limit") or DEFAULT_LIMIT, MAX_LIMIT)
        window = bar_window(interval_s, self.exchange.now(), _int_param(params, "startTime"),
                            _int_param(params, "endTime"), limit)
        if window.start >= window.end:
            return []
        source = self.exchange.bar_source
        bars = (source(symbol, interval_s, window.start, window.end) if source
                else flat_bars(self.exchange.price_source, symbol, window))
        chosen = [b for b in bars if window.start <= b[0] < window.end][:limit]
        return [kline_row(bar, interval_s) for bar in chosen]

    # --- signed endpoints --------------------------------------------------------------

    def account(self, params: Params) -> object:
        return wire.account_json(self.exchange.balances(), self.exchange.commission_rate,
                                 self.exchange.now())

    def new_order(self, params: Params) -> object:
        request = _order_request(params)
        response_type = params.get("newOrderRespType") or "FULL"  # Binance's default
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(400, -1100, "Illegal characters found in parameter "
                                           "'newOrderRespType'.")
        order, fills = self.exchange.place_order(request)
        return wire.new_order_json(order, fills, response_type)

    def get_order(self, params: Params) -> object:
        symbol, order_id, client_id = _order_ref(params, "origClientOrderId")
        return wire.order_json(self.exchange.get_order(symbol, order_id, client_id))

    def cancel_order(self, params: Params) -> object:
        symbol, order_id, client_id = _order_ref(params, "origClientOrderId")
        order = self.exchange.cancel_order(symbol, order_id, client_id)
        cancel_id = params.get("newClientOrderId") or f"fake-cancel-{order.order_id}"
        return wire.canceled_order_json(order, cancel_id, self.exchange.now())

    def open_orders(self, params: Params) -> object:
        return [wire.order_json(o) for o in self.exchange.open_orders(params.get("symbol"))]

    def my_trades(self, params: Params) -> object:
        symbol = self.exchange.market(_required(params, "symbol")).symbol
        order_id, from_id = _int_param(params, "orderId"), _int_param(params, "fromId")
        start_ms, end_ms = _int_param(params, "startTime"), _int_param(params, "endTime")
        _check_trade_query(order_id, from_id, start_ms, end_ms)
        if start_ms is not None and end_ms is None:
            end_ms = start_ms + _DAY_MS  # one day from startTime, as Binance does
        elif end_ms is not None and start_ms is None:
            start_ms = end_ms - _DAY_MS
        trades = self.exchange.my_trades(
            symbol, order_id=order_id, from_id=from_id,
            start=None if start_ms is None else from_ms(start_ms),
            end=None if end_ms is None else from_ms(end_ms),
            limit=min(_int_param(params, "limit") or 500, 1000))
        return [wire.trade_json(t) for t in trades]

    def no_margin_pairs(self, params: Params) -> object:
        """ccxt asks for margin pairs when loading markets with credentials (its option
        fetchMargins, on by default); this account has none."""
        return []


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v3/ping"): Route(BinanceRestApi.ping, False, 1),
    ("GET", "/api/v3/time"): Route(BinanceRestApi.time, False, 1),
    ("GET", "/api/v3/exchangeInfo"): Route(BinanceRestApi.exchange_info, False, 20),
    ("GET", "/api/v3/ticker/price"): Route(BinanceRestApi.ticker_price, False, 2),
    ("GET", "/api/v3/ticker/24hr"): Route(BinanceRestApi.ticker_24hr, False, 2),
    ("GET", "/api/v3/ticker/bookTicker"): Route(BinanceRestApi.book_ticker, False, 2),
    ("GET", "/api/v3/depth"): Route(BinanceRestApi.depth, False, 5),
    ("GET", "/api/v3/klines"): Route(BinanceRestApi.klines, False, 2),
    ("GET", "/api/v3/account"): Route(BinanceRestApi.account, True, 20),
    ("POST", ORDER_PATH): Route(BinanceRestApi.new_order, True, 1),
    ("GET", ORDER_PATH): Route(BinanceRestApi.get_order, True, 4),
    ("DELETE", ORDER_PATH): Route(BinanceRestApi.cancel_order, True, 1),
    ("GET", "/api/v3/openOrders"): Route(BinanceRestApi.open_orders, True, 6),
    ("GET", "/api/v3/myTrades"): Route(BinanceRestApi.my_trades, True, 20),
    ("GET", "/sapi/v1/margin/allPairs"): Route(BinanceRestApi.no_margin_pairs, True, 1),
    ("GET", "/sapi/v1/margin/isolated/allPairs"): Route(BinanceRestApi.no_margin_pairs, True,
                                                        10),
}


# --- parameters --------------------------------------------------------------------------

def _merged_params(request: HttpRequest) -> Params:
    """Query string and form body together; the query string wins, as on Binance."""
    body = dict(parse_qsl(request.body, keep_blank_values=True))
    return {**body, **dict(parse_qsl(request.query, keep_blank_values=True))}


def _split_signature(raw: str) -> tuple[str, str | None]:
    """The signed text (everything but `signature=...`) and the signature, if present."""
    parts = raw.split("&") if raw else []
    signatures = [p.partition("=")[2] for p in parts if p.startswith("signature=")]
    signed = "&".join(p for p in parts if not p.startswith("signature="))
    return signed, signatures[-1] if signatures else None


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise mandatory(name)
    return value


def _illegal(name: str, pattern: re.Pattern[str]) -> BinanceError:
    return BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                    f"legal range is '{pattern.pattern}'.")


def _int_param(params: Params, name: str, *, required: bool = False) -> int | None:
    value = _required(params, name) if required else params.get(name)
    if value is None:
        return None
    if not _INTEGER.match(value):
        raise _illegal(name, _INTEGER)
    return int(value)


def _decimal_param(params: Params, name: str) -> Decimal | None:
    value = params.get(name)
    if value is None:
        return None
    if not _DECIMAL.match(value):
        raise _illegal(name, _DECIMAL)
    return Decimal(value)


def _symbols_param(params: Params) -> list[str]:
    """`symbols=["BTCUSDT","ETHUSDT"]` (a JSON array) or `symbol=BTCUSDT`, else []."""
    if "symbols" in params:
        try:
            symbols = json.loads(params["symbols"])
        except ValueError:
            raise _illegal("symbols", re.compile(r"^\[.*\]$")) from None
        return [str(s) for s in symbols]
    return [params["symbol"]] if "symbol" in params else []


def _order_ref(params: Params, client_key: str) -> tuple[str, int | None, str | None]:
    symbol = _required(params, "symbol")
    order_id = _int_param(params, "orderId")
    client_id = params.get(client_key) or None
    if order_id is None and client_id is None:
        raise BinanceError(400, -1102, f"Param '{client_key}' or 'orderId' must be sent, "
                                       "but both were empty/null!")
    return symbol, order_id, client_id


def _order_request(params: Params) -> OrderRequest:
    """A new order's parameters, checked the way Binance checks them before matching."""
    symbol, side, kind = (_required(params, n) for n in ("symbol", "side", "type"))
    if side not in ("BUY", "SELL"):
        raise BinanceError(400, -1117, "Invalid side.")
    if kind not in wire.ORDER_TYPES:
        raise BinanceError(400, -1116, "Invalid orderType.")
    if "quoteOrderQty" in params:
        raise BinanceError(400, -1013, "Quote order qty market orders are not supported "
                                       "for this symbol.")
    quantity = _decimal_param(params, "quantity")
    if quantity is None:
        raise mandatory("quantity")
    client_id = params.get("newClientOrderId") or None
    if client_id is not None and not _CLIENT_ID.match(client_id):
        raise _illegal("newClientOrderId", _CLIENT_ID)
    if kind == "MARKET":
        for extra in ("price", "timeInForce"):
            if extra in params:
                raise BinanceError(400, -1106, f"Parameter '{extra}' sent when not required.")
        return OrderRequest(symbol, side, kind, quantity, client_order_id=client_id)
    price, time_in_force = _limit_terms(params)
    return OrderRequest(symbol, side, kind, quantity, price, time_in_force, client_id)


def _limit_terms(params: Params) -> tuple[Decimal, str]:
    """A limit order's price and timeInForce, both mandatory."""
    price = _decimal_param(params, "price")
    if price is None:
        raise mandatory("price")
    time_in_force = _required(params, "timeInForce")
    if time_in_force not in ("GTC", "IOC", "FOK"):
        raise BinanceError(400, -1115, "Invalid timeInForce.")
    return price, time_in_force

def _check_trade_query(order_id: int | None, from_id: int | None, start_ms: int | None,
                       end_ms: int | None) -> None:
    """Binance accepts fromId, or a time window of at most a day, or orderId (with fromId)."""
    if (from_id is not None or order_id is not None) and (start_ms, end_ms) != (None, None):
        raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
    if start_ms is not None and end_ms is not None and end_ms - start_ms > _DAY_MS:
        raise BinanceError(400, -1127, "More than 24 hours between startTime and endTime.")

