"""What every fake HTTP service in `fleetkit.testing` is built on: a ThreadingHTTPServer on
loopback in a daemon thread, started and stopped like a context manager, and a handler
that can answer with bytes or drop the connection the way a lost reply looks."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago, for a service a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # port 0 picks a fresh port; reuse would only hide clashes
    owner: Any  # the ServedInThread that started it; handlers reach their fake through it


class LoopbackHandler(BaseHTTPRequestHandler):
    """GET, POST, PUT and DELETE go to `_serve`, which each fake writes."""

    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raise NotImplementedError

    def send_body(self, status: int, content_type: str, body: bytes,
                  headers: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (a timeout): nobody is left to tell
            self.close_connection = True

    def drop(self) -> None:
        """Close the connection without a byte of reply, as a lost reply looks."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class ServedInThread:
    """Serves `handler` on `host:port` (port 0: any free one) in a daemon thread.

    `stopping` is set first thing in `stop()`, so a handler holding a request (a slow or
    timeout fault, a long poll) can cut it short and a test never waits one out."""

    def __init__(self, handler: type[LoopbackHandler], thread_name: str,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.stopping = threading.Event()
        self._handler = handler
        self._thread_name = thread_name
        self._address = (host, port)
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self._thread_name} server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"the {self._thread_name} server is already started")
        self.stopping.clear()
        server = LoopbackServer(self._address, self._handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.05}, name=f"{self._thread_name}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.stopping.set()
        self._wake_waiters()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def _wake_waiters(self) -> None:
        """Subclasses whose handlers wait on something other than `stopping` wake them."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
