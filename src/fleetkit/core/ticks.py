"""Ticks from a quote stream, and the pure checks that keep bad ones from passing as data.

A stream delivers `Tick`s for the instruments a client subscribed to, numbered per
connection (`seq`). A tick is good only if it is for a subscribed instrument, newer than
the connection's last tick, priced (finite, positive), not crossed (bid <= ask) and not
older than the caller allows. `tick_problem` says why one is not; `TickScreen` keeps the
little state those checks need (the last sequence number, counters of each reason).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, get_args

TickMode = Literal["ltp", "quote", "full"]
"""How much a tick carries, as in Kite's ticker: `ltp` the last price; `quote` also the best
bid and ask and the day's volume; `full` also the quantities at the best bid and ask."""
TICK_MODES: tuple[str, ...] = get_args(TickMode)

RejectReason = Literal["malformed", "unknown_instrument", "duplicate", "out_of_order",
                       "bad_price", "crossed", "stale"]


@dataclass(frozen=True, slots=True)
class Tick:
    """One instrument's price at `ts` (UTC), the `seq`-th tick of its connection.

    Fields beyond `last_price` are None when the tick's mode does not carry them."""

    instrument: str
    seq: int
    ts: datetime
    last_price: Decimal
    mode: TickMode = "ltp"
    bid: Decimal | None = None
    ask: Decimal | None = None
    volume: Decimal | None = None
    bid_quantity: Decimal | None = None
    ask_quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StreamGap:
    """The stream was down from `start` to `end` (UTC) for `instruments`: nothing between
    was seen, so a caller fills the span from the venue's REST history and records it."""

    start: datetime
    end: datetime
    instruments: frozenset[str]


@dataclass(frozen=True, slots=True)
class StreamError:
    """Something the venue refused (an unknown instrument, too many subscriptions); the
    connection stays up. `instrument` names the one refused, where there is one."""

    message: str
    instrument: str | None = None


StreamEvent = Tick | StreamGap | StreamError


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


def tick_problem(tick: Tick, *, subscribed: Container[str], last_seq: int | None,
                 now: datetime, max_age: timedelta) -> Rejection | None:
    """Why `tick` must not be taken as data, or None if it is good."""
    if tick.instrument not in subscribed:
        return Rejection("unknown_instrument", f"a tick for {tick.instrument!r}, "
                                               "which is not subscribed")
    if last_seq is not None and tick.seq <= last_seq:
        reason: RejectReason = "duplicate" if tick.seq == last_seq else "out_of_order"
        return Rejection(reason, f"seq {tick.seq} after seq {last_seq}")
    return _price_problem(tick) or _age_problem(tick, now, max_age)


def _price_problem(tick: Tick) -> Rejection | None:
    for name, value in (("last_price", tick.last_price), ("bid", tick.bid), ("ask", tick.ask)):
        if value is not None and (not value.is_finite() or value <= 0):
            return Rejection("bad_price", f"{name} {value} is not a positive number")
    if tick.bid is not None and tick.ask is not None and tick.bid > tick.ask:
        return Rejection("crossed", f"bid {tick.bid} above ask {tick.ask}")
    return None


def _age_problem(tick: Tick, now: datetime, max_age: timedelta) -> Rejection | None:
    age = now - tick.ts
    if age > max_age:
        return Rejection("stale", f"{age.total_seconds():.1f} s old, over the "
                                  f"{max_age.total_seconds():g} s allowed")
    return None


class TickScreen:
    """The checks of one stream client: the last good sequence number of the current
    connection, what was rejected (by reason) and how many ticks the sequence says were
    missed (the server dropped them for a slow reader). Not thread-safe: one reader."""

    def __init__(self, max_age: timedelta) -> None:
        if max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        self._max_age = max_age
        self._last_seq: int | None = None
        self.rejected: Counter[str] = Counter()
        self.missed = 0

    def new_connection(self) -> None:
        """Sequence numbers start again on each connection."""
        self._last_seq = None

    def screen(self, tick: Tick, subscribed: Container[str], now: datetime) -> Rejection | None:
        """Check `tick`; a rejection is counted and returned, a good tick returns None."""
        problem = tick_problem(tick, subscribed=subscribed, last_seq=self._last_seq, now=now,
                               max_age=self._max_age)
        if problem is not None and problem.reason in ("duplicate", "out_of_order"):
            self.rejected[problem.reason] += 1
            return problem
        # A badly priced tick still used its number: the next one follows it.
        if self._last_seq is not None and tick.seq > self._last_seq + 1:
            self.missed += tick.seq - self._last_seq - 1
        self._last_seq = tick.seq
        if problem is not None:
            self.rejected[problem.reason] += 1
        return problem

    def count_malformed(self) -> None:
        self.rejected["malformed"] += 1

    def counts(self) -> Mapping[str, int]:
        return dict(self.rejected)
