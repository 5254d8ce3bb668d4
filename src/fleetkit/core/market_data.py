"""Market data as the engine sees it: bars, quotes and a venue's clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

INTERVALS_S: dict[str, int] = {"5s": 5, "10s": 10, "15s": 15, "30s": 30, "1m": 60, "5m": 300,
                               "15m": 900, "30m": 1800, "1h": 3600}


def interval_seconds(name: str) -> int:
    try:
        return INTERVALS_S[name]
    except KeyError:
        known = ", ".join(INTERVALS_S)
        raise ValueError(f"unknown bar interval {name!r}; use one of {known}") from None


class Bar(NamedTuple):
    """One OHLCV bar; `ts` is the bar's start, tz-aware UTC.

    Bar prices are floats on purpose: indicators do float math a million times per backtest,
    and creating a Decimal per field would dominate replay time. Anything that becomes money
    (order prices, fills, positions) is a Decimal rounded to the instrument's tick.
    A NamedTuple rather than a dataclass because it is the cheapest immutable record to build.
    """

    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Quote:
    """The last traded price of an instrument and when it traded."""

    instrument: str
    price: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class MarketClock:
    """A venue's view of time for one market: its own `now` and whether it is in session.

    `next_open` is None while open; `next_close` is None for markets that never close.
    """

    market: str
    now: datetime
    is_open: bool
    next_open: datetime | None
    next_close: datetime | None
