"""FakeExchangeServer: serves a FakeExchange as Binance's REST API on loopback, faults included."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from .api import BinanceRestApi, HttpReply, HttpRequest
from .exchange import FakeExchange
from .faults import Fault

log = logging.getLogger(__name__)
_MAX_BODY = 1 << 20


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # port 0 picks a fresh port; reuse would only hide clashes
    owner: FakeExchangeServer


class _Handler(BaseHTTPRequestHandler):
    """One request: read it, let the fault plan decide its fate, answer (or not)."""

    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("fake exchange: " + format, *args)

    def _serve(self) -> None:
        owner = self.server.owner
        request = self._read_request()
        fault = owner.exchange.faults.take(request.method, request.path)
        owner.api.record_arrival(request, fault)
        if fault is None:
            self._send(owner.api.handle(request))
        else:
            self._misbehave(fault, request, owner)

    def _misbehave(self, fault: Fault, request: HttpRequest, owner: FakeExchangeServer) -> None:
        status = fault.reply_status
        if fault.kind == "refuse":
            self._drop()
        elif fault.kind == "error_500" and status is not None:
            self._send(HttpReply(status, "Internal Server Error"))
        elif fault.kind == "rate_limit":
            self._send(HttpReply(429, {
                "code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) "
                "is 6000 requests per minute."}, {"Retry-After": str(fault.retry_after_s)}))
        elif fault.kind == "timeout":
            if not owner.stopping.wait(fault.delay_s):
                self._send(owner.api.handle(request))
        elif fault.kind == "ack_lost":
            owner.api.handle(request)  # the request takes effect; its answer is lost
            if status is None:
                self._drop()
            else:
                self._send(HttpReply(status, "Service Unavailable"))

    def _read_request(self) -> HttpRequest:
        length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        return HttpRequest(self.command, path, query, body, headers)

    def _send(self, reply: HttpReply) -> None:
        body = reply.body
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (a timeout fault): nobody is left to tell
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a byte of reply, as a dead gateway would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class FakeExchangeServer:
    """A ThreadingHTTPServer on `host:port` (port 0: any free one) in a daemon thread.

        with FakeExchangeServer(exchange) as server:
            client = binance_client(server.url, exchange.api_key, exchange.api_secret)

    Binds 127.0.0.1 unless told otherwise. `stop()` also cuts short any request a timeout
    fault is holding, so a test never waits out a long delay at teardown.
    """

    def __init__(self, exchange: FakeExchange, host: str = "127.0.0.1", port: int = 0) -> None:
        self.exchange = exchange
        self.api = BinanceRestApi(exchange)
        self.stopping = threading.Event()
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake exchange server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (Binance paths go after it)."""
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the fake exchange server is already started")
        self.stopping.clear()
        server = _Server(self._address, _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.05}, name=f"fake-binance:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
