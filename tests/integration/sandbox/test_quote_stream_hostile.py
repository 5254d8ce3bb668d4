"""SandboxQuoteStream against a hostile ticker on loopback: every kind of bad tick is
rejected with its reason and counted, and only the good ones come out."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from fleetkit.brokers.sandbox.stream_client import SandboxQuoteStream
from fleetkit.brokers.sandbox.testing import NEW_YORK_MIDDAY, ManualClock
from fleetkit.core.ticks import Tick
from fleetkit.testing.loopback import free_port

NOW = NEW_YORK_MIDDAY
AAA = "NYSE:AAA"


def tick(seq: int, last: object = "100.00", *, instrument: str = AAA, bid: object = "99.99",
         ask: object = "100.01", age_s: float = 0) -> str:
    return json.dumps({"type": "tick", "instrument": instrument, "seq": seq, "mode": "quote",
                       "ts": (NOW - timedelta(seconds=age_s)).isoformat(),
                       "last_price": last, "bid": bid, "ask": ask, "volume": "10"})


SCRIPT = [
    tick(1),                                   # good
    tick(2, bid="100.02", ask="100.01"),       # crossed
    tick(3, last="0"),                         # zero price
    tick(4, last="-5.00"),                     # negative price
    tick(5, last="NaN"),                       # not a number
    tick(5),                                   # the same sequence number again
    tick(3),                                   # an earlier one
    tick(6, instrument="NYSE:ZZZ"),            # never subscribed
    tick(7, age_s=60),                         # older than the 10 s allowed
    "{not json",                               # not a message at all
    json.dumps({"type": "tick", "instrument": AAA, "seq": "eight"}),  # fields of the wrong kind
    tick(9),                                   # good (seq 8 never came: one missed)
    tick(10),                                  # good: the end of the script
]


def hostile(connection: ServerConnection) -> None:
    connection.recv()  # the client's subscribe ...
    connection.recv()  # ... and its mode
    for message in SCRIPT:
        connection.send(message)
    connection.recv()  # hold the line open until the client goes


@pytest.fixture
def ticker() -> Iterator[Server]:
    with serve(hostile, "127.0.0.1", free_port()) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
    thread.join()


def test_bad_ticks_are_rejected_with_their_reasons_and_counted(ticker: Server) -> None:
    port = ticker.socket.getsockname()[1]
    with SandboxQuoteStream(f"ws://127.0.0.1:{port}/", now=ManualClock(NOW).now,
                            max_tick_age_s=10) as stream:
        stream.subscribe([AAA])
        good = []
        while not good or good[-1].seq != 10:
            event = stream.receive(5.0)
            assert isinstance(event, Tick), f"expected only good ticks, got {event!r}"
            good.append(event)
        assert [t.seq for t in good] == [1, 9, 10]
        assert stream.rejected() == {"crossed": 1, "bad_price": 3, "duplicate": 1,
                                     "out_of_order": 1, "unknown_instrument": 1, "stale": 1,
                                     "malformed": 2}
        assert stream.missed == 1
        assert stream.receive(0.05) is None
