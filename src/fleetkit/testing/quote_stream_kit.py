"""The test kit every QuoteStream adapter must pass (data.ports.QuoteStream), written once and
run against the sandbox's ticker — and against your adapter on a fake of your venue
(docs/adapters.md, "Quote stream").

    from fleetkit.testing.quote_stream_kit import QuoteStreamContract, QuoteStreamKit

    class TestMyStream(QuoteStreamContract):
        @pytest.fixture
        def kit(self) -> Iterator[QuoteStreamKit]:
            with FakeMyVenueTicker() as venue:                  # on 127.0.0.1
                stream = MyQuoteStream(venue.url)
                yield QuoteStreamKit(stream, instruments=("NSE:A", "NSE:B"),
                                     unknown="NSE:NOPE", restart=venue.restart)
                stream.close()

What it proves: ticks come for exactly the instruments subscribed, numbered upwards, priced
and not crossed; unsubscribing stops them; the mode decides which fields a tick carries; an
unknown instrument is an error naming it and the stream goes on; and, given `restart`, a
dropped connection comes back by itself, resubscribed, with the outage reported as a gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from fleetkit.core.ticks import StreamError, StreamEvent, StreamGap, Tick
from fleetkit.data.ports import QuoteStream


@dataclass
class QuoteStreamKit:
    """An adapter under test. `instruments`: two or more the venue ticks while the test runs;
    `unknown`: a name it does not know; `restart`: drops every connection and serves again
    (None skips the reconnection test); `timeout_s`: how long a tick may take to come."""

    stream: QuoteStream
    instruments: Sequence[str]
    unknown: str
    restart: Callable[[], None] | None = None
    timeout_s: float = 5.0

    def events_until(self, done: Callable[[list[StreamEvent]], bool], what: str
                     ) -> list[StreamEvent]:
        """Receive until `done(everything so far)`; fail after timeout_s."""
        seen: list[StreamEvent] = []
        deadline = time.monotonic() + self.timeout_s
        while not done(seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not within {self.timeout_s}s: {what}; got {seen[-5:]}")
            event = self.stream.receive(min(left, 0.2))
            if event is not None:
                seen.append(event)
        return seen

    def ticks_of(self, instrument: str, count: int) -> list[Tick]:
        """The next `count` ticks of `instrument` (others received meanwhile are dropped)."""
        events = self.events_until(lambda seen: len(_ticks(seen, instrument)) >= count,
                                   f"{count} ticks of {instrument}")
        return _ticks(events, instrument)


def _ticks(events: list[StreamEvent], instrument: str | None = None) -> list[Tick]:
    return [e for e in events if isinstance(e, Tick)
            and (instrument is None or e.instrument == instrument)]


class QuoteStreamContract:
    """Subclass with a `kit` fixture yielding a QuoteStreamKit."""

    def test_ticks_come_for_exactly_the_subscribed_instruments(self, kit: QuoteStreamKit
                                                               ) -> None:
        first, second = kit.instruments[0], kit.instruments[1]
        kit.stream.subscribe([first])
        events = kit.events_until(lambda seen: len(_ticks(seen, first)) >= 3, "ticks")
        assert {tick.instrument for tick in _ticks(events)} == {first}
        assert not [e for e in events if isinstance(e, StreamError)]
        assert kit.stream.rejected() == {}, "the venue's own ticks must all be good"
        assert second not in {tick.instrument for tick in _ticks(events)}

    def test_ticks_are_numbered_upwards_priced_and_not_crossed(self, kit: QuoteStreamKit
                                                               ) -> None:
        kit.stream.subscribe(kit.instruments[:2])
        ticks = kit.ticks_of(kit.instruments[0], 2) + kit.ticks_of(kit.instruments[1], 2)
        for tick in ticks:
            assert tick.last_price > 0 and tick.bid is not None and tick.ask is not None
            assert 0 < tick.bid <= tick.ask
            assert tick.ts.utcoffset() is not None
        seqs = [tick.seq for tick in ticks]
        assert len(set(seqs)) == len(seqs)

    def test_unsubscribe_stops_the_ticks(self, kit: QuoteStreamKit) -> None:
        first, second = kit.instruments[0], kit.instruments[1]
        kit.stream.subscribe([first, second])
        kit.ticks_of(first, 1)
        kit.stream.unsubscribe([first])
        kit.ticks_of(second, 2)  # what was received before the unsubscribe is behind us ...
        events = kit.events_until(lambda seen: len(_ticks(seen, second)) >= 3, "more ticks")
        assert {t.instrument for t in _ticks(events)} == {second}  # ... and only `second`
        assert kit.stream.rejected() == {}, "late ticks of an unsubscribed one are not bad"

    @pytest.mark.parametrize(("mode", "has_quote", "has_depth"),
                             [("ltp", False, False), ("quote", True, False),
                              ("full", True, True)])
    def test_the_mode_decides_what_a_tick_carries(self, kit: QuoteStreamKit, mode: str,
                                                  has_quote: bool, has_depth: bool) -> None:
        instrument = kit.instruments[0]
        kit.stream.subscribe([instrument], mode)  # type: ignore[arg-type]
        events = kit.events_until(lambda seen: any(t.mode == mode for t in _ticks(seen)),
                                  f"a tick in mode {mode}")
        tick = next(t for t in _ticks(events) if t.mode == mode)
        assert (tick.bid is not None and tick.ask is not None
                and tick.volume is not None) is has_quote
        assert (tick.bid_quantity is not None and tick.ask_quantity is not None) is has_depth

    def test_an_unknown_instrument_is_an_error_naming_it_and_the_stream_goes_on(
            self, kit: QuoteStreamKit) -> None:
        kit.stream.subscribe([kit.unknown, kit.instruments[0]])
        events = kit.events_until(
            lambda seen: any(isinstance(e, StreamError) for e in seen)
            and len(_ticks(seen, kit.instruments[0])) >= 2, "an error and then ticks")
        error = next(e for e in events if isinstance(e, StreamError))
        assert error.instrument == kit.unknown and kit.unknown in error.message

    def test_a_dropped_connection_is_resubscribed_and_reported_as_a_gap(
            self, kit: QuoteStreamKit) -> None:
        if kit.restart is None:
            pytest.skip("the kit has no restart for this venue")
        instrument = kit.instruments[0]
        kit.stream.subscribe([instrument])
        kit.ticks_of(instrument, 1)
        kit.restart()
        events = kit.events_until(
            lambda seen: any(isinstance(e, StreamGap) for e in seen)
            and any(isinstance(e, Tick) and e.instrument == instrument
                    for e in seen[_first_gap(seen):]), "a gap, then ticks again")
        gap = events[_first_gap(events)]
        assert isinstance(gap, StreamGap)
        assert gap.start <= gap.end and instrument in gap.instruments


def _first_gap(events: list[StreamEvent]) -> int:
    return next((i for i, e in enumerate(events) if isinstance(e, StreamGap)), len(events))
