"""The straddle tracker's logic over fakes of its ports: centring, strangle legs, re-centring
when spot crosses a strike, rolling expiries, batching, gap fills and bad data counted."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.errors import DerivativesUnavailableError
from fleetkit.core.errors import ConfigError, DatabaseUnavailableError
from fleetkit.core.futures import FuturesCurve
from fleetkit.core.option_chains import ChainQuote, ChainRow, OptionChain
from fleetkit.core.options import OptionKind, atm_strike
from fleetkit.core.straddles import StraddleSnapshot
from fleetkit.core.ticks import StreamError, StreamEvent, StreamGap, Tick, TickMode
from fleetkit.data.straddle_tracker import StraddleTracker, TrackerOptions
from fleetkit.store.collector_stats import CollectorGap

NOW = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)  # Tuesday 10:30 IST
EXPIRIES = (date(2026, 12, 15), date(2026, 12, 22))
STEP = Decimal(50)
SPOT = "NSE:NIFTY 50"


def key(strike: Decimal, kind: str, expiry: date = EXPIRIES[0]) -> str:
    return f"NFO:NIFTY{expiry:%y%m%d}{strike}{kind}"


class FakeChains:
    """A venue's REST chain around a spot the test moves; prices are intrinsic + 40."""

    def __init__(self) -> None:
        self.spot = Decimal("24010")
        self.now = NOW
        self.expiries = EXPIRIES
        self.listed = {"NIFTY"}
        self.asked: list[tuple[str, date | None]] = []

    def quote(self, strike: Decimal, kind: OptionKind, expiry: date) -> ChainQuote:
        intrinsic = max(self.spot - strike, Decimal(0)) if kind is OptionKind.CALL else max(
            strike - self.spot, Decimal(0))
        price = intrinsic + 40
        return ChainQuote(key(strike, kind.value, expiry), "NIFTY", expiry, strike, kind,
                          price - 1, price + 1, price, 10, 100, self.spot, None, 75, self.now)

    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        self.asked.append((underlying, expiry))
        if underlying not in self.listed:
            raise DerivativesUnavailableError(f"the sandbox lists no options on {underlying!r}")
        chosen = expiry or self.expiries[0]
        atm = atm_strike(self.spot, STEP)
        each = strikes_each_side or 0
        rows = tuple(ChainRow(atm + STEP * i, self.quote(atm + STEP * i, OptionKind.CALL,
                                                         chosen),
                              self.quote(atm + STEP * i, OptionKind.PUT, chosen))
                     for i in range(-each, each + 1))
        return OptionChain(underlying, SPOT, self.spot, chosen, self.expiries, atm, STEP, 75,
                           self.now, rows)

    def option_quotes(self, instruments: Sequence[str]) -> dict[str, ChainQuote]:
        found: dict[str, ChainQuote] = {}
        for name in instruments:
            strike, kind = Decimal(name[-7:-2]), OptionKind(name[-2:])
            found[name] = self.quote(strike, kind, self.expiries[0])
        return found

    def futures(self, underlying: str, at: datetime | None = None) -> FuturesCurve:
        raise NotImplementedError


class FakeStream:
    def __init__(self) -> None:
        self.subscribed: set[str] = set()
        self.events: deque[StreamEvent] = deque()
        self.refused: dict[str, int] = {}
        self.seq = 0

    def subscribe(self, instruments: Sequence[str], mode: TickMode = "quote") -> None:
        assert mode == "quote"
        self.subscribed.update(instruments)

    def unsubscribe(self, instruments: Sequence[str]) -> None:
        self.subscribed.difference_update(instruments)

    def receive(self, timeout_s: float) -> StreamEvent | None:
        return self.events.popleft() if self.events else None

    def rejected(self) -> dict[str, int]:
        return dict(self.refused)

    def close(self) -> None:
        pass

    def tick(self, instrument: str, price: str, at: datetime, spread: str = "1") -> Tick:
        self.seq += 1
        value = Decimal(price)
        return Tick(instrument, self.seq, at, value, "quote", value - Decimal(spread),
                    value + Decimal(spread), Decimal(0))


class FakeSnapshots:
    def __init__(self) -> None:
        self.batches: list[list[StraddleSnapshot]] = []
        self.down = False
        self.newest: dict[str, StraddleSnapshot] = {}

    def write(self, snapshots: Sequence[StraddleSnapshot], now: datetime) -> int:
        if self.down:
            raise DatabaseUnavailableError("database down")
        self.batches.append(list(snapshots))
        return len(snapshots)

    def latest(self, tracker: str | None = None) -> dict[str, StraddleSnapshot]:
        return dict(self.newest)

    @property
    def all(self) -> list[StraddleSnapshot]:
        return [s for batch in self.batches for s in batch]


class FakeStats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.gaps: list[CollectorGap] = []

    def add(self, collector: str, trading_day: date, counts: Mapping[str, int],
            now: datetime) -> None:
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value

    def peak(self, collector: str, trading_day: date, peaks: Mapping[str, int],
             now: datetime) -> None:
        for name, value in peaks.items():
            self.peaks[name] = max(self.peaks.get(name, 0), value)

    def record_gap(self, gap: CollectorGap, now: datetime) -> None:
        self.gaps.append(gap)


class Rig:
    def __init__(self, **options: object) -> None:
        self.chains = FakeChains()
        self.stream = FakeStream()
        self.snapshots = FakeSnapshots()
        self.stats = FakeStats()
        self.mono = 100.0
        self.now = NOW
        settings = {"strangles": (1, 2), "flush_interval_s": 0.25, "max_batch": 1000,
                    **options}
        self.tracker = StraddleTracker(
            TrackerOptions("straddles", ("NIFTY",), **settings),  # type: ignore[arg-type]
            self.chains, self.stream, self.snapshots, self.stats, now=lambda: self.now,
            trading_day=lambda at: at.date(), monotonic=lambda: self.mono)

    def feed(self, *events: StreamEvent) -> None:
        for event in events:
            self.tracker.handle(event)
            self.tracker.housekeeping()

    def flushed(self) -> list[StraddleSnapshot]:
        self.tracker.flush()
        return self.snapshots.all


def test_start_centres_on_the_nearest_expiry_and_subscribes_spot_and_every_leg() -> None:
    rig = Rig()
    rig.tracker.start()
    atm = Decimal(24000)
    assert rig.chains.asked == [("NIFTY", None)]
    assert rig.stream.subscribed == {SPOT, *(key(atm + STEP * k, "CE") for k in (0, 1, 2)),
                                     *(key(atm - STEP * k, "PE") for k in (0, 1, 2))}
    first = rig.flushed()
    assert [(s.width, s.source, s.atm_strike) for s in first] == [
        (0, "rest", atm), (1, "rest", atm), (2, "rest", atm)]
    assert first[0].premium == Decimal(10 + 40) + Decimal(40)  # the call is 10 in the money


def test_a_leg_tick_snapshots_its_structure_with_premium_and_iv() -> None:
    rig = Rig()
    rig.tracker.start()
    rig.flushed()
    at = NOW + timedelta(seconds=1)
    rig.feed(rig.stream.tick(key(Decimal(24000), "CE"), "61", at),
             rig.stream.tick(key(Decimal(24100), "CE"), "9", at + timedelta(seconds=1)))
    straddle, strangle = rig.flushed()[3:]
    assert (straddle.width, straddle.at, straddle.source) == (0, at, "stream")
    assert straddle.call.bid == Decimal(60) and straddle.call.ask == Decimal(62)
    assert straddle.premium == Decimal(61) + Decimal(40)
    assert straddle.call_iv is not None and 0.01 < straddle.call_iv < 2
    assert straddle.spot == Decimal(24010)
    assert (strangle.width, strangle.call.strike, strangle.put.strike) == (
        2, Decimal(24100), Decimal(23900))


def test_spot_crossing_to_a_new_strike_recentres_the_legs() -> None:
    rig = Rig()
    rig.tracker.start()
    rig.flushed()
    before = set(rig.stream.subscribed)
    rig.chains.spot = Decimal("24030")  # REST agrees with the stream
    rig.feed(rig.stream.tick(SPOT, "24030", NOW + timedelta(seconds=1), "0.05"))
    new_atm = Decimal(24050)
    wanted = {SPOT, *(key(new_atm + STEP * k, "CE") for k in (0, 1, 2)),
              *(key(new_atm - STEP * k, "PE") for k in (0, 1, 2))}
    assert rig.stream.subscribed == wanted
    assert key(Decimal(24000), "CE") in before - wanted  # the old ATM call was let go
    after = rig.flushed()[3:]
    assert [(s.width, s.atm_strike, s.source) for s in after] == [
        (0, new_atm, "rest"), (1, new_atm, "rest"), (2, new_atm, "rest")]
    assert after[0].call.instrument == key(new_atm, "CE")
    # A late tick of a dropped leg is ignored, not stored.
    rig.feed(rig.stream.tick(key(Decimal(24000), "CE"), "70", NOW + timedelta(seconds=2)))
    assert len(rig.flushed()) == 6


def test_spot_moving_within_the_strike_keeps_the_legs() -> None:
    rig = Rig()
    rig.tracker.start()
    rig.feed(rig.stream.tick(SPOT, "24020", NOW + timedelta(seconds=1), "0.05"))
    assert rig.chains.asked == [("NIFTY", None)]
    assert rig.tracker.books["NIFTY"].spot == Decimal(24020)


def test_rejected_ticks_and_venue_errors_are_counted_never_stored() -> None:
    rig = Rig()
    rig.tracker.start()
    stored = len(rig.flushed())
    rig.stream.refused = {"crossed": 2, "stale": 1}  # the stream screened these out
    rig.feed(StreamError("no such instrument NFO:X", "NFO:X"),
             rig.stream.tick("NFO:UNASKED", "5", NOW))
    rig.tracker.flush_counters()
    assert len(rig.flushed()) == stored
    assert rig.stats.counts["rejected.crossed"] == 2
    assert rig.stats.counts["rejected.stale"] == 1
    assert rig.stats.counts["stream_errors"] == 1
    rig.stream.refused = {"crossed": 5, "stale": 1}
    rig.tracker.flush_counters()  # only what is new since the last flush is added
    assert rig.stats.counts["rejected.crossed"] == 5


def test_snapshots_are_batched_by_size_and_by_time() -> None:
    rig = Rig(max_batch=4, flush_interval_s=0.25)
    rig.tracker.start()  # three REST snapshots pending: under the batch size
    assert rig.snapshots.batches == []
    call = key(Decimal(24000), "CE")
    rig.feed(rig.stream.tick(call, "61", NOW + timedelta(seconds=1)))
    assert [len(b) for b in rig.snapshots.batches] == [4]
    rig.feed(rig.stream.tick(call, "62", NOW + timedelta(seconds=2)))
    assert [len(b) for b in rig.snapshots.batches] == [4]
    rig.mono += 0.3
    rig.feed()
    rig.tracker.housekeeping()
    assert [len(b) for b in rig.snapshots.batches] == [4, 1]
    rig.tracker.flush_counters()
    assert rig.stats.counts["snapshots"] == 5 and rig.stats.counts["write_count"] == 2
    assert rig.stats.counts["ticks"] == 2


def test_a_database_outage_keeps_the_batch_for_the_next_try() -> None:
    rig = Rig()
    rig.tracker.start()
    rig.snapshots.down = True
    rig.tracker.flush()
    rig.snapshots.down = False
    assert len(rig.flushed()) == 3


def test_a_stream_gap_is_filled_from_rest_and_recorded() -> None:
    rig = Rig()
    rig.tracker.start()
    rig.flushed()
    start, end = NOW + timedelta(seconds=5), NOW + timedelta(seconds=9)
    rig.feed(StreamGap(start, end, frozenset(rig.stream.subscribed)))
    filled = rig.flushed()[3:]
    assert [(s.width, s.at, s.source) for s in filled] == [
        (0, end, "rest"), (1, end, "rest"), (2, end, "rest")]
    assert rig.stats.gaps == [CollectorGap("straddles", "NIFTY", start, end,
                                           "quote stream dropped", 3)]


def test_the_expiry_rolls_when_the_nearest_one_ends() -> None:
    rig = Rig()
    rig.tracker.start()
    rig.chains.expiries = EXPIRIES[1:]
    rig.now = datetime(2026, 12, 15, 10, 1, tzinfo=UTC)  # 15:31 IST on the expiry day
    rig.tracker.check_expiries()
    assert rig.tracker.books["NIFTY"].expiry == EXPIRIES[1]
    assert key(Decimal(24000), "CE", EXPIRIES[1]) in rig.stream.subscribed
    assert key(Decimal(24000), "CE") not in rig.stream.subscribed


def test_a_restart_records_the_time_it_was_down_as_a_filled_gap() -> None:
    rig = Rig()
    rig.tracker.start()
    last = rig.flushed()[0]
    rig.snapshots.newest = {"NIFTY": last}
    rig.chains.now = NOW + timedelta(minutes=3)
    again = Rig()
    again.chains, again.snapshots = rig.chains, rig.snapshots
    again.tracker = StraddleTracker(rig.tracker.options, rig.chains, again.stream,
                                    rig.snapshots, again.stats, now=lambda: NOW,
                                    trading_day=lambda at: at.date())
    again.tracker.start()
    assert again.stats.gaps == [CollectorGap("straddles", "NIFTY", last.at,
                                             NOW + timedelta(minutes=3),
                                             "tracker not running", 3)]


def test_an_underlying_the_venue_does_not_list_is_a_config_error() -> None:
    rig = Rig()
    rig.chains.listed = set()
    with pytest.raises(ConfigError, match="remove 'NIFTY'"):
        rig.tracker.start()


def test_the_heartbeat_says_the_straddle_underlyings_and_gaps() -> None:
    rig = Rig()
    rig.tracker.start()
    assert rig.tracker.summary() == "NIFTY 24000 straddle 90.00 · 1 underlying · 0 gaps today"


def test_write_latency_is_summed_and_its_maximum_kept_as_a_peak() -> None:
    rig = Rig()
    rig.tracker.start()
    durations = iter([0.003, 0.007])
    write = rig.snapshots.write

    def slow_write(snapshots: Sequence[StraddleSnapshot], now: datetime) -> int:
        rig.mono += next(durations)
        return write(snapshots, now)

    rig.snapshots.write = slow_write  # type: ignore[method-assign]
    rig.tracker.flush()
    rig.feed(rig.stream.tick(key(Decimal(24000), "CE"), "61", NOW + timedelta(seconds=1)))
    rig.tracker.flush()
    rig.tracker.flush_counters()
    rig.tracker.flush_counters()  # a second flush adds nothing and keeps the peak
    assert rig.stats.counts["write_ms_sum"] == 10 and rig.stats.counts["write_count"] == 2
    assert rig.stats.peaks == {"write_ms_max": 7}
