"""The venue's book: the records it keeps, the Book protocol, and an in-memory Book.

A Book hands out sessions, each one transaction: `write()` commits everything or nothing,
`read()` sees one consistent snapshot. SandboxVenue holds its own lock around every session,
so a Book never sees two writers at once.

Besides orders and fills, a book keeps the funding a perpetual's settlements paid or charged
each account (StoredFunding), and every order submission it received (duplicates of a
client order id included), so invariants such as "no bot ever resent an order" and "nothing
reached the venue while a bot was halted" can be checked from outside. The SQL book keeps
them all; the in-memory book keeps exact counts but only the latest
MEMORY_SUBMISSIONS_KEPT submissions, so a long backtest's memory stays bounded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import islice
from types import TracebackType
from typing import Any, Protocol, TypeVar

from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import Fill, OrderStatus, OrderType, Side
from fleetkit.core.records import evolve
from fleetkit.engine.ports import FundingEntry, OrderReport

OPEN_STATUSES = frozenset({OrderStatus.ACKNOWLEDGED, OrderStatus.PARTIALLY_FILLED})
MEMORY_SUBMISSIONS_KEPT = 10_000
_REJECTED = OrderStatus.REJECTED  # a constant: an enum member looked up costs, per order


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the venue keeps it. `order_id` is assigned by the book on insert.

    `reserve_price` is what one unit of an open buy holds back from cash (its limit, or the
    slipped price a market order was accepted at). `not_before` is the venue time before
    which the rest of a partially filled order may not fill.
    """

    order_id: int
    account: str
    client_order_id: str
    instrument: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    filled_notional: Decimal
    reserve_price: Decimal | None
    reason: str
    not_before: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def remaining(self) -> Decimal:
        return max(self.quantity - self.filled_quantity, ZERO)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_report(self, fills: tuple[Fill, ...] = ()) -> OrderReport:
        """The venue's answer about this order; `fills` are those made by the current call."""
        average = (self.filled_notional / self.filled_quantity
                   if self.filled_quantity > ZERO else None)
        return OrderReport(  # positional (in OrderReport's field order): once per order
            self.client_order_id, f"SBX-{self.order_id}", self.instrument, self.side,
            self.order_type, self.quantity, self.limit_price, self.status,
            self.filled_quantity, average, self.reason, fills)


@dataclass(frozen=True, slots=True)
class StoredFill:
    """One execution; `sequence` is venue-wide, increasing, assigned by the book on insert."""

    sequence: int
    account: str
    client_order_id: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime

    def to_fill(self) -> Fill:
        """As reported: the sequence is the broker fill id a client pages fills by."""
        return Fill(str(self.sequence), self.client_order_id, self.instrument, self.side,
                    self.quantity, self.price, self.fee, self.ts)


@dataclass(frozen=True, slots=True)
class StoredFunding:
    """One funding settlement as it touched one account: `amount` is the cash it moved
    (positive: received) on the signed `quantity` held at `at` (wall time), valued at
    `mark`. `sequence` is venue-wide, increasing, assigned by the book on insert."""

    sequence: int
    account: str
    instrument: str
    at: datetime
    rate: Decimal
    quantity: Decimal
    mark: Decimal
    amount: Decimal

    def to_entry(self) -> FundingEntry:
        """As reported: the sequence is the payment id a client pages funding by."""
        return FundingEntry(str(self.sequence), self.instrument, self.at, self.rate,
                            self.quantity, self.mark, self.amount)


@dataclass(frozen=True, slots=True)
class StoredPosition:
    instrument: str
    quantity: Decimal
    average_price: Decimal


@dataclass(frozen=True, slots=True)
class Submission:
    """One order submission as the venue received it. `sequence` is venue-wide, increasing,
    assigned by the book on insert; `duplicate` means the client order id was already known
    (nothing changed); `status` is the order's status in the answer; `received_at` is
    wall-clock time."""

    sequence: int
    account: str
    client_order_id: str
    received_at: datetime
    duplicate: bool
    status: OrderStatus


@dataclass(frozen=True, slots=True)
class SubmissionCounts:
    """Per account: submissions received (duplicates included), how many repeated a client
    order id already known, and how many new orders were rejected."""

    submissions: int = 0
    duplicates: int = 0
    rejected: int = 0

    def plus(self, submission: Submission) -> SubmissionCounts:
        rejected = not submission.duplicate and submission.status is _REJECTED
        return SubmissionCounts(self.submissions + 1, self.duplicates + submission.duplicate,
                                self.rejected + rejected)


_NO_SUBMISSIONS = SubmissionCounts()


class BookSession(Protocol):
    """One transaction against the book. Writing methods fail in a read session."""

    def meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def market_offsets(self) -> dict[str, int]:
        """Seconds added to the wall clock to get each market's venue time."""
        ...

    def set_market_offset(self, market: str, offset_s: int) -> None: ...

    def has_account(self, account: str) -> bool: ...

    def create_account(self, account: str, created_at: datetime) -> None: ...

    def balances(self, account: str) -> dict[str, Decimal]: ...

    def set_balance(self, account: str, currency: str, amount: Decimal) -> None: ...

    def order(self, account: str, client_order_id: str) -> StoredOrder | None: ...

    def insert_order(self, order: StoredOrder) -> StoredOrder: ...

    def update_order(self, order: StoredOrder) -> None: ...

    def open_orders(self, account: str | None = None) -> list[StoredOrder]:
        """Open orders of one account (or of all, for the matching pass), oldest first."""
        ...

    def insert_fill(self, fill: StoredFill) -> StoredFill: ...

    def fills_after(self, account: str, sequence: int, limit: int) -> list[StoredFill]:
        """Up to `limit` fills of `account` with a sequence above `sequence`, oldest first."""
        ...

    def position(self, account: str, instrument: str) -> StoredPosition | None: ...

    def set_position(self, account: str, position: StoredPosition) -> None: ...

    def positions(self, account: str) -> list[StoredPosition]:
        """Every position row of the account, flat ones included, by instrument."""
        ...

    def holdings(self, instrument: str | None = None) -> list[tuple[str, StoredPosition]]:
        """Every account's non-flat positions (in `instrument` only, if given), by account
        and instrument: who an expiry or a funding settlement touches."""
        ...

    def instrument_fills_after(self, instrument: str, ts: datetime) -> list[StoredFill]:
        """Fills of every account in `instrument` stamped after `ts`, by sequence."""
        ...

    def insert_funding(self, funding: StoredFunding) -> StoredFunding: ...

    def funding_after(self, account: str, sequence: int, limit: int) -> list[StoredFunding]:
        """Up to `limit` funding rows of `account` with a sequence above `sequence`, oldest
        first."""
        ...

    def insert_submission(self, submission: Submission) -> Submission: ...

    def submission_counts(self) -> dict[str, SubmissionCounts]:
        """Counts per account that has submitted anything."""
        ...

    def submissions_after(self, account: str | None, sequence: int,
                          limit: int) -> list[Submission]:
        """Up to `limit` submissions of `account` (None: of every account) with a sequence
        above `sequence`, oldest first."""
        ...


class Book(Protocol):
    def write(self) -> AbstractContextManager[BookSession]: ...

    def read(self) -> AbstractContextManager[BookSession]: ...

    def close(self) -> None: ...


# --- in memory --------------------------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")
_ABSENT = object()


@dataclass(slots=True)
class _MemoryState:
    meta: dict[str, str] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, datetime] = field(default_factory=dict)
    balances: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    orders: dict[tuple[str, str], StoredOrder] = field(default_factory=dict)
    open_orders: dict[int, tuple[str, str]] = field(default_factory=dict)
    fills: dict[str, list[StoredFill]] = field(default_factory=dict)
    positions: dict[str, dict[str, StoredPosition]] = field(default_factory=dict)
    funding: dict[str, list[StoredFunding]] = field(default_factory=dict)
    # The newest submissions only: appending to a full deque drops its oldest in O(1) (a
    # list's del [0] moves every one kept, once per order of a long backtest).
    submissions: deque[Submission] = field(
        default_factory=lambda: deque(maxlen=MEMORY_SUBMISSIONS_KEPT))
    submission_counts: dict[str, SubmissionCounts] = field(default_factory=dict)
    counters: dict[str, int] = field(
        default_factory=lambda: {"order": 0, "fill": 0, "submission": 0, "funding": 0})


# A journal step: (mapping, key, value before) puts the value back, or drops the key when it
# was _ABSENT; (list, _APPENDED, item) takes an appended item out again.
_Step = tuple[Any, Any, Any]
_APPENDED = object()


class MemoryBook:
    """A Book in a few dicts, for tests and backtests. A failed write session is undone
    through a journal of inverse steps, so nothing has to be copied up front."""

    def __init__(self) -> None:
        self._state = _MemoryState()

    def write(self) -> AbstractContextManager[BookSession]:
        return _WriteSession(self._state)

    @contextmanager
    def read(self) -> Iterator[BookSession]:
        yield _MemorySession(self._state, None)

    def close(self) -> None:
        """Nothing to release; here so MemoryBook and SqlBook are interchangeable."""


class _MemorySession:
    def __init__(self, state: _MemoryState, journal: list[_Step] | None) -> None:
        self._state = state
        self._journal = journal

    def _put(self, mapping: MutableMapping[K, V], key: K, value: V) -> None:
        if self._journal is None:
            raise RuntimeError("cannot write to the sandbox book in a read session")
        self._journal.append((mapping, key, mapping.get(key, _ABSENT)))
        mapping[key] = value

    def _appended(self, items: list[Any] | deque[Any], item: object) -> None:
        if self._journal is None:
            raise RuntimeError("cannot write to the sandbox book in a read session")
        items.append(item)
        self._journal.append((items, _APPENDED, item))

    def _pop(self, mapping: MutableMapping[K, V], key: K) -> None:
        if key in mapping:
            self._put(mapping, key, mapping[key])  # journal the current value
            del mapping[key]

    def _next(self, counter: str) -> int:
        value = self._state.counters[counter] + 1
        self._put(self._state.counters, counter, value)
        return value

    def meta(self, key: str) -> str | None:
        return self._state.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._put(self._state.meta, key, value)

    def market_offsets(self) -> dict[str, int]:
        return dict(self._state.offsets)

    def set_market_offset(self, market: str, offset_s: int) -> None:
        self._put(self._state.offsets, market, offset_s)

    def has_account(self, account: str) -> bool:
        return account in self._state.accounts

    def create_account(self, account: str, created_at: datetime) -> None:
        self._put(self._state.accounts, account, created_at)
        self._put(self._state.balances, account, {})
        self._put(self._state.positions, account, {})
        self._put(self._state.fills, account, [])

    def balances(self, account: str) -> dict[str, Decimal]:
        return dict(self._state.balances.get(account, {}))

    def set_balance(self, account: str, currency: str, amount: Decimal) -> None:
        self._put(self._state.balances[account], currency, amount)

    def order(self, account: str, client_order_id: str) -> StoredOrder | None:
        return self._state.orders.get((account, client_order_id))

    def insert_order(self, order: StoredOrder) -> StoredOrder:
        stored = evolve(order, order_id=self._next("order"))
        self._put(self._state.orders, (order.account, order.client_order_id), stored)
        if stored.is_open:
            self._put(self._state.open_orders, stored.order_id,
                      (order.account, order.client_order_id))
        return stored

    def update_order(self, order: StoredOrder) -> None:
        self._put(self._state.orders, (order.account, order.client_order_id), order)
        if not order.is_open:
            self._pop(self._state.open_orders, order.order_id)

    def open_orders(self, account: str | None = None) -> list[StoredOrder]:
        if not self._state.open_orders:
            return []  # the usual answer in a backtest, where market orders fill at once
        # sorted: an undone write may have put an order id back out of order
        orders = (self._state.orders[key] for _, key in sorted(self._state.open_orders.items()))
        return [o for o in orders if account is None or o.account == account]

    def insert_fill(self, fill: StoredFill) -> StoredFill:
        if self._journal is None:
            raise RuntimeError("cannot write to the sandbox book in a read session")
        stored = evolve(fill, sequence=self._next("fill"))
        self._appended(self._state.fills[fill.account], stored)
        return stored

    def fills_after(self, account: str, sequence: int, limit: int) -> list[StoredFill]:
        account_fills = self._state.fills.get(account, [])
        start = bisect_right(account_fills, sequence, key=lambda f: f.sequence)
        return account_fills[start:start + limit]

    def position(self, account: str, instrument: str) -> StoredPosition | None:
        return self._state.positions.get(account, {}).get(instrument)

    def set_position(self, account: str, position: StoredPosition) -> None:
        self._put(self._state.positions[account], position.instrument, position)

    def positions(self, account: str) -> list[StoredPosition]:
        held = self._state.positions.get(account, {})
        return [held[key] for key in sorted(held)]

    def holdings(self, instrument: str | None = None) -> list[tuple[str, StoredPosition]]:
        found: list[tuple[str, StoredPosition]] = []
        for account in sorted(self._state.positions):
            held = self._state.positions[account]
            keys = sorted(held) if instrument is None else [instrument]
            found.extend((account, held[key]) for key in keys
                         if key in held and held[key].quantity != ZERO)
        return found

    def instrument_fills_after(self, instrument: str, ts: datetime) -> list[StoredFill]:
        found = [fill for fills in self._state.fills.values() for fill in fills
                 if fill.instrument == instrument and fill.ts > ts]
        return sorted(found, key=lambda fill: fill.sequence)

    def insert_funding(self, funding: StoredFunding) -> StoredFunding:
        if self._journal is None:
            raise RuntimeError("cannot write to the sandbox book in a read session")
        stored = evolve(funding, sequence=self._next("funding"))
        if funding.account not in self._state.funding:
            self._put(self._state.funding, funding.account, [])
        self._appended(self._state.funding[funding.account], stored)
        return stored

    def funding_after(self, account: str, sequence: int, limit: int) -> list[StoredFunding]:
        rows = self._state.funding.get(account, [])
        start = bisect_right(rows, sequence, key=lambda f: f.sequence)
        return rows[start:start + limit]

    def insert_submission(self, submission: Submission) -> Submission:
        if self._journal is None:
            raise RuntimeError("cannot write to the sandbox book in a read session")
        stored = evolve(submission, sequence=self._next("submission"))
        counts = self._state.submission_counts.get(submission.account) or _NO_SUBMISSIONS
        self._put(self._state.submission_counts, submission.account, counts.plus(stored))
        # Past MEMORY_SUBMISSIONS_KEPT the oldest goes (not journaled: only the oldest, never
        # the one just added).
        self._appended(self._state.submissions, stored)
        return stored

    def submission_counts(self) -> dict[str, SubmissionCounts]:
        return dict(self._state.submission_counts)

    def submissions_after(self, account: str | None, sequence: int,
                          limit: int) -> list[Submission]:
        kept = self._state.submissions
        start = bisect_right(kept, sequence, key=lambda s: s.sequence)
        found: list[Submission] = []
        for submission in islice(kept, start, None):
            if account is None or submission.account == account:
                found.append(submission)
                if len(found) == limit:
                    break
        return found


class _WriteSession:
    """MemoryBook.write(): one write transaction; on any exception every step it journaled is
    undone, newest first, and the exception goes on."""

    __slots__ = ("_journal", "_state")

    def __init__(self, state: _MemoryState) -> None:
        self._state = state
        self._journal: list[_Step] = []

    def __enter__(self) -> BookSession:
        return _MemorySession(self._state, self._journal)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is not None:
            _undo(self._journal)


def _undo(journal: list[_Step]) -> None:
    for target, key, before in reversed(journal):
        if key is _APPENDED:
            target.remove(before)
        elif before is _ABSENT:
            target.pop(key, None)
        else:
            target[key] = before
