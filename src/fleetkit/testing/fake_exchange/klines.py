"""Kline (candle) windows in Binance's terms: interval names, alignment, and which bars to send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from .model import Bar, BinanceError, PriceSource, fmt, from_ms, to_ms

INTERVAL_SECONDS: dict[str, int] = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800,
    "1h": 3600, "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200,
    "1d": 86400, "3d": 259200, "1w": 604800,
}  # "1M" is left out: calendar months have no fixed length
_WEEK_OFFSET_MS = 4 * 86_400_000  # Binance's weeks open on Monday; the epoch was a Thursday
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


def interval_seconds(name: str) -> int:
    try:
        return INTERVAL_SECONDS[name]
    except KeyError:
        raise BinanceError(400, -1120, "Invalid interval.") from None


@dataclass(frozen=True, slots=True)
class BarWindow:
    """Open times of the bars to send: from `start` (inclusive) to `end` (exclusive)."""

    start: datetime
    end: datetime
    interval_s: int


def _floor_ms(ms: int, interval_ms: int) -> int:
    offset = _WEEK_OFFSET_MS if interval_ms == 604_800_000 else 0
    return offset + (ms - offset) // interval_ms * interval_ms


def bar_window(interval_s: int, now: datetime, start_ms: int | None, end_ms: int | None,
               limit: int) -> BarWindow:
    """The complete bars a klines request asks for, at most `limit` of them.

    As on Binance: with startTime the oldest bars from there, otherwise the newest up to
    endTime (or now). Unlike Binance, the bar still in progress is never sent, so a tape
    replayed twice gives the same candles.
    """
    step = interval_s * 1000
    last_open = _floor_ms(to_ms(now), step) - step  # the newest bar that has closed
    newest = last_open if end_ms is None else min(last_open, _floor_ms(end_ms, step))
    if start_ms is not None:
        first = _floor_ms(start_ms + step - 1, step)  # first open time >= startTime
        newest = min(newest, first + (limit - 1) * step)
    else:
        first = newest - (limit - 1) * step
    end = max(first, newest + step)
    return BarWindow(from_ms(first), from_ms(end), interval_s)


def flat_bars(price: PriceSource, symbol: str, window: BarWindow) -> list[Bar]:
    """Bars synthesised from the price source alone: each flat at the price at its close."""
    interval = timedelta(seconds=window.interval_s)
    bars: list[Bar] = []
    opened = window.start
    while opened < window.end:
        close = price(symbol, opened + interval)
        bars.append((opened, close, close, close, close, Decimal(0)))
        opened += interval
    return bars


def kline_row(bar: Bar, interval_s: int) -> list[object]:
    """One bar as Binance's array: open time, OHLCV as strings, close time, then counters."""
    opened, open_, high, low, close, volume = bar
    open_ms = to_ms(opened)
    return [open_ms, fmt(open_), fmt(high), fmt(low), fmt(close), fmt(volume),
            open_ms + interval_s * 1000 - 1, fmt(volume * close), 0,
            "0", "0", "0"]  # trade count, taker buy volumes, "ignore": not modelled
