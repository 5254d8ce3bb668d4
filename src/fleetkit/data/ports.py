"""Where bar history comes from (a venue's one-minute bars in the exchange's own time), and
where a gap found while recording is told.

Adapters: bar sources in runtime.bar_sources (the sandbox service over loopback HTTP, an
exchange's public candles through ccxt); gap alerts in store.data_alerts (a `data.gap`
event and its notification in the fleet database).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Protocol

from fleetkit.core.bar_gaps import Gap
from fleetkit.core.futures import FuturesCurve
from fleetkit.core.market_data import Bar
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.core.sessions import Session
from fleetkit.core.ticks import StreamEvent, TickMode

# A market ("NSE") and a UTC range -> the sessions that trade in it (the market calendar;
# in the venue's time where the venue runs its own, as the sandbox's demo time does).
SessionsOf = Callable[[str, datetime, datetime], Sequence[Session]]


class BarSource(Protocol):
    """One venue's bar history. Times are the venue's own (the sandbox's demo time shifts
    a closed market into a past session; the calendar judges bars in that time)."""

    @property
    def name(self) -> str:
        """What `bars.source` records: "sandbox", "ccxt:binance"."""
        ...

    def now(self, market: str) -> datetime:
        """The venue's time for `market`: minutes before it have closed."""
        ...

    def minute_bars(self, instrument: str, start: datetime, end: datetime) -> list[Bar]:
        """Completed one-minute bars opening in [start, end), oldest first. Raises
        TransientBrokerError when the venue cannot answer now (the caller retries)."""
        ...


class GapAlerts(Protocol):
    """Tells someone that an instrument's history has a hole the recorder could not fill."""

    def gap_found(self, instrument: str, gap: Gap, source: str, now: datetime) -> bool:
        """Record the gap once: True when this call recorded it, False when that gap (the
        same instrument and first missing minute) was told before, by this process or
        another. Raises DatabaseUnavailableError when it cannot be recorded now."""
        ...


class QuoteStream(Protocol):
    """A venue's live ticks for the instruments subscribed (docs/adapters.md, "Quote stream").

    It keeps its own connection: reconnects with backoff, resubscribes everything, and
    reports each outage as a StreamGap to fill from REST. Bad ticks (crossed, unpriced,
    stale, duplicated, out of order, unasked for) are rejected and counted, never returned.
    Adapters: brokers.sandbox.stream_client.SandboxQuoteStream; the contract every adapter
    passes is fleetkit.testing.quote_stream_kit."""

    def subscribe(self, instruments: Sequence[str], mode: TickMode = "quote") -> None:
        """Receive ticks for `instruments` in `mode` (also to change the mode of some already
        subscribed), now and after every reconnection."""
        ...

    def unsubscribe(self, instruments: Sequence[str]) -> None:
        """No more ticks for `instruments` once the venue has taken the request."""
        ...

    def receive(self, timeout_s: float) -> StreamEvent | None:
        """The next good tick, gap or venue error, oldest first; None after `timeout_s`
        with nothing to give."""
        ...

    def rejected(self) -> dict[str, int]:
        """Ticks refused so far, by reason (core.ticks.RejectReason)."""
        ...

    def close(self) -> None:
        """Disconnect for good; safe to call twice."""
        ...


class ChainSource(Protocol):
    """A venue's option chains and quotes (the sandbox's REST API; a real Indian broker's
    quote API behind an adapter). Times are UTC wall-clock; instrument keys read
    "EXCHANGE:TRADINGSYMBOL" ("NFO:NIFTY26D0824000CE"). The contract every adapter passes
    is fleetkit.testing.chain_source_kit (docs/adapters.md, "Adding a chain source")."""

    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        """One expiry's calls and puts around the ATM strike: `expiry` None is the nearest
        listed, `at` None is now. Raises a BrokerError naming the problem for an
        underlying or expiry the venue does not list (the sandbox: DerivativesUnavailable-
        Error, a LookupError, for the underlying), TransientBrokerError when it cannot
        answer now."""
        ...

    def option_quotes(self, instruments: Sequence[str]) -> dict[str, ChainQuote]:
        """Quotes of listed contracts keyed by instrument; the venue refuses a key it does
        not list (expired, off the strike grid) rather than leave it out silently."""
        ...

    def futures(self, underlying: str, at: datetime | None = None) -> FuturesCurve:
        """The listed monthly index futures, nearest first, with the front month a
        continuous series holds now and when it rolls."""
        ...
