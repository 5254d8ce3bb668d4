"""SandboxQuoteStream: the sandbox's WebSocket ticker as a data.ports.QuoteStream.

An asyncio loop in a daemon thread holds the connection; callers use plain blocking calls.
It reconnects with capped exponential backoff and equal jitter (a fleet of trackers that lost
the same venue does not come back in lockstep), resubscribes everything on each connection,
and hands out each outage as a StreamGap from the last message before it to the moment the
subscriptions were renewed. Every tick passes core.ticks.TickScreen; a rejected tick is
counted by reason and never handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from fleetkit.core.backoff import equal_jitter_delay
from fleetkit.core.errors import ConfigError, TransientBrokerError
from fleetkit.core.ticks import StreamError, StreamEvent, StreamGap, TickMode, TickScreen

from .stream_wire import MalformedMessage, dumps, parse, tick_from_dict

logger = logging.getLogger("fleetkit.sandbox.stream")


class _Events:
    """Good ticks, gaps and errors waiting for the caller; the oldest go first when full."""

    def __init__(self, limit: int) -> None:
        self._items: deque[StreamEvent] = deque()
        self._limit = limit
        self._ready = threading.Condition()
        self.dropped = 0

    def put(self, event: StreamEvent) -> None:
        with self._ready:
            if len(self._items) >= self._limit:
                self._items.popleft()
                self.dropped += 1
            self._items.append(event)
            self._ready.notify()

    def get(self, timeout_s: float) -> StreamEvent | None:
        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout_s):
                return None
            return self._items.popleft()


class SandboxQuoteStream:
    """The ticker at `url` (ws://...); `discover()` finds it from the service's HTTP address.

    `max_tick_age_s`: a tick older than this (by `now`) is stale. `silence_timeout_s`: with
    no message (heartbeats come every few seconds) for this long the connection is taken
    for dead and replaced. `buffer_limit`: events kept for a caller who is not receiving."""

    def __init__(self, url: str, *, max_tick_age_s: float = 10.0,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 10.0,
                 silence_timeout_s: float = 10.0, buffer_limit: int = 10_000,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rng: random.Random | None = None) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"a quote stream address starts with ws:// or wss://, got {url!r}")
        self._url = url
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._silence_timeout_s = silence_timeout_s
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._screen = TickScreen(timedelta(seconds=max_tick_age_s))
        self._events = _Events(buffer_limit)
        self._lock = threading.Lock()  # guards the two fields below and _screen's counters
        self._modes: dict[str, TickMode] = {}
        self._leaving: set[str] = set()  # unsubscribed, not yet acknowledged by the server
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._connection: ClientConnection | None = None
        self._last_seen: datetime | None = None
        self._lost_at: datetime | None = None
        self.reconnects = 0
        self.server_dropped = 0
        self._thread = threading.Thread(target=self._loop.run_until_complete,
                                        args=(self._run(),), name="quote-stream", daemon=True)
        self._thread.start()

    @classmethod
    def discover(cls, service_url: str, **options: Any) -> SandboxQuoteStream:
        """The stream of the sandbox service at `service_url` (http://host:port)."""
        try:
            answer = httpx.get(f"{service_url.rstrip('/')}/v1/stream", timeout=5.0)
        except httpx.HTTPError as exc:
            raise TransientBrokerError(f"sandbox at {service_url} did not answer: {exc}") from None
        url = answer.json().get("url") if answer.status_code == 200 else None
        if not isinstance(url, str):
            raise ConfigError(f"the sandbox at {service_url} serves no quote stream "
                              f"(GET /v1/stream answered {answer.status_code})")
        return cls(url, **options)

    # --- the QuoteStream port ---------------------------------------------------------------

    def subscribe(self, instruments: Sequence[str], mode: TickMode = "quote") -> None:
        names = list(dict.fromkeys(instruments))
        with self._lock:
            for name in names:
                self._modes[name] = mode
                self._leaving.discard(name)
        self._send_soon([{"a": "subscribe", "v": names}, {"a": "mode", "v": [mode, names]}])

    def unsubscribe(self, instruments: Sequence[str]) -> None:
        names = list(dict.fromkeys(instruments))
        with self._lock:
            for name in names:
                if self._modes.pop(name, None) is not None:
                    self._leaving.add(name)
        self._send_soon([{"a": "unsubscribe", "v": names}])

    def receive(self, timeout_s: float) -> StreamEvent | None:
        return self._events.get(timeout_s)

    def rejected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._screen.counts())

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop ended between check and call
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join()
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> SandboxQuoteStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- diagnostics ------------------------------------------------------------------------

    @property
    def missed(self) -> int:
        """Ticks the sequence numbers say never arrived (dropped by the server)."""
        return self._screen.missed

    @property
    def dropped(self) -> int:
        """Events dropped here because the caller did not receive them in time."""
        return self._events.dropped

    # --- the connection (the loop's thread) -------------------------------------------------

    def _send_soon(self, messages: list[dict[str, Any]]) -> None:
        with contextlib.suppress(RuntimeError):  # closed: nothing to tell the server
            self._loop.call_soon_threadsafe(
                lambda: self._loop.create_task(self._send(messages)))

    async def _send(self, messages: list[dict[str, Any]]) -> None:
        connection = self._connection
        if connection is None:
            return  # the next connection subscribes to everything wanted then
        with contextlib.suppress(ConnectionClosed):
            for message in messages:
                await connection.send(dumps(message))

    async def _run(self) -> None:
        attempt = 0
        stop = asyncio.create_task(self._stopping.wait())
        while not self._stopping.is_set():
            with contextlib.suppress(OSError, TimeoutError, InvalidHandshake, InvalidURI,
                                     ConnectionClosed):
                async with connect(self._url, open_timeout=5, close_timeout=1) as connection:
                    attempt = 0
                    await self._session(connection, stop)
            if self._stopping.is_set():
                break
            delay = equal_jitter_delay(attempt, *self._backoff, self._rng)
            attempt += 1
            await asyncio.wait([stop], timeout=delay)
        stop.cancel()

    async def _session(self, connection: ClientConnection, stop: asyncio.Task[Any]) -> None:
        self._connection = connection
        try:
            await self._resubscribe(connection)
            while True:
                receiving = asyncio.ensure_future(connection.recv())
                done, _ = await asyncio.wait([receiving, stop], timeout=self._silence_timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if receiving not in done:
                    receiving.cancel()
                    if not stop.done():
                        logger.warning("quote stream silent for %s s; reconnecting",
                                       self._silence_timeout_s)
                    return
                self._last_seen = self._now()
                self._handle(receiving.result())
        finally:
            self._connection = None
            if self._lost_at is None:
                self._lost_at = self._last_seen or self._now()

    async def _resubscribe(self, connection: ClientConnection) -> None:
        with self._lock:
            self._screen.new_connection()
            self._leaving.clear()
            by_mode: dict[TickMode, list[str]] = {}
            for name, mode in self._modes.items():
                by_mode.setdefault(mode, []).append(name)
        for mode, names in by_mode.items():
            await connection.send(dumps({"a": "subscribe", "v": names}))
            await connection.send(dumps({"a": "mode", "v": [mode, names]}))
        if self._lost_at is not None:
            self.reconnects += 1
            gap = StreamGap(self._lost_at, self._now(),
                            frozenset(name for names in by_mode.values() for name in names))
            logger.info("quote stream back after %.1f s", (gap.end - gap.start).total_seconds())
            self._events.put(gap)
        self._lost_at = None

    def _handle(self, text: str | bytes) -> None:
        try:
            message = parse(text)
            kind = message.get("type")
            if kind == "tick":
                self._take_tick(message)
            elif kind == "ack" and message.get("a") == "unsubscribe":
                with self._lock:
                    self._leaving.difference_update(message.get("v") or [])
            elif kind == "error":
                self._take_error(message)
            elif kind == "heartbeat" and isinstance(message.get("dropped"), int):
                self.server_dropped = message["dropped"]
        except MalformedMessage as exc:
            with self._lock:
                self._screen.count_malformed()
            logger.debug("quote stream: malformed message rejected: %s", exc)

    def _take_tick(self, message: dict[str, Any]) -> None:
        tick = tick_from_dict(message)
        with self._lock:
            if tick.instrument in self._leaving:
                return  # sent before the server took the unsubscribe: expected, not bad
            problem = self._screen.screen(tick, self._modes, self._now())
        if problem is None:
            self._events.put(tick)
        else:
            logger.debug("quote stream: tick %s #%d rejected (%s): %s", tick.instrument,
                         tick.seq, problem.reason, problem.detail)

    def _take_error(self, message: dict[str, Any]) -> None:
        instrument = message.get("instrument")
        if isinstance(instrument, str):
            with self._lock:  # refused: not subscribed, and not to be asked for again
                self._modes.pop(instrument, None)
        self._events.put(StreamError(str(message.get("message", "")),
                                     instrument if isinstance(instrument, str) else None))
