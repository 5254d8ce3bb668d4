"""A small time-to-live cache shared by every browser session of one dashboard process, so
thirty open tabs cost one query per page per `ttl_s`, not thirty."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_MAX_ENTRIES = 512


class TtlCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value of `key`, or `compute()` (cached when it does not raise: a
        failed query is tried again on the next call)."""
        now = self._clock()
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > now:
                value: T = found[1]
                return value
        value = compute()
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries.clear()
            self._entries[key] = (now + self._ttl_s, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
