"""FixedPrices: the simplest price source, one price per symbol until a test changes it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal


class FixedPrices:
    """Callable as `price(symbol, at)`; the time is ignored. Thread-safe.

    An unknown symbol raises KeyError, which the server answers as an internal error, so
    a test that forgot a price fails loudly instead of trading at zero.
    """

    def __init__(self, prices: Mapping[str, Decimal]) -> None:
        self._lock = threading.Lock()
        self._prices = {symbol: Decimal(price) for symbol, price in prices.items()}

    def __call__(self, symbol: str, at: datetime) -> Decimal:
        with self._lock:
            try:
                return self._prices[symbol]
            except KeyError:
                raise KeyError(f"FixedPrices has no price for {symbol}") from None

    def set(self, symbol: str, price: Decimal) -> None:
        with self._lock:
            self._prices[symbol] = Decimal(price)
