"""Where bar history comes from (a venue's one-minute bars in the exchange's own time), and
where a gap found while recording is told.

Adapters: bar sources in runtime.bar_sources (the sandbox service over loopback HTTP, an
exchange's public candles through ccxt); gap alerts in store.data_alerts (a `data.gap`
event and its notification in the fleet database).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fleetkit.core.bar_gaps import Gap
from fleetkit.core.market_data import Bar


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
