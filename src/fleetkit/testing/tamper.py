"""TamperingProxy: an HTTP proxy on loopback that makes the sandbox broker lie, on purpose.

    with SandboxService(venue) as service, TamperingProxy(service.url) as proxy:
        client = SandboxClient(proxy.url, "my-bot")  # the bot talks to the broker through it
        proxy.set(tampers.fill_price_times(1000))     # from now on every fills page lies
        ...
        assert proxy.changed == {"fills: fill price x1000": 1}
        proxy.clear()                                 # honest again

Everything passes through unchanged unless a tamper is set. A `Tamper` is a named, pure
function applied to the JSON answer of one route kind (`Route`: submit, lookup, cancel, open
orders, fills page, positions, balances), optionally to the first N answers it changes.
It is given the honest answer and `Seen`: the honest answers this account got before, so a
tamper can replay an old fill with new numbers. Only 200 answers that are JSON objects are
tampered; errors, market data and the admin routes always pass through as they are.

`set`/`clear` switch tampers at runtime from any thread; `changed` counts, by tamper name,
the answers each one changed. The proxy listens on 127.0.0.1 and forwards only to a loopback
address (never through an HTTP proxy from the environment): it is for rehearsals, not for
standing between a bot and a real venue. Ready-made tampers live in `fleetkit.testing.tampers`.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import httpx

from fleetkit.testing.loopback import LoopbackHandler, LoopbackServer, ServedInThread

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
REMEMBERED_ANSWERS = 1000  # per account: enough to replay from, bounded for long rehearsals
_MAX_BODY = 1 << 20


class Route(StrEnum):
    """The kinds of broker answer a tamper can change (sandbox API paths, brokers/sandbox/api)."""

    SUBMIT = "submit"  # POST /v1/accounts/A/orders
    LOOKUP = "lookup"  # GET /v1/accounts/A/orders/C
    CANCEL = "cancel"  # DELETE /v1/accounts/A/orders/C
    OPEN_ORDERS = "open_orders"  # GET /v1/accounts/A/orders?status=open
    FILLS = "fills"  # GET /v1/accounts/A/fills
    POSITIONS = "positions"  # GET /v1/accounts/A/positions
    BALANCES = "balances"  # GET /v1/accounts/A/balances


_ROUTES: dict[tuple[str, str, int], Route] = {
    ("POST", "orders", 4): Route.SUBMIT, ("GET", "orders", 4): Route.OPEN_ORDERS,
    ("GET", "orders", 5): Route.LOOKUP, ("DELETE", "orders", 5): Route.CANCEL,
    ("GET", "fills", 4): Route.FILLS, ("GET", "positions", 4): Route.POSITIONS,
    ("GET", "balances", 4): Route.BALANCES,
}


def route_of(method: str, target: str) -> tuple[Route, str] | None:
    """The route kind and account of a request (`target`: path and query), or None for one
    no tamper may touch (market data, health, admin)."""
    segments = [unquote(s) for s in urlsplit(target).path.split("/")[1:]]
    if len(segments) < 4 or segments[:2] != ["v1", "accounts"]:
        return None
    route = _ROUTES.get((method, segments[3], len(segments)))
    return None if route is None else (route, segments[2])


class Seen:
    """The honest answers one account got through the proxy before this one, oldest first."""

    def __init__(self, answers: Sequence[tuple[Route, JsonObject]]) -> None:
        self._answers = tuple(answers)

    def answers(self, route: Route | None = None) -> list[JsonObject]:
        """Copies, like everything `Seen` hands out: a tamper may change them freely."""
        return copy.deepcopy([body for kind, body in self._answers
                              if route is None or kind is route])

    def fills(self) -> list[JsonObject]:
        """Every fill seen in any answer (fills pages and order answers), once per fill id,
        in the order first seen."""
        found: dict[str, JsonObject] = {}
        for body in self.answers():
            for fill in fills_in(body):
                found.setdefault(str(fill.get("broker_fill_id")), fill)
        return list(found.values())

    def order(self, client_order_id: str) -> JsonObject | None:
        """The latest order answer (submit, lookup, cancel or open orders) about this id."""
        latest = None
        for body in self.answers():
            for order in orders_in(body):
                if order.get("client_order_id") == client_order_id:
                    latest = order
        return latest


Change = Callable[[JsonObject, Seen], JsonObject]
"""Given the broker's answer (a copy: the change may edit and return it) and what the
account saw before, the answer the bot gets instead."""


@dataclass(frozen=True, slots=True)
class Tamper:
    """A named change to the answers of one route; `first`: only the first N answers it
    changes (one it would leave as it is, such as an empty fills page, does not count)."""

    name: str
    route: Route
    change: Change
    first: int | None = None

    def __post_init__(self) -> None:
        if self.first is not None and self.first < 1:
            raise ValueError(f"tamper {self.name!r}: first must be 1 or more")

    def only_first(self, count: int) -> Tamper:
        return replace(self, first=count)


def orders_in(body: JsonObject) -> Iterator[JsonObject]:
    """The order answers in a body: itself (submit, lookup, cancel) or its `orders` list."""
    if "client_order_id" in body and "status" in body:
        yield body
    yield from _objects(body.get("orders"))


def fills_in(body: JsonObject) -> Iterator[JsonObject]:
    """The fills in a body: a fills page's, an order answer's, or those of each open order."""
    holders = list(orders_in(body)) if "orders" in body else [body]
    for holder in holders:
        yield from _objects(holder.get("fills"))


def _objects(items: object) -> Iterator[JsonObject]:
    if isinstance(items, list):
        yield from (item for item in items if isinstance(item, dict))


@dataclass(slots=True)
class _Armed:
    tamper: Tamper
    left: int | None


class TamperingProxy(ServedInThread):
    """Forwards every request to the sandbox service at `upstream` (a loopback URL) and
    hands back its answer, changed by the tampers set (see the module docstring)."""

    def __init__(self, upstream: str, *, port: int = 0, timeout_s: float = 10.0) -> None:
        host = urlsplit(upstream).hostname or ""
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"TamperingProxy forwards to loopback only, not {upstream!r}")
        super().__init__(_Handler, "tampering-proxy", "127.0.0.1", port)
        self.upstream = upstream.rstrip("/")
        self._timeout_s = timeout_s
        self._http = self._upstream_client()
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self._changed: Counter[str] = Counter()
        self._memory: dict[str, deque[tuple[Route, JsonObject]]] = {}

    # --- what a test switches and reads ----------------------------------------------------

    def set(self, *tampers: Tamper) -> None:
        """Replace the tampers in force (applied in this order to a matching answer)."""
        names = [t.name for t in tampers]
        if len(set(names)) != len(names):
            raise ValueError(f"tamper names must be unique, got {names}")
        with self._lock:
            self._armed = [_Armed(t, t.first) for t in tampers]
        log.warning("tampering proxy: %s", ", ".join(names) or "honest")

    def clear(self) -> None:
        """Honest from the next answer on (counts and memory are kept)."""
        self.set()

    @property
    def active(self) -> list[str]:
        """Names of the tampers that will still change answers (first-N not used up)."""
        with self._lock:
            return [a.tamper.name for a in self._armed if a.left is None or a.left > 0]

    @property
    def changed(self) -> dict[str, int]:
        """By tamper name: how many answers it changed since the proxy started."""
        with self._lock:
            return dict(self._changed)

    def seen(self, account: str) -> Seen:
        """The honest answers `account` got through the proxy so far."""
        with self._lock:
            return Seen(tuple(self._memory.get(account, ())))

    def start(self) -> Self:
        if self._http.is_closed:  # started again after a stop
            self._http = self._upstream_client()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self._http.close()

    def _upstream_client(self) -> httpx.Client:
        # trust_env=False: never through an HTTP proxy the environment names
        return httpx.Client(base_url=self.upstream, timeout=self._timeout_s, trust_env=False)

    # --- the proxying itself ----------------------------------------------------------------

    def forward(self, method: str, target: str, body: bytes,
                content_type: str | None) -> tuple[int, str, bytes]:
        """Send one request upstream; its answer (status, content type, body), tampered."""
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            response = self._http.request(method, target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            message = f"tampering proxy: upstream {self.upstream} failed: {exc}"
            return 502, "application/json", _encode({"error": "bad_gateway",
                                                     "message": message})
        answered_as = response.headers.get("Content-Type", "application/json")
        found = route_of(method, target)
        answer = _json_object(response.content) if response.status_code == 200 else None
        if found is None or answer is None:
            return response.status_code, answered_as, response.content
        tampered = self._tamper(found[0], found[1], answer)
        return 200, answered_as, response.content if tampered is None else _encode(tampered)

    def _tamper(self, route: Route, account: str, answer: JsonObject) -> JsonObject | None:
        """The answer after the tampers matching `route`, or None if none changed it. The
        honest answer is remembered either way."""
        with self._lock:
            memory = self._memory.setdefault(account, deque(maxlen=REMEMBERED_ANSWERS))
            seen = Seen(tuple(memory))
            memory.append((route, answer))
            result = answer
            for armed in self._armed:
                if armed.tamper.route is not route or armed.left == 0:
                    continue
                after = armed.tamper.change(copy.deepcopy(result), seen)
                if after == result:
                    continue  # nothing to change here (an empty page): not one of the N
                self._changed[armed.tamper.name] += 1
                if armed.left is not None:
                    armed.left -= 1
                result = after
        return None if result is answer else result


def _json_object(body: bytes) -> JsonObject | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _encode(payload: JsonObject) -> bytes:
    # allow_nan: a tamper may put a bare NaN token on the wire, as a broken venue might
    return json.dumps(payload, separators=(",", ":")).encode()


class _Handler(LoopbackHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("tampering proxy: " + format, *args)

    def _serve(self) -> None:
        proxy: TamperingProxy = self.server.owner
        length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
        body = self.rfile.read(length) if length else b""
        status, kind, answer = proxy.forward(self.command, self.path, body,
                                             self.headers.get("Content-Type"))
        self.send_body(status, kind, answer)
