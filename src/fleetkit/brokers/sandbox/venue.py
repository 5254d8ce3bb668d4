"""SandboxVenue: accounts, order matching and venue time, kept in a Book.

One venue serves many accounts (one per bot). Every public method takes the venue's lock
and runs as one book transaction, so the venue is safe to share between threads and a
crash at any point leaves the book as it was before or after a whole operation.

Venue time: each market has a fixed offset from the wall clock, decided once when the book
is first created (genesis) and kept in it. In time mode "real" every offset is zero; in
"demo" a market that is closed at genesis is moved back into its most recent session (see
venuetime.demo_offset_s), so a demo trades every market from its first minute and a
restart carries on at the same venue time. Demo mode needs a SessionSource to find those
sessions; it uses each instrument's own `calendar`.

The offset stays inside the venue: prices are looked up at venue time, but every time the
venue hands out (clocks, quotes, bars, fills, order times) is wall-clock time, and bar
windows asked for are wall-clock too. So a bot — and the fleet database — live in one time,
and a demo market simply looks like a market that happens to be open now.

Matching: an order fills the first time it can (on submit when marketable, otherwise on a
later matching pass) and that first fill may be partial (matching.plan_first_fill); the
rest then fills on the first pass after its delay at the then-current price. Passes are
driven from outside by `match()`: a thread in the service, lazily per call in-process.

Invariant counters: every submission is recorded in the book (see book.Submission), so
`submission_counts()` says per account how many orders arrived and how many repeated a
client order id (a bot must never resend), and `submissions()` pages through when each
arrived (nothing may arrive while its bot is halted). `reject()` and `fill_remainder()`
exist for fault injection (faults.py): a venue that says no, or fills before a cancel lands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.numbers import ZERO, require_utc
from fleetkit.core.orders import Fill, OrderStatus, OrderType, Side, status_after_fill
from fleetkit.core.records import evolve
from fleetkit.engine.ports import (
    Clock,
    FillPage,
    OrderReport,
    OrderRequest,
    PositionReport,
    SessionSource,
)

from .book import (
    Book,
    BookSession,
    StoredFill,
    StoredOrder,
    Submission,
    SubmissionCounts,
)
from .config import VenueConfig
from .contracts import ContractRules
from .errors import OrderNotFoundError, UnknownInstrumentError, UnknownMarketError
from .matching import (
    cash_change,
    cost_to_buy,
    execution_price,
    fee_for,
    order_problem,
    plan_first_fill,
    position_after,
    taker_price,
)
from .pricing import PriceSource
from .venuetime import open_venue_time

logger = logging.getLogger("fleetkit.sandbox")

MAX_FILL_PAGE = 1000
MAX_SUBMISSION_PAGE = 1000
MAX_ACCOUNT_LENGTH = 100
MAX_CLIENT_ORDER_ID_LENGTH = 200
MAX_INSTRUMENT_LENGTH = 200
MARKET_CLOSED = "market closed"
# Enum members as module constants: looking one up on its class (through EnumType's
# __getattr__ hook) costs more than the comparison, on the path every order takes.
_BUY, _SELL, _MARKET = Side.BUY, Side.SELL, OrderType.MARKET
_ACKNOWLEDGED, _REJECTED = OrderStatus.ACKNOWLEDGED, OrderStatus.REJECTED


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill about to be booked; `rest_after` is set when it leaves a remainder, which
    may then fill no sooner than that long after `at`."""

    quantity: Decimal
    price: Decimal
    at: datetime
    rest_after: timedelta | None = None


class SandboxVenue:
    def __init__(self, prices: PriceSource, book: Book, clock: Clock, config: VenueConfig, *,
                 sessions: SessionSource | None = None,
                 contract_rules: Mapping[str, ContractRules] | None = None) -> None:
        if config.time_mode == "demo" and sessions is None:
            raise ValueError("time_mode 'demo' needs a SessionSource to find market sessions")
        self._prices = prices
        self._sessions = sessions
        self._contract_rules = None if contract_rules is None else MappingProxyType(
            dict(contract_rules))
        self._book = book
        self._clock = clock
        self._config = config
        self._latency = timedelta(milliseconds=config.latency_ms)
        self._lock = threading.RLock()
        self._instruments: Mapping[str, Instrument] = MappingProxyType(dict(prices.instruments()))
        self._calendars = {i.market: i.calendar for i in self._instruments.values()}
        with self._lock:
            self._genesis_at, offsets_s = self._open_book(sessions)
        self._offsets = MappingProxyType(
            {market: timedelta(seconds=s) for market, s in offsets_s.items()})

    # --- venue time and market data -----------------------------------------------------

    @property
    def config(self) -> VenueConfig:
        return self._config

    @property
    def genesis_at(self) -> datetime:
        """Wall-clock time the book was first opened; venue offsets were decided then."""
        return self._genesis_at

    @property
    def offsets(self) -> Mapping[str, timedelta]:
        """Per market: venue time minus wall-clock time."""
        return self._offsets

    def offset(self, market: str) -> timedelta:
        """Venue time minus wall-clock time in `market`; UnknownMarketError if unpriced."""
        try:
            return self._offsets[market]
        except KeyError:
            known = ", ".join(sorted(self._offsets))
            raise UnknownMarketError(
                f"the sandbox prices no instrument in market {market!r}; known: {known}"
            ) from None

    @property
    def sessions(self) -> SessionSource | None:
        """The calendars the venue was given (derivatives find expiry days with them)."""
        return self._sessions

    @property
    def contract_rules(self) -> Mapping[str, ContractRules] | None:
        """The index options and futures it lists (derivatives.py), by root; None: the
        rules fleetkit ships."""
        return self._contract_rules

    def wall_now(self) -> datetime:
        return require_utc(self._clock.now(), what="clock time")

    def venue_now(self, market: str) -> datetime:
        return self.wall_now() + self.offset(market)

    def instruments(self) -> Mapping[str, Instrument]:
        return self._instruments

    def market_clock(self, market: str) -> MarketClock:
        offset = self.offset(market)
        clock = self._prices.market_clock(market, self.wall_now() + offset)
        return MarketClock(market, clock.now - offset, clock.is_open,
                           None if clock.next_open is None else clock.next_open - offset,
                           None if clock.next_close is None else clock.next_close - offset)

    def quote(self, instrument: str) -> Quote:
        found = self._instrument(instrument)
        offset = self.offset(found.market)
        if not offset:
            return self._prices.last_trade(found.key, self.wall_now())
        quote = self._prices.last_trade(found.key, self.wall_now() + offset)
        return Quote(quote.instrument, quote.price, quote.ts - offset)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime) -> list[Bar]:
        """Completed bars starting in [start, end) (venue times), as of the market's venue now."""
        found = self._instrument(instrument)
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        start, end = require_utc(start, what="start"), require_utc(end, what="end")
        offset = self.offset(found.market)
        bars = self._prices.bars(found.key, interval_s, start + offset, end + offset,
                                 self.wall_now() + offset)
        return [bar._replace(ts=bar.ts - offset) for bar in bars] if offset else bars

    # --- orders ---------------------------------------------------------------------------

    def submit(self, account: str, request: OrderRequest) -> OrderReport:
        """Accept, fill or reject an order. A client order id seen before in this account
        returns that order's current report and changes nothing (no second order, no fills)
        but is counted as a duplicate. Rejections are stored too, so a lookup finds them."""
        return self._take(account, request, None)

    def reject(self, account: str, request: OrderRequest, reason: str) -> OrderReport:
        """Store `request` as rejected for `reason` without judging it, as a venue refusing
        for its own reasons would (fault injection). A client order id seen before changes
        nothing, exactly as in submit()."""
        if not reason:
            raise ValueError("a rejection needs a reason")
        return self._take(account, request, reason)

    def fill_remainder(self, account: str, client_order_id: str) -> OrderReport | None:
        """Fill what is left of an open order now, at the current price (a limit order never
        worse than its limit, as if the price had just touched it): the fill that beats a
        cancel to the venue (fault injection). None, changing nothing, if the order is not
        open or its market is not in session."""
        _check_account(account)
        with self._lock, self._book.write() as txn:
            order = txn.order(account, client_order_id)
            instrument = None if order is None else self._instruments.get(order.instrument)
            if order is None or not order.is_open or instrument is None:
                return None
            at = self.venue_now(instrument.market)
            if not self._is_open(instrument, at):
                return None
            last = self._prices.last_trade(instrument.key, at).price
            price = taker_price(last, order.side, self._config.slippage_bps,
                                instrument.tick_size)
            if order.limit_price is not None:
                price = (min(price, order.limit_price) if order.side is Side.BUY
                         else max(price, order.limit_price))
            order, fill = self._fill_order(txn, order, Execution(order.remaining, price, at))
            return order.to_report((fill,))

    def cancel(self, account: str, client_order_id: str) -> OrderReport:
        """Cancel an open order; a finished one comes back unchanged. Filled parts stay."""
        _check_account(account)
        with self._lock, self._book.write() as txn:
            order = txn.order(account, client_order_id)
            if order is None:
                raise OrderNotFoundError(f"account {account!r} has no order {client_order_id!r}")
            if order.is_open:
                order = evolve(order, status=OrderStatus.CANCELLED, not_before=None,
                                updated_at=self.wall_now())
                txn.update_order(order)
            return order.to_report()

    def lookup(self, account: str, client_order_id: str) -> OrderReport | None:
        _check_account(account)
        with self._lock, self._book.read() as txn:
            order = txn.order(account, client_order_id)
            return None if order is None else order.to_report()

    def open_orders(self, account: str) -> list[OrderReport]:
        _check_account(account)
        with self._lock, self._book.read() as txn:
            return [order.to_report() for order in txn.open_orders(account)]

    def fills_since(self, account: str, cursor: str | None, limit: int = 500) -> FillPage:
        """Fills with a sequence above `cursor` (None: from the first), oldest first."""
        _check_account(account)
        after = _parse_cursor(cursor)
        if not 1 <= limit <= MAX_FILL_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_FILL_PAGE}, got {limit}")
        with self._lock, self._book.read() as txn:
            stored = txn.fills_after(account, after, limit + 1)
        fills = tuple(f.to_fill() for f in stored[:limit])
        return FillPage(fills, fills[-1].broker_fill_id if fills else cursor,
                        more=len(stored) > limit)

    def positions(self, account: str) -> list[PositionReport]:
        """Non-flat positions, by instrument; average price is the average cost."""
        _check_account(account)
        with self._lock, self._book.read() as txn:
            held = txn.positions(account)
        return [PositionReport(p.instrument, p.quantity, p.average_price)
                for p in held if p.quantity != ZERO]

    def balances(self, account: str) -> dict[str, Decimal]:
        """Cash per currency; an account not yet used shows the cash it would start with."""
        _check_account(account)
        with self._lock, self._book.read() as txn:
            if not txn.has_account(account):
                return dict(self._config.initial_cash)
            return txn.balances(account)

    def submission_counts(self) -> dict[str, SubmissionCounts]:
        """Per account that ever submitted: submissions, duplicates, new orders rejected."""
        with self._lock, self._book.read() as txn:
            return txn.submission_counts()

    def submissions(self, account: str | None, after: int = 0,
                    limit: int = MAX_SUBMISSION_PAGE) -> tuple[list[Submission], bool]:
        """Submissions of `account` (None: every account) with a sequence above `after`,
        oldest first, and whether more follow."""
        if account is not None:
            _check_account(account)
        if not 1 <= limit <= MAX_SUBMISSION_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_SUBMISSION_PAGE}, got {limit}")
        with self._lock, self._book.read() as txn:
            found = txn.submissions_after(account, after, limit + 1)
        return found[:limit], len(found) > limit

    def match(self, now: datetime | None = None) -> int:
        """One matching pass at wall-clock `now` (default: the clock's): fill every open order
        that can fill. Returns how many fills it made."""
        wall = require_utc(now, what="now") if now is not None else self.wall_now()
        with self._lock:
            with self._book.read() as txn:
                candidates = txn.open_orders()
            due = [(order, execution) for order in candidates
                   if (execution := self._fill_due(order, wall)) is not None]
            if not due:
                return 0  # the common case takes no write transaction (no SQLite write lock)
            with self._book.write() as txn:
                for order, execution in due:
                    self._fill_order(txn, order, execution)
            return len(due)

    # --- internals ------------------------------------------------------------------------

    def _open_book(self, sessions: SessionSource | None) -> tuple[datetime, dict[str, int]]:
        with self._book.write() as txn:
            return open_venue_time(txn, self._config, self._calendars, sessions,
                                   self.wall_now())

    def _instrument(self, key: str) -> Instrument:
        try:
            return self._instruments[key]
        except KeyError:
            raise UnknownInstrumentError(f"the sandbox prices no instrument {key!r}") from None

    def _take(self, account: str, request: OrderRequest, forced_reason: str | None
              ) -> OrderReport:
        _check_account(account)
        _check_request(request)
        with self._lock, self._book.write() as txn:
            received_at = self.wall_now()
            existing = txn.order(account, request.client_order_id)
            if existing is not None:
                txn.insert_submission(Submission(0, account, request.client_order_id,
                                                 received_at, True, existing.status))
                return existing.to_report()
            self._ensure_account(txn, account)
            if forced_reason is None:
                order, fills = self._accept(txn, account, request, received_at)
            else:
                logger.info("sandbox rejected %s/%s: %s", account, request.client_order_id,
                            forced_reason)
                order, fills = txn.insert_order(_new_order(
                    account, request, forced_reason, None, received_at)), ()
            txn.insert_submission(Submission(0, account, request.client_order_id,
                                             received_at, False, order.status))
            return order.to_report(fills)

    def _ensure_account(self, txn: BookSession, account: str) -> None:
        if txn.has_account(account):
            return
        txn.create_account(account, self.wall_now())
        for currency, amount in self._config.initial_cash.items():
            txn.set_balance(account, currency, amount)
        logger.info("sandbox account %s opened", account)

    def _accept(self, txn: BookSession, account: str, request: OrderRequest,
                wall: datetime) -> tuple[StoredOrder, tuple[Fill, ...]]:
        """`wall`: the wall-clock time the order was received."""
        instrument = self._instruments.get(request.instrument)
        if instrument is None:
            reason = order_problem(request, None)
            order = txn.insert_order(_new_order(account, request, reason, None, wall))
            logger.info("sandbox rejected %s/%s: %s", account, request.client_order_id, reason)
            return order, ()
        offset = self.offset(instrument.market)
        market = _Market(self._prices, instrument, wall + offset if offset else wall,
                         self._latency)
        reason = order_problem(request, instrument)
        reserve: Decimal | None = None
        if reason is None:
            reason, reserve = self._admission(txn, account, request, instrument, market)
        order = _new_order(account, request, reason, reserve, wall)
        if reason is not None:
            logger.info("sandbox rejected %s/%s: %s", account, request.client_order_id, reason)
            return txn.insert_order(order), ()
        first = self._first_fill_now(order, instrument, market)
        if first is None:
            return txn.insert_order(order), ()
        # Stored as it stands after its first fill: one row written, not written and changed
        # (the transaction ends the same; nothing in it refers to the order's id).
        order, fill = self._book_fill(txn, order, first)
        return txn.insert_order(order), (fill,)

    def _admission(self, txn: BookSession, account: str, request: OrderRequest,
                   instrument: Instrument, market: _Market) -> tuple[str | None, Decimal | None]:
        """Why the venue refuses this well-formed order right now (market, cash, position),
        and for a buy, the unit price its cash check (and later reservation) used."""
        if request.order_type is _MARKET and not market.is_open():
            return f"{MARKET_CLOSED}: {instrument.market} is not in session", None
        if request.side is _SELL:
            return self._short_problem(txn, account, request, instrument), None
        reserve = request.limit_price
        if reserve is None:
            reserve = taker_price(market.last_after_latency(), _BUY,
                                  self._config.slippage_bps, instrument.tick_size)
        return self._cash_problem(txn, account, request.quantity, reserve, instrument), reserve

    def _cash_problem(self, txn: BookSession, account: str, quantity: Decimal,
                      unit_price: Decimal, instrument: Instrument) -> str | None:
        fee_bps, currency = self._config.fee_bps, instrument.currency
        needed = cost_to_buy(quantity, unit_price, fee_bps)
        held_back = sum(
            (cost_to_buy(o.remaining, o.reserve_price, fee_bps)
             for o in txn.open_orders(account)
             if o.side is _BUY and o.reserve_price is not None
             and self._currency_of(o.instrument) == currency),
            ZERO)
        available = txn.balances(account).get(currency, ZERO) - held_back
        if needed <= available:
            return None
        return f"insufficient cash: needs {needed} {currency}, {available} available"

    def _short_problem(self, txn: BookSession, account: str, request: OrderRequest,
                       instrument: Instrument) -> str | None:
        if self._config.allow_short:
            return None
        position = txn.position(account, instrument.key)
        held = position.quantity if position is not None else ZERO
        selling = sum((o.remaining for o in txn.open_orders(account)
                       if o.side is Side.SELL and o.instrument == instrument.key), ZERO)
        available = held - selling
        if request.quantity <= available:
            return None
        return (f"insufficient position: selling {request.quantity} {instrument.key} with "
                f"{max(available, ZERO)} available, and this venue does not allow shorting")

    def _currency_of(self, instrument: str) -> str | None:
        found = self._instruments.get(instrument)
        return None if found is None else found.currency

    def _is_open(self, instrument: Instrument, at: datetime) -> bool:
        return self._prices.market_clock(instrument.market, at).is_open

    def _first_fill_now(self, order: StoredOrder, instrument: Instrument,
                        market: _Market) -> Execution | None:
        """What a new order fills right after it is accepted (after the venue's latency)."""
        if not market.is_open():
            return None
        return self._execution(order, instrument, market.after_latency,
                               market.last_after_latency())

    def _fill_due(self, order: StoredOrder, wall: datetime) -> Execution | None:
        """What an open order fills in a matching pass at wall time `wall`, if anything."""
        instrument = self._instruments.get(order.instrument)
        if instrument is None:
            return None  # the price source no longer has it: it rests until cancelled
        at = wall + self.offset(instrument.market)
        if order.not_before is not None and at < order.not_before:
            return None
        if not self._is_open(instrument, at):
            return None
        return self._execution(order, instrument, at,
                               self._prices.last_trade(instrument.key, at).price)

    def _execution(self, order: StoredOrder, instrument: Instrument,
                   at: datetime, last: Decimal) -> Execution | None:
        price = execution_price(order.side, order.order_type, order.limit_price, last,
                                self._config.slippage_bps, instrument.tick_size)
        if price is None:
            return None
        if order.filled_quantity > ZERO:
            return Execution(order.remaining, price, at)  # only a first fill may be partial
        plan = plan_first_fill(self._config.seed, order.account, order.client_order_id,
                               order.remaining, instrument.lot_size,
                               self._config.partial_fill_probability)
        rest_after = None if plan.rest_delay_s is None else timedelta(seconds=plan.rest_delay_s)
        return Execution(plan.quantity, price, at, rest_after)

    def _fill_order(self, txn: BookSession, order: StoredOrder,
                    execution: Execution) -> tuple[StoredOrder, Fill]:
        """Book one fill: the fill row, cash, position and the order, in `txn`."""
        order, fill = self._book_fill(txn, order, execution)
        txn.update_order(order)
        return order, fill

    def _book_fill(self, txn: BookSession, order: StoredOrder,
                   execution: Execution) -> tuple[StoredOrder, Fill]:
        """Book one fill's row, cash and position in `txn`; the order as it stands after it
        (for the caller to store)."""
        instrument = self._instruments[order.instrument]
        currency = instrument.currency
        quantity, price, at = execution.quantity, execution.price, execution.at
        offset = self.offset(instrument.market)
        wall_at = at - offset if offset else at  # what the outside world is told
        notional = quantity * price
        fee = fee_for(notional, self._config.fee_bps)
        fill = txn.insert_fill(StoredFill(0, order.account, order.client_order_id,
                                          order.instrument, order.side, quantity, price, fee,
                                          wall_at)).to_fill()
        cash = txn.balances(order.account).get(currency, ZERO)
        txn.set_balance(order.account, currency, cash + cash_change(order.side, notional, fee))
        held = txn.position(order.account, order.instrument)
        txn.set_position(order.account, position_after(held, fill))
        filled = order.filled_quantity + quantity
        order = evolve(
            order, filled_quantity=filled, filled_notional=order.filled_notional + notional,
            status=status_after_fill(order.quantity, filled, order.status), updated_at=wall_at,
            # not_before stays in venue time: it is compared with venue time in _fill_due.
            not_before=None if execution.rest_after is None else at + execution.rest_after)
        return order, fill


class _Market:
    """One instrument's market at one venue time, as one order's acceptance sees it: whether
    it is in session and the last trade after the venue's latency, each looked up once (the
    admission and the first fill ask the same questions of the same moment)."""

    __slots__ = ("_instrument", "_is_open", "_last", "_prices", "after_latency", "now")

    def __init__(self, prices: PriceSource, instrument: Instrument, now: datetime,
                 latency: timedelta) -> None:
        self._prices = prices
        self._instrument = instrument
        self.now = now
        self.after_latency = now + latency if latency else now
        self._is_open: bool | None = None
        self._last: Decimal | None = None

    def is_open(self) -> bool:
        if self._is_open is None:
            self._is_open = self._prices.market_clock(self._instrument.market, self.now).is_open
        return self._is_open

    def last_after_latency(self) -> Decimal:
        if self._last is None:
            self._last = self._prices.last_trade(self._instrument.key, self.after_latency).price
        return self._last


def _new_order(account: str, request: OrderRequest, reason: str | None,
               reserve: Decimal | None, now: datetime) -> StoredOrder:
    status = _REJECTED if reason is not None else _ACKNOWLEDGED
    return StoredOrder(  # positional, in StoredOrder's field order: once per order
        0, account, request.client_order_id, request.instrument, request.side,
        request.order_type, request.quantity, request.limit_price, status, ZERO, ZERO, reserve,
        reason or "", None, now, now)


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()):
        raise ValueError(f"fill cursor must be a fill id from this venue, got {cursor!r}")
    return int(cursor)


def _check_account(account: str) -> None:
    _check_name("account", account, MAX_ACCOUNT_LENGTH)


def _check_request(request: OrderRequest) -> None:
    _check_name("client_order_id", request.client_order_id, MAX_CLIENT_ORDER_ID_LENGTH)
    _check_name("instrument", request.instrument, MAX_INSTRUMENT_LENGTH)
    if not request.quantity.is_finite():
        raise ValueError(f"quantity must be a finite number, got {request.quantity}")
    if request.limit_price is not None and not request.limit_price.is_finite():
        raise ValueError(f"limit_price must be a finite number, got {request.limit_price}")


def _check_name(what: str, value: str, max_length: int) -> None:
    if not value or len(value) > max_length or not value.isprintable() or value != value.strip():
        raise ValueError(f"{what} must be 1 to {max_length} printable characters without "
                         f"surrounding spaces, got {value!r}")
