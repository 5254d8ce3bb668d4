"""What the venue settles on its own, in matching passes: futures at expiry and perpetual
funding. Each runs in one book transaction and records what it settled, so a second pass,
a restart or a crash mid-way never settles anything twice.

Expiry. A future still held at its expiry's close is closed at the final settlement price
(the spot at that close, on the tick grid) by a fill the venue makes itself: client order
id `SETTLE-<instrument key>`, no fee, stamped at the close, booked like any derivative fill
(cash moves by the realized P&L). Open orders on it are cancelled. The book's meta keeps
`settled:<key>` = the price: the record, and the price a later holder (none can exist:
the contract is no longer listed) would get.

Funding. At each settlement of a perpetual (00, 08, 16 UTC) every account holding it pays
or receives -rate x quantity x mark (longs pay when the rate is positive), rounded down to
the fee step (the venue's favour), on the quantity it held at that instant: its position
now less the fills stamped after the settlement. The meta `funding_period:<key>` is the
last period settled; a venue that was down over several settlements settles each in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import partial

from fleetkit.core.numbers import ZERO
from fleetkit.core.orders import OrderStatus, Side
from fleetkit.core.records import evolve

from .book import Book, BookSession, StoredFill, StoredFunding
from .listing import DerivativeListing, DerivativeSpec
from .margin import book_derivative_fill
from .matching import FEE_STEP, plain_decimal
from .perpetuals import funding_rate, last_settled_period, settlement

SETTLE_PREFIX = "SETTLE-"
_SETTLED = "settled:"
_FUNDING_PERIOD = "funding_period:"
_NEVER = datetime.max.replace(tzinfo=UTC)


class Settler:
    """Runs the settlements a matching pass finds due. It remembers when the next is due
    (the next listed expiry's close; each perpetual's next funding period), so a pass with
    nothing due costs a few comparisons and no transaction. The book stays the record:
    this only mirrors it, which holds while one venue owns the book."""

    def __init__(self, listing: DerivativeListing, seed: int, funding_done: dict[str, int]
                 ) -> None:
        self._listing = listing
        self._seed = seed
        self._funding_done = funding_done
        self._next_expiry: datetime | None = None  # None: check at the next pass

    @classmethod
    def open(cls, book: Book, listing: DerivativeListing, seed: int,
             wall: datetime) -> Settler:
        """A settler for `book`, reading (on first sight recording) each perpetual's last
        settled funding period."""
        with book.write() as txn:
            done = {key: settled_funding_period(txn, key, wall) for key in listing.perpetuals}
        return cls(listing, seed, done)

    def settle(self, book: Book, wall: datetime) -> int:
        """Settle expiries and funding due by wall time `wall`; how many settlement fills
        that made (funding payments are no fills)."""
        made = 0
        listing = self._listing
        if self._next_expiry is None or wall >= self._next_expiry:
            with book.write() as txn:
                made += settle_expired(txn, listing, wall)
            self._next_expiry = listing.next_expiry(wall) or _NEVER
        period = last_settled_period(wall)
        for key, done in self._funding_done.items():
            spec = listing.spec(key) if period > done else None
            if spec is None:
                continue
            with book.write() as txn:
                settle_funding(txn, spec, range(done + 1, period + 1), self._seed,
                               partial(self._mark_at, spec))
            self._funding_done[key] = period
        return made

    def _mark_at(self, spec: DerivativeSpec, wall: datetime) -> Decimal:
        return self._listing.last_trade(spec.key, self._listing.venue_time(spec, wall)).price


def settle_expired(txn: BookSession, listing: DerivativeListing, wall: datetime) -> int:
    """Settle every future that has expired by wall time `wall` and is still held or has
    open orders; returns how many settlement fills it made."""
    keys = {position.instrument for _, position in txn.holdings()}
    keys.update(order.instrument for order in txn.open_orders())
    made = 0
    for key in sorted(keys):
        spec = listing.spec(key)
        if (spec is None or spec.expiry_close is None
                or listing.venue_time(spec, wall) < spec.expiry_close):
            continue
        made += _settle_future(txn, listing, spec, wall)
    return made


def _settle_future(txn: BookSession, listing: DerivativeListing, spec: DerivativeSpec,
                   wall: datetime) -> int:
    if spec.expiry_close is None:
        raise ValueError(f"{spec.key} does not expire")
    key = spec.key
    recorded = txn.meta(_SETTLED + key)
    price = Decimal(recorded) if recorded is not None else listing.settlement_price(spec)
    if recorded is None:
        txn.set_meta(_SETTLED + key, str(price))
    at = spec.expiry_close - _offset(listing, spec, wall)  # the close, in wall time
    holders = txn.holdings(key)
    for account, position in holders:
        side = Side.SELL if position.quantity > ZERO else Side.BUY
        book_derivative_fill(txn, StoredFill(0, account, SETTLE_PREFIX + key, key, side,
                                             abs(position.quantity), price, ZERO, at),
                             spec.instrument.currency)
    for order in txn.open_orders():
        if order.instrument == key:
            txn.update_order(evolve(order, status=OrderStatus.CANCELLED, not_before=None,
                                    reason=f"{key} expired", updated_at=wall))
    return len(holders)


def funding_meta_key(instrument: str) -> str:
    return _FUNDING_PERIOD + instrument


def settled_funding_period(txn: BookSession, instrument: str, wall: datetime) -> int:
    """The last funding period of `instrument` the book has settled; a book that has
    never settled any starts at the last one before `wall` (recorded now), so funding is
    owed only from the venue's first sight of the perpetual on."""
    recorded = txn.meta(funding_meta_key(instrument))
    if recorded is not None:
        return int(recorded)
    period = last_settled_period(wall)
    txn.set_meta(funding_meta_key(instrument), str(period))
    return period


def settle_funding(txn: BookSession, spec: DerivativeSpec, periods: range, seed: int,
                   mark_at: Callable[[datetime], Decimal]) -> int:
    """Settle funding periods `periods` (ascending) of the perpetual `spec`; `mark_at`
    gives its mark at a wall time. Returns how many payments it booked."""
    if not periods:
        return 0
    key, currency = spec.key, spec.instrument.currency
    now = {account: position.quantity for account, position in txn.holdings(key)}
    later = txn.instrument_fills_after(key, settlement(periods[0]))
    accounts = sorted(set(now) | {fill.account for fill in later})
    made = 0
    for period in periods:
        at = settlement(period)
        rate = funding_rate(seed, key, period)
        mark = mark_at(at)
        for account in accounts:
            held = now.get(account, ZERO) - sum(
                (fill.quantity * fill.side.sign for fill in later
                 if fill.account == account and fill.ts > at), ZERO)
            if held == ZERO:
                continue
            amount = plain_decimal((-rate * held * mark).quantize(FEE_STEP,
                                                                  rounding=ROUND_FLOOR))
            txn.insert_funding(StoredFunding(0, account, key, at, rate, held, mark, amount))
            cash = txn.balances(account).get(currency, ZERO)
            txn.set_balance(account, currency, plain_decimal(cash + amount))
            made += 1
    txn.set_meta(funding_meta_key(key), str(periods[-1]))
    return made


def _offset(listing: DerivativeListing, spec: DerivativeSpec, wall: datetime) -> timedelta:
    """Venue time minus wall time in `spec`'s market."""
    return listing.venue_time(spec, wall) - wall
