"""Where bar history comes from: a venue's one-minute bars in the exchange's own time.

Adapters (built in runtime.bar_sources): the sandbox service over loopback HTTP, and an
exchange's public candles through ccxt (paginated, spaced by its rate limit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

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
