"""Faults the fake exchange injects into matching requests, to exercise a client's failure paths."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal, get_args

FaultKind = Literal["error_500", "rate_limit", "timeout", "ack_lost", "refuse"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True, slots=True)
class Fault:
    """Misbehave on the next `times` requests matching `method` and `path` (None: any).

    - error_500: answer `status` (500, 502 or 503) with a non-JSON body, before processing.
    - rate_limit: answer 429 with Retry-After: `retry_after_s` and Binance's -1003 body,
      before processing.
    - timeout: wait `delay_s` (make it longer than the client's timeout), then process the
      request and answer; the client has given up by then, so an order may exist that it
      never heard of.
    - ack_lost: process the request (the order is placed), then answer `status` with no
      JSON, or, with `status` None, close the connection without a word.
    - refuse: close the connection without a reply, before processing.
    """

    kind: FaultKind
    path: str | None = "/api/v3/order"
    method: str | None = "POST"
    times: int = 1
    status: int | None = None
    delay_s: float = 2.0
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")
        if self.times < 1:
            raise ValueError("a fault fires at least once (times >= 1)")
        if self.kind == "error_500" and self.status not in (None, 500, 502, 503):
            raise ValueError("error_500 answers 500, 502 or 503")
        if self.delay_s < 0 or self.retry_after_s < 0:
            raise ValueError("delay_s and retry_after_s cannot be negative")

    @property
    def reply_status(self) -> int | None:
        """The HTTP status this fault answers with; None: no answer at all."""
        if self.kind == "error_500":
            return self.status or 500
        if self.kind == "rate_limit":
            return 429
        if self.kind == "ack_lost":
            return self.status
        return None

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and self.path in (None, path)


class FaultPlan:
    """The faults still to fire, first added first served, and how many fired of each kind.

    Thread-safe: the server's request threads take from it while a test adds to it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[tuple[Fault, int]] = []
        self._fired: Counter[str] = Counter()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._armed.append((fault, fault.times))

    def clear(self) -> None:
        """Disarm every fault still pending; the fired counts stay."""
        with self._lock:
            self._armed.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, counted as fired; None if none matches."""
        with self._lock:
            for index, (fault, left) in enumerate(self._armed):
                if fault.matches(method, path):
                    if left > 1:
                        self._armed[index] = (fault, left - 1)
                    else:
                        del self._armed[index]
                    self._fired[fault.kind] += 1
                    return fault
        return None

    @property
    def fired(self) -> dict[str, int]:
        """How many requests each kind of fault has hit so far."""
        with self._lock:
            return dict(self._fired)

    @property
    def pending(self) -> list[tuple[Fault, int]]:
        """The armed faults and how many times each will still fire."""
        with self._lock:
            return list(self._armed)
