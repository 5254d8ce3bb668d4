"""FakeExchangeServer: serves a FakeExchange as Binance's REST API on loopback, faults included."""

from __future__ import annotations

import logging

from fleetkit.testing.loopback import LoopbackHandler, LoopbackServer, ServedInThread

from .api import BinanceRestApi, HttpReply, HttpRequest
from .exchange import FakeExchange
from .faults import Fault

log = logging.getLogger(__name__)
_MAX_BODY = 1 << 20


class _Handler(LoopbackHandler):
    """One request: read it, let the fault plan decide its fate, answer (or not)."""

    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("fake exchange: " + format, *args)

    def _serve(self) -> None:
        owner: FakeExchangeServer = self.server.owner
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
            self.drop()
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
                self.drop()
            else:
                self._send(HttpReply(status, "Service Unavailable"))

    def _read_request(self) -> HttpRequest:
        length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        return HttpRequest(self.command, path, query, body, headers)

    def _send(self, reply: HttpReply) -> None:
        self.send_body(reply.status, reply.content_type, reply.body, reply.headers)


class FakeExchangeServer(ServedInThread):
    """A ThreadingHTTPServer on `host:port` (port 0: any free one) in a daemon thread.

        with FakeExchangeServer(exchange) as server:
            client = binance_client(server.url, exchange.api_key, exchange.api_secret)

    Binds 127.0.0.1 unless told otherwise. `stop()` also cuts short any request a timeout
    fault is holding, so a test never waits out a long delay at teardown.
    """

    def __init__(self, exchange: FakeExchange, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Handler, "fake-binance", host, port)
        self.exchange = exchange
        self.api = BinanceRestApi(exchange)
