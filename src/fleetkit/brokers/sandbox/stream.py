"""QuoteStreamServer: the sandbox's WebSocket ticker (protocol in stream_wire), in its own thread.

One asyncio loop serves every connection. Each interval one pass quotes the union of what all
connections subscribed (in a worker thread, so the venue never stalls the loop) and queues a
tick per subscription on each connection. A connection's queue is bounded and drops its
oldest message when full (counted, and told in the heartbeat): a reader that falls behind
loses old ticks, while the venue and every other reader go on at their own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from fleetkit.core.instruments import Instrument
from fleetkit.core.ticks import TICK_MODES, Tick, TickMode

from .api import ApiRequest, ApiResponse, RequestHandler
from .stream_wire import MalformedMessage, dumps, parse, tick_to_dict
from .wire import time_text

logger = logging.getLogger("fleetkit.sandbox.stream")

DEFAULT_MODE: TickMode = "quote"  # Kite's default for a new subscription
_MODE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "ltp": ("bid", "ask", "volume", "bid_quantity", "ask_quantity"),  # fields to leave out
    "quote": ("bid_quantity", "ask_quantity"),
    "full": (),
}


class TickSource(Protocol):
    def instruments(self) -> Mapping[str, Instrument]: ...

    def tick(self, instrument: str) -> Tick: ...


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """The ticker's knobs. `port` 0 picks a free port (SandboxService.stream_url says which)."""

    port: int = 0
    tick_interval_s: float = 1.0
    heartbeat_interval_s: float = 2.0
    max_subscriptions: int = 3000  # Kite's limit per connection
    queue_limit: int = 1000  # messages waiting for one slow reader before the oldest go

    def __post_init__(self) -> None:
        for name in ("tick_interval_s", "heartbeat_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"stream {name} must be positive")
        if self.max_subscriptions < 1 or self.queue_limit < 1:
            raise ValueError("stream max_subscriptions and queue_limit must be at least 1")


class _Subscriber:
    """One connection: what it asked for and what waits to be written to it."""

    def __init__(self, connection: ServerConnection, queue_limit: int) -> None:
        self.connection = connection
        self.modes: dict[str, TickMode] = {}
        self.outbox: deque[str] = deque()
        self.queue_limit = queue_limit
        self.ready = asyncio.Event()
        self.seq = 0
        self.dropped = 0

    def push(self, message: dict[str, Any]) -> None:
        if len(self.outbox) >= self.queue_limit:
            self.outbox.popleft()
            self.dropped += 1
        self.outbox.append(dumps(message))
        self.ready.set()

    def push_tick(self, full: Tick) -> None:
        mode = self.modes.get(full.instrument)
        if mode is None:
            return  # unsubscribed while this pass was quoting
        self.seq += 1
        message = tick_to_dict(full)
        message["seq"], message["mode"] = self.seq, mode
        for name in _MODE_FIELDS[mode]:
            message.pop(name, None)
        self.push(message)


class QuoteStreamServer:
    """Serve `source`'s ticks at ws://host:port/ until stop(); start() returns once bound."""

    def __init__(self, source: TickSource, host: str = "127.0.0.1",
                 config: StreamConfig | None = None) -> None:
        self._source = source
        self._host = host
        self._config = config or StreamConfig()
        self._subscribers: set[_Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._bound = threading.Event()
        self._port = 0
        self._failure: BaseException | None = None
        self._quote_failing = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self._port}/"

    def dropped(self) -> int:
        """Messages dropped so far for slow readers, over the connections open now."""
        return sum(subscriber.dropped for subscriber in list(self._subscribers))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sandbox-stream", daemon=True)
        self._thread.start()
        self._bound.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        """Close every connection (code 1001, going away) and the port; safe to call twice."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stop.set)
            self._thread.join()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # a bind failure reaches start(); later ones are logged
            if not self._bound.is_set():
                self._failure = exc
                self._bound.set()
            else:
                logger.exception("sandbox stream failed")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # write_limit small: a reader that stops reading holds a few KB in websockets'
        # buffers, and the rest waits (and is dropped) in its own bounded outbox. A short
        # close_timeout: stop() must not wait on a reader that no longer reads.
        async with serve(self._connection, self._host, self._config.port,
                         write_limit=16 * 1024, max_size=64 * 1024,
                         close_timeout=1) as server:
            self._port = _bound_port(server)
            self._bound.set()
            pump = asyncio.create_task(self._pump())
            await self._stop.wait()
            pump.cancel()
            server.close()
            await server.wait_closed()

    async def _connection(self, connection: ServerConnection) -> None:
        subscriber = _Subscriber(connection, self._config.queue_limit)
        self._subscribers.add(subscriber)
        subscriber.push({"type": "hello", "tick_interval_s": self._config.tick_interval_s,
                         "heartbeat_interval_s": self._config.heartbeat_interval_s,
                         "max_subscriptions": self._config.max_subscriptions,
                         "modes": list(TICK_MODES)})
        writer = asyncio.create_task(self._write(subscriber))
        try:
            async for text in connection:
                self._command(subscriber, text)
        except ConnectionClosed:
            pass
        finally:
            self._subscribers.discard(subscriber)
            writer.cancel()

    async def _write(self, subscriber: _Subscriber) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await subscriber.ready.wait()
                subscriber.ready.clear()
                while subscriber.outbox:
                    await subscriber.connection.send(subscriber.outbox.popleft())

    async def _pump(self) -> None:
        """Tick every interval, beat every heartbeat interval, until cancelled."""
        next_beat = time.monotonic()
        while True:
            started = time.monotonic()
            wanted = {name for s in self._subscribers for name in s.modes}
            if wanted:
                ticks = await asyncio.to_thread(self._quote_all, sorted(wanted))
                for subscriber in list(self._subscribers):
                    for tick in ticks:
                        subscriber.push_tick(tick)
            if started >= next_beat:
                next_beat = started + self._config.heartbeat_interval_s
                now = time_text(datetime.now(UTC))
                for subscriber in list(self._subscribers):
                    subscriber.push({"type": "heartbeat", "ts": now,
                                     "dropped": subscriber.dropped})
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self._config.tick_interval_s - elapsed))

    def _quote_all(self, instruments: list[str]) -> list[Tick]:
        ticks = []
        failure: Exception | None = None
        for instrument in instruments:
            try:
                ticks.append(self._source.tick(instrument))
            except Exception as exc:  # the venue's book down, say: skip, tell once
                failure = exc
        if failure is not None and not self._quote_failing:
            logger.warning("sandbox stream cannot quote: %s", failure)
        elif failure is None and self._quote_failing:
            logger.info("sandbox stream quoting again")
        self._quote_failing = failure is not None
        return ticks

    def _command(self, subscriber: _Subscriber, text: str | bytes) -> None:
        try:
            message = parse(text)
            action, instruments, mode = _command_parts(message)
        except MalformedMessage as exc:
            subscriber.push({"type": "error", "message": f"{exc}; send "
                             '{"a": "subscribe"|"unsubscribe", "v": [instruments]} or '
                             '{"a": "mode", "v": [mode, [instruments]]}'})
            return
        known = self._source.instruments()
        done: list[str] = []
        for instrument in instruments:
            problem = self._refusal(subscriber, action, instrument, known)
            if problem is not None:
                subscriber.push({"type": "error", "message": problem, "instrument": instrument})
                continue
            if action == "unsubscribe":
                subscriber.modes.pop(instrument, None)
            elif action == "subscribe":
                subscriber.modes.setdefault(instrument, DEFAULT_MODE)
            else:
                subscriber.modes[instrument] = mode
            done.append(instrument)
        subscriber.push({"type": "ack", "a": action, "v": done})

    def _refusal(self, subscriber: _Subscriber, action: str, instrument: str,
                 known: Mapping[str, Instrument]) -> str | None:
        if action == "unsubscribe":
            return None  # unsubscribing what is not subscribed is harmless
        if instrument not in known:
            return (f"unknown instrument {instrument!r}: the sandbox prices "
                    f"{len(known)} instruments, see GET /v1/instruments")
        if action == "mode" and instrument not in subscriber.modes:
            return f"{instrument!r} is not subscribed: subscribe before setting its mode"
        if (action == "subscribe" and instrument not in subscriber.modes
                and len(subscriber.modes) >= self._config.max_subscriptions):
            return (f"cannot subscribe {instrument!r}: a connection may hold at most "
                    f"{self._config.max_subscriptions} subscriptions; unsubscribe some "
                    "or open another connection")
        return None


def advertising(handler: RequestHandler, stream_url: Callable[[], str | None]) -> RequestHandler:
    """`handler`, with GET /v1/stream answering {"url": the ticker's ws:// address} (or 404
    when the service runs without one), so a client needs only the service's HTTP address."""

    def handle(request: ApiRequest) -> ApiResponse:
        if request.method != "GET" or request.segments != ("v1", "stream"):
            return handler(request)
        url = stream_url()
        if url is None:
            return ApiResponse(404, {"error": "no_stream",
                                     "message": "this sandbox service runs without a stream"})
        return ApiResponse(200, {"url": url})

    return handle


def _command_parts(message: dict[str, Any]) -> tuple[str, list[str], TickMode]:
    action, value = message.get("a"), message.get("v")
    mode: object = DEFAULT_MODE
    if action == "mode":
        if not isinstance(value, list) or len(value) != 2:
            raise MalformedMessage('"mode" takes "v": [mode, [instruments]]')
        mode, value = value
        if mode not in TICK_MODES:
            raise MalformedMessage(f"unknown mode {mode!r}; modes: {', '.join(TICK_MODES)}")
    elif action not in ("subscribe", "unsubscribe"):
        raise MalformedMessage(f"unknown action {action!r}")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedMessage(f'"{action}" takes a list of instrument names')
    return action, value, cast(TickMode, mode)


def _bound_port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])
