"""TcpProxy: a loopback TCP relay that can cut every connection on demand, to rehearse outages.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://fleet@127.0.0.1:{proxy.port}/fleet"  # the bot goes through it
        ...
        proxy.cut()      # as if the server died: live connections are reset, new ones too
        proxy.restore()  # the server is back

While cut, the proxy keeps its port (so nothing else can take it) and resets every
connection the moment it arrives: a client sees "connection reset" or "server closed the
connection", the same errors a stopped server or a dropped network gives it.

One background thread relays all connections with non-blocking sockets and a selector; it
sleeps in select() whenever nothing moves. cut(), restore() and close() may be called from
any thread and return once the relay thread has done what they ask.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field
from enum import Enum
from types import TracebackType

_CHUNK = 64 * 1024
_HIGH_WATER = 256 * 1024  # stop reading a side while this much waits to be written onward
_ANSWER_TIMEOUT_S = 10.0
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, zero seconds: close() sends a TCP reset


class _Command(Enum):
    CUT = "cut"
    RESTORE = "restore"
    CLOSE = "close"


class _Marker(Enum):
    LISTENER = "listener"
    WAKER = "waker"


@dataclass(eq=False, slots=True)
class _End:
    """One socket of a relayed connection and the bytes waiting to be written to it."""

    sock: socket.socket
    pending: bytearray = field(default_factory=bytearray)
    reading: bool = True  # False once this side has sent EOF
    shut: bool = False  # True once EOF has been passed on to this side
    mask: int = 0  # the events the selector watches on this socket now


@dataclass(eq=False, slots=True)
class _Link:
    """A client connection and the proxy's connection to the target, relayed both ways."""

    client: _End
    upstream: _End
    connecting: bool = True
    closed: bool = False

    def peer(self, end: _End) -> _End:
        return self.upstream if end is self.client else self.client

    @property
    def finished(self) -> bool:
        return (not self.client.reading and not self.upstream.reading
                and not self.client.pending and not self.upstream.pending)


class TcpProxy:
    """Relay connections from `host:port` (port 0: any free one) to the target.

    Close it (or use it as a context manager): the relay thread and every socket go with it.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(
            target_host, target_port, type=socket.SOCK_STREAM)[0]
        self._target = (family, kind, proto, address)
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, _Marker.LISTENER)
        self._selector.register(self._wake_in, selectors.EVENT_READ, _Marker.WAKER)
        self._commands: queue.SimpleQueue[tuple[_Command, threading.Event]] = queue.SimpleQueue()
        self._links: set[_Link] = set()
        self._cut = False
        self._closing = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._live = 0
        self._refused = 0
        self._thread = threading.Thread(
            target=self._relay, daemon=True,
            name=f"tcpproxy:{self.port}->{target_host}:{target_port}")
        self._thread.start()

    # --- the public face ------------------------------------------------------------------

    @property
    def host(self) -> str:
        host: str = self._listener.getsockname()[0]
        return host

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def live_connections(self) -> int:
        """Connections being relayed right now."""
        return self._live

    @property
    def refused_connections(self) -> int:
        """Connections reset on arrival because the proxy was cut (each is a client retrying)."""
        return self._refused

    def cut(self) -> None:
        """Reset every live connection and every new one until restore()."""
        self._ask(_Command.CUT)

    def restore(self) -> None:
        """Relay new connections again (those reset while cut stay gone)."""
        self._ask(_Command.RESTORE)

    def close(self) -> None:
        """Reset every connection, stop listening and end the relay thread; safe to repeat."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._thread.is_alive():
            self._ask(_Command.CLOSE)
            self._thread.join(_ANSWER_TIMEOUT_S)
        self._wake_out.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _ask(self, command: _Command) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the TcpProxy is closed")
        done = threading.Event()
        self._commands.put((command, done))
        try:
            self._wake_out.send(b"\0")
        except OSError:  # close() got there first
            raise RuntimeError("the TcpProxy is closed") from None
        if not done.wait(_ANSWER_TIMEOUT_S):
            raise RuntimeError(f"the TcpProxy relay thread did not answer {command.value}")

    # --- the relay thread -----------------------------------------------------------------

    def _relay(self) -> None:
        try:
            while not self._closing:
                for key, events in self._selector.select():
                    if key.data is _Marker.LISTENER:
                        self._accept()
                    elif key.data is _Marker.WAKER:
                        self._obey()
                    else:
                        link, end = key.data
                        if not link.closed:
                            self._move(link, end, events)
        finally:
            for link in list(self._links):
                self._drop(link)
            self._selector.close()
            self._listener.close()
            self._wake_in.close()

    def _obey(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_in.recv(_CHUNK):
                pass
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                return
            if command is not _Command.RESTORE:
                for link in list(self._links):
                    self._drop(link)
            self._cut = command is not _Command.RESTORE  # a closing proxy takes no one new
            self._closing = self._closing or command is _Command.CLOSE
            done.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the client gave up while queued (ECONNABORTED): next one
                continue
            if self._cut:
                self._refused += 1
                _reset(client)
                continue
            self._open(client)

    def _open(self, client: socket.socket) -> None:
        family, kind, proto, address = self._target
        upstream = socket.socket(family, kind, proto)
        client.setblocking(False)
        upstream.setblocking(False)
        code = upstream.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            _reset(client)  # the target itself is down: the client sees that too
            upstream.close()
            return
        link = _Link(_End(client), _End(upstream))
        self._links.add(link)
        self._live = len(self._links)
        self._watch(link, link.upstream)  # writable once connected

    def _move(self, link: _Link, end: _End, events: int) -> None:
        try:
            if link.connecting:
                self._connected(link)
            else:
                if events & selectors.EVENT_WRITE:
                    self._flush(link, end)
                if events & selectors.EVENT_READ:
                    self._receive(link, end)
        except OSError:  # reset, refused, broken pipe: the line is dead both ways
            self._drop(link)
            return
        if link.finished:
            self._drop(link, reset=False)
            return
        self._watch(link, link.client)
        self._watch(link, link.upstream)

    def _connected(self, link: _Link) -> None:
        code = link.upstream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise ConnectionRefusedError(code, "cannot reach the proxy's target")
        link.connecting = False

    def _receive(self, link: _Link, end: _End) -> None:
        try:
            data = end.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        peer = link.peer(end)
        if data:
            peer.pending += data
        else:
            end.reading = False
        self._flush(link, peer)

    def _flush(self, link: _Link, end: _End) -> None:
        """Write what is waiting for `end`; pass EOF on once its peer is done and drained."""
        if end.pending:
            try:
                sent = end.sock.send(end.pending)
            except (BlockingIOError, InterruptedError):
                sent = 0
            del end.pending[:sent]
        if not end.pending and not link.peer(end).reading and not end.shut:
            end.shut = True
            end.sock.shutdown(socket.SHUT_WR)

    def _watch(self, link: _Link, end: _End) -> None:
        mask = 0
        if link.connecting:
            mask = selectors.EVENT_WRITE if end is link.upstream else 0
        else:
            if end.reading and len(link.peer(end).pending) < _HIGH_WATER:
                mask |= selectors.EVENT_READ
            if end.pending:
                mask |= selectors.EVENT_WRITE
        if mask == end.mask:
            return
        if end.mask == 0:
            self._selector.register(end.sock, mask, (link, end))
        elif mask == 0:
            self._selector.unregister(end.sock)
        else:
            self._selector.modify(end.sock, mask, (link, end))
        end.mask = mask

    def _drop(self, link: _Link, *, reset: bool = True) -> None:
        link.closed = True
        for end in (link.client, link.upstream):
            if end.mask:
                self._selector.unregister(end.sock)
                end.mask = 0
            if reset:
                _reset(end.sock)
            else:
                end.sock.close()
        self._links.discard(link)
        self._live = len(self._links)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, so the other side hears at once that the line is dead."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    sock.close()
