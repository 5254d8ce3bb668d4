"""SandboxService: the venue on loopback HTTP for a fleet's bot processes, with a matching thread.

stdlib only (ThreadingHTTPServer, one thread per connection, HTTP/1.1 keep-alive). HTTP is
adapted to a RequestHandler: by default api.SandboxApi wrapped in a faults.FaultInjector
(every fault off unless `faults` says otherwise; the admin API can switch them on live).
An answer with status api.NO_ANSWER closes the connection without writing anything.
Beside it, on a port of its own, the WebSocket quote stream (stream.QuoteStreamServer),
started and stopped with the service; GET /v1/stream tells a client where it is.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fleetkit.core.errors import DatabaseUnavailableError

from .api import NO_ANSWER, ApiRequest, ApiResponse, RequestHandler, error_response
from .faults import FaultConfig, fault_injecting_api
from .stream import QuoteStreamServer, StreamConfig, advertising
from .stream_ticks import VenueTicks
from .venue import SandboxVenue
from .wire import dumps

logger = logging.getLogger("fleetkit.sandbox")

MAX_BODY_BYTES = 64 * 1024
IDLE_CONNECTION_TIMEOUT_S = 60.0
SHUTDOWN_POLL_S = 0.1  # how soon stop() is noticed; the stdlib default of 0.5 s slows restarts


class SandboxService:
    """Serve `venue` at http://host:port/v1 and run its matching pass every
    `match_interval_s`. Port 0 picks a free port; read it from `port` after start().

    Requests go to `handler` if given, otherwise to the venue's API behind a fault injector
    that starts with `faults` (default: all off). The quote stream runs as `stream` says
    (StreamConfig(): a free port, one tick a second); the default, None, runs without one,
    so a service nobody streams from starts no second port, thread and event loop."""

    def __init__(self, venue: SandboxVenue, host: str = "127.0.0.1", port: int = 0, *,
                 handler: RequestHandler | None = None, faults: FaultConfig | None = None,
                 match_interval_s: float = 1.0,
                 stream: StreamConfig | None = None) -> None:
        if match_interval_s <= 0:
            raise ValueError("match_interval_s must be positive")
        if handler is not None and faults is not None:
            raise ValueError("give a handler or faults, not both: faults wrap the default API")
        self._venue = venue
        self._address = (host, port)
        self._stream = None if stream is None else QuoteStreamServer(
            VenueTicks(venue), host, stream)
        self._handler = advertising(handler if handler is not None else fault_injecting_api(
            venue, faults or FaultConfig()), lambda: self.stream_url)
        self._match_interval_s = match_interval_s
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = False

    @property
    def port(self) -> int:
        return self._bound().server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def stream_url(self) -> str | None:
        """The quote stream's ws:// address once started; None when run without one."""
        return None if self._stream is None else self._stream.url

    @property
    def quote_stream(self) -> QuoteStreamServer | None:
        return self._stream

    def start(self) -> None:
        """Serve and match in background threads; returns once the port is bound."""
        server = self._bind()
        self._spawn("sandbox-http", lambda: server.serve_forever(poll_interval=SHUTDOWN_POLL_S))
        self._spawn("sandbox-matching", self._match_forever)
        logger.info("sandbox service listening on %s", self.url)

    def serve_forever(self) -> None:
        """Serve in this thread until stop() is called from another thread (or Ctrl-C)."""
        server = self._bind()
        self._spawn("sandbox-matching", self._match_forever)
        logger.info("sandbox service listening on %s", self.url)
        try:
            server.serve_forever(poll_interval=SHUTDOWN_POLL_S)
        finally:
            self._stopping.set()
            self._close()

    def stop(self) -> None:
        """Stop serving, drop open connections and stop matching; safe to call twice."""
        if self._server is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()  # returns once serve_forever has left its loop
        self._close()

    def __enter__(self) -> SandboxService:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _bind(self) -> _Server:
        if self._server is not None:
            raise RuntimeError("a SandboxService starts once; create a new one to restart")
        self._server = _Server(self._address, self._handler)
        if self._stream is not None:
            try:
                self._stream.start()
            except OSError:
                self._server.server_close()
                raise
        return self._server

    def _bound(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the sandbox service is not started")
        return self._server

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _close(self) -> None:
        with self._close_lock:
            if self._closed:
                return  # stop() and a returning serve_forever() may both get here
            self._closed = True
        server = self._bound()
        if self._stream is not None:
            self._stream.stop()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        logger.info("sandbox service stopped")

    def _match_forever(self) -> None:
        failing = False
        while not self._stopping.wait(self._match_interval_s):
            try:
                self._venue.match()
            except DatabaseUnavailableError as exc:
                if not failing:  # once per outage, not once a second
                    logger.warning("sandbox matching paused: %s", exc)
                failing = True
            except Exception:
                logger.exception("sandbox matching pass failed")
            else:
                if failing:
                    logger.info("sandbox matching resumed")
                failing = False


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers its open connections, so stop() can close
    keep-alive connections instead of leaving their threads serving a stopped venue."""

    daemon_threads = True
    # The listen backlog. At a bar close every bot calls at once: with the stdlib's 5, the
    # kernel drops the surplus SYNs and those bots wait out TCP's 1 s, 3 s, 7 s retries
    # (the whole p99 cycle lag of a 100-bot fleet, bench/fleet_scale.py).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: RequestHandler) -> None:
        super().__init__(address, _HttpHandler)
        self.handler = handler
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer is routine; the stdlib would print a traceback.
        logger.debug("sandbox connection from %s failed", client_address, exc_info=True)


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: ~35 bots polling should not reconnect
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox http %s: " + format, self.address_string(), *args)

    def _answer(self) -> None:
        request = self._read_request()
        response = request if isinstance(request, ApiResponse) else self._handle(request)
        if response.status == NO_ANSWER:
            # The client must see the line go dead with nothing written: a lost answer.
            self.close_connection = True
            return
        body = dumps(response.payload)
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, request: ApiRequest) -> ApiResponse:
        try:
            return self.server.handler(request)
        except Exception as exc:  # a wrapping handler failed: answer, never drop the line
            logger.exception("sandbox handler failed on %s %s", request.method, self.path)
            return error_response(500, "internal", f"internal error: {exc.__class__.__name__}")

    def _read_request(self) -> ApiRequest | ApiResponse:
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            self.close_connection = True
            return error_response(400, "bad_request", "Content-Length must be a number")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would be taken for the next request
            return error_response(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        segments = tuple(unquote(segment) for segment in parts.path.split("/")[1:])
        query = {name: values[-1] for name, values in
                 parse_qs(parts.query, keep_blank_values=True).items()}
        return ApiRequest(self.command, segments, query, body)
