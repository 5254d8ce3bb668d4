"""TcpProxy on loopback: relays both ways, cuts and restores the line, cleans up after itself."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from fleetkit.brokers.sandbox.testing import eventually
from fleetkit.testing import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass  # the proxy reset the line: that is what these tests do


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = False  # server_close() joins every handler: nothing outlives a test
    allow_reuse_address = True
    request_queue_size = 64


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[TcpProxy]:
    with TcpProxy(*echo) as running:
        yield running


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=5)


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        chunk = sock.recv(size - len(received))
        if not chunk:
            break
        received += chunk
    return bytes(received)


def is_dead(sock: socket.socket) -> bool:
    """True when the line is gone: a reset, or EOF, on the next read."""
    try:
        sock.sendall(b"anyone there?")
        return sock.recv(1) == b""
    except OSError:
        return True


def refuses_new_connections(proxy: TcpProxy) -> bool:
    """True when a new connection dies at once (the reset may even beat connect())."""
    try:
        client = connect(proxy)
    except OSError:
        return True
    with client:
        return is_dead(client)


def test_bytes_go_through_both_ways(proxy: TcpProxy) -> None:
    with connect(proxy) as client:
        client.sendall(b"hello")
        assert receive_exactly(client, 5) == b"hello"


def test_a_large_payload_arrives_whole_while_both_sides_stream(proxy: TcpProxy) -> None:
    payload = os.urandom(3 * 1024 * 1024)  # far beyond the proxy's buffers and the kernel's
    with connect(proxy) as client:
        sender = threading.Thread(target=client.sendall, args=(payload,))
        sender.start()
        echoed = receive_exactly(client, len(payload))
        sender.join()
    assert echoed == payload


def test_end_of_stream_is_passed_on_after_the_data(proxy: TcpProxy) -> None:
    with connect(proxy) as client:
        client.sendall(b"last words")
        client.shutdown(socket.SHUT_WR)
        assert receive_exactly(client, 100) == b"last words"  # then EOF, not a hang
    eventually(lambda: proxy.live_connections == 0, what="the relayed line closed")


def test_many_clients_are_relayed_at_once(proxy: TcpProxy) -> None:
    clients = [connect(proxy) for _ in range(20)]
    try:
        for n, client in enumerate(clients):
            client.sendall(f"client {n}".encode())
        assert [receive_exactly(c, len(f"client {n}")) for n, c in enumerate(clients)] == [
            f"client {n}".encode() for n in range(20)]
        assert proxy.live_connections == 20
    finally:
        for client in clients:
            client.close()


def test_cut_resets_live_connections_and_every_new_one(proxy: TcpProxy) -> None:
    with connect(proxy) as before:
        before.sendall(b"ping")
        receive_exactly(before, 4)

        proxy.cut()

        assert proxy.is_cut and proxy.live_connections == 0
        assert is_dead(before)
    assert refuses_new_connections(proxy)
    eventually(lambda: proxy.refused_connections == 1, what="the new connection refused")


def test_restore_relays_new_connections_again(proxy: TcpProxy) -> None:
    proxy.cut()
    proxy.restore()

    assert not proxy.is_cut
    with connect(proxy) as client:
        client.sendall(b"back")
        assert receive_exactly(client, 4) == b"back"


def test_a_target_that_is_down_looks_down_through_the_proxy() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with TcpProxy("127.0.0.1", port) as proxy:
        assert refuses_new_connections(proxy)
        eventually(lambda: proxy.live_connections == 0, what="the failed line dropped")


def test_cut_and_restore_may_race_from_many_threads(proxy: TcpProxy) -> None:
    def flap() -> None:
        for _ in range(20):
            proxy.cut()
            proxy.restore()

    threads = [threading.Thread(target=flap) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with connect(proxy) as client:
        client.sendall(b"steady")
        assert receive_exactly(client, 6) == b"steady"


def test_close_ends_the_thread_and_the_port_and_may_be_repeated(
        echo: tuple[str, int]) -> None:
    proxy = TcpProxy(*echo)
    client = connect(proxy)
    port = proxy.port

    proxy.close()
    proxy.close()

    assert is_dead(client)
    client.close()
    assert not any(t.name.startswith(f"tcpproxy:{port}") for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with pytest.raises(RuntimeError, match="closed"):
        proxy.cut()
