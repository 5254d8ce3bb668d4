"""The sandbox's WebSocket quote stream on loopback: a real SandboxService and the
SandboxQuoteStream client, through the QuoteStream kit, restarts, limits and slow readers."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.stream import StreamConfig
from fleetkit.brokers.sandbox.stream_client import SandboxQuoteStream
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
    crypto,
    eventually,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.ticks import StreamGap, Tick
from fleetkit.testing.loopback import free_port
from fleetkit.testing.quote_stream_kit import QuoteStreamContract, QuoteStreamKit

FAST = StreamConfig(tick_interval_s=0.02, heartbeat_interval_s=0.2)


class Venue:
    """A sandbox service whose stream can be stopped and served again on the same port."""

    def __init__(self, venue: SandboxVenue, config: StreamConfig) -> None:
        self.venue = venue
        self.config = StreamConfig(free_port(), config.tick_interval_s,
                                   config.heartbeat_interval_s, config.max_subscriptions,
                                   config.queue_limit)
        self.service = self._serve()

    def _serve(self) -> SandboxService:
        service = SandboxService(self.venue, stream=self.config, match_interval_s=60)
        service.start()
        return service

    def restart(self) -> None:
        self.service.stop()
        self.service = self._serve()

    @property
    def stream_url(self) -> str:
        url = self.service.stream_url
        assert url is not None
        return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NEW_YORK_MIDDAY)


@contextlib.contextmanager
def serve(clock: ManualClock, prices: ScriptedPrices | None = None,
          config: StreamConfig = FAST) -> Iterator[Venue]:
    venue = Venue(build_venue(prices or ScriptedPrices(), clock), config)
    yield venue
    venue.service.stop()


@pytest.fixture
def prices() -> ScriptedPrices:
    return ScriptedPrices()


@pytest.fixture
def sandbox(clock: ManualClock, prices: ScriptedPrices) -> Iterator[Venue]:
    with serve(clock, prices) as venue:
        yield venue


@pytest.fixture
def stream(sandbox: Venue, clock: ManualClock) -> Iterator[SandboxQuoteStream]:
    with SandboxQuoteStream.discover(sandbox.service.url, now=clock.now,
                                     backoff_initial_s=0.05, backoff_max_s=0.2) as client:
        yield client


class TestSandboxQuoteStreamContract(QuoteStreamContract):
    @pytest.fixture
    def kit(self, sandbox: Venue, stream: SandboxQuoteStream) -> QuoteStreamKit:
        return QuoteStreamKit(stream, instruments=("NYSE:AAA", "CRYPTO:BTC/USDT"),
                              unknown="NYSE:NOPE", restart=sandbox.restart)


def test_the_service_tells_where_its_stream_is(sandbox: Venue) -> None:
    answer = httpx.get(f"{sandbox.service.url}/v1/stream")
    assert answer.json() == {"url": f"ws://127.0.0.1:{sandbox.config.port}/"}


def test_a_service_without_a_stream_says_so(clock: ManualClock) -> None:
    with SandboxService(build_venue(ScriptedPrices(), clock), stream=None) as service:
        assert service.stream_url is None
        assert httpx.get(f"{service.url}/v1/stream").status_code == 404


def test_ticks_follow_the_venues_price(stream: SandboxQuoteStream,
                                       prices: ScriptedPrices) -> None:
    stream.subscribe(["NYSE:AAA"])
    first = _next_tick(stream)
    prices.set_price("NYSE:AAA", Decimal("123.45"))
    moved = eventually(lambda: (t := _next_tick(stream)).last_price == Decimal("123.45")
                       and t, what="a tick at the new price")
    assert first.last_price == Decimal("100.00")
    assert moved.bid is not None and moved.ask is not None
    assert moved.bid < moved.last_price < moved.ask  # what a market order pays


def test_a_restart_keeps_each_instruments_mode_and_reports_one_gap(
        sandbox: Venue, stream: SandboxQuoteStream) -> None:
    stream.subscribe(["NYSE:AAA"], "full")
    stream.subscribe(["CRYPTO:BTC/USDT"], "ltp")
    eventually(lambda: _next_tick(stream).mode == "full", what="full ticks")
    sandbox.restart()
    gaps = []
    after: dict[str, str] = {}
    while len(after) < 2:
        event = stream.receive(5.0)
        assert event is not None, "the stream did not come back"
        if isinstance(event, StreamGap):
            gaps.append(event)
        elif gaps and isinstance(event, Tick):
            after[event.instrument] = event.mode
    assert after == {"NYSE:AAA": "full", "CRYPTO:BTC/USDT": "ltp"}
    assert len(gaps) == 1 and gaps[0].instruments == {"NYSE:AAA", "CRYPTO:BTC/USDT"}
    assert stream.reconnects == 1 and stream.rejected() == {}


def test_the_subscription_limit_is_an_error_and_the_connection_stays(clock: ManualClock
                                                                     ) -> None:
    limited = StreamConfig(tick_interval_s=0.02, max_subscriptions=2)
    with serve(clock, config=limited) as venue, connect(venue.stream_url) as raw:
        _send(raw, {"a": "subscribe", "v": ["NYSE:AAA", "NYSE:BBB", "JPX:CCC"]})
        error = _first(raw, "error")
        assert error["instrument"] == "JPX:CCC" and "at most 2" in error["message"]
        assert _first(raw, "ack")["v"] == ["NYSE:AAA", "NYSE:BBB"]
        _send(raw, {"a": "dance", "v": []})
        assert "unknown action 'dance'" in _first(raw, "error")["message"]
        assert _first(raw, "tick")["instrument"] in {"NYSE:AAA", "NYSE:BBB"}


def test_a_reader_that_stops_reading_loses_old_ticks_and_blocks_no_one(
        clock: ManualClock) -> None:
    many = {crypto(f"C{n}/USDT"): Decimal("10.00") for n in range(40)}
    slow_config = StreamConfig(tick_interval_s=0.01, heartbeat_interval_s=0.2, queue_limit=8)
    with serve(clock, ScriptedPrices(many), slow_config) as venue:
        names = [instrument.key for instrument in many]
        stalled = socket.create_connection(("127.0.0.1", venue.config.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with connect(venue.stream_url, sock=stalled, close_timeout=0.1) as slow, \
                SandboxQuoteStream(venue.stream_url, now=clock.now) as fast:
            _send(slow, {"a": "subscribe", "v": names})  # and never reads again
            fast.subscribe(names[:1])
            server = venue.service.quote_stream
            assert server is not None
            eventually(lambda: server.dropped() > 0, what="the stalled reader's drops")
            before = server.dropped()
            ticks = [_next_tick(fast) for _ in range(20)]  # the fast reader keeps up
            assert server.dropped() > before  # the stalled one still drops, not blocks
            assert fast.missed == 0 and fast.server_dropped == 0
            assert [t.seq for t in ticks] == list(range(ticks[0].seq, ticks[0].seq + 20))


def _next_tick(stream: SandboxQuoteStream) -> Tick:
    event = stream.receive(5.0)
    while not isinstance(event, Tick):
        assert event is not None, "no tick within 5 s"
        event = stream.receive(5.0)
    return event


def _send(connection: ClientConnection, message: dict[str, object]) -> None:
    connection.send(json.dumps(message))


def _first(connection: ClientConnection, kind: str) -> dict[str, object]:
    while True:
        message: dict[str, object] = json.loads(connection.recv(timeout=5))
        if message["type"] == kind:
            return message
