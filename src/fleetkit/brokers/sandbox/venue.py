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

Derivatives: a venue given calendars (`sessions`) also trades the listed index futures of
its contract rules and the perpetuals whose index it prices (listing.py), on margin
(margin.py); matching passes settle expired futures and perpetual funding (settlement.py).
`instruments()` then changes as futures expire and the next month is listed. Spot orders
pay for this with one dict lookup at most: a key missing from the catalog is looked up in
the listing.

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
    FundingPage,
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
from .contract_calendar import ContractCalendar
from .contracts import ContractRules, load_contract_rules
from .errors import OrderNotFoundError, UnknownMarketError
from .intake import (
    Execution,
    MarketMoment,
    check_account,
    check_request,
    new_order,
    parse_cursor,
)
from .listing import DerivativeListing, DerivativeSpec
from .margin import book_derivative_fill, margin_problem
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
from .perpetuals import PERPETUALS, Perpetual
from .pricing import MarketPrices, PriceSource
from .settlement import Settler
from .tradables import Tradables
from .venuetime import open_venue_time

logger = logging.getLogger("fleetkit.sandbox")

MAX_FILL_PAGE = 1000
MAX_FUNDING_PAGE = 1000
MAX_SUBMISSION_PAGE = 1000
MARKET_CLOSED = "market closed"
# Enum members as module constants: looking one up on its class (through EnumType's
# __getattr__ hook) costs more than the comparison, on the path every order takes.
_BUY, _SELL, _MARKET = Side.BUY, Side.SELL, OrderType.MARKET


class SandboxVenue:
    def __init__(self, prices: PriceSource, book: Book, clock: Clock, config: VenueConfig, *,
                 sessions: SessionSource | None = None,
                 contract_rules: Mapping[str, ContractRules] | None = None,
                 perpetuals: Mapping[str, Perpetual] | None = None) -> None:
        """`contract_rules` (None: the shipped ones) and `perpetuals` (None: PERPETUALS)
        say which derivatives it trades, if given `sessions`."""
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
        self._contract_calendar = ContractCalendar(sessions)
        with self._lock:
            self._genesis_at, offsets_s = self._open_book(sessions)
        offsets = {market: timedelta(seconds=s) for market, s in offsets_s.items()}
        listing = None if sessions is None else DerivativeListing(
            prices, self._instruments, offsets, self._contract_calendar,
            load_contract_rules() if contract_rules is None else contract_rules,
            PERPETUALS if perpetuals is None else perpetuals, config.seed)
        self._tradables = Tradables(prices, self._instruments, listing)
        self._offsets = MappingProxyType(self._tradables.offsets(offsets))
        self._settler: Settler | None = None
        if listing is not None:
            with self._lock:
                self._settler = Settler.open(book, listing, config.seed, self.wall_now())

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
    def contract_calendar(self) -> ContractCalendar:
        """Sessions of the underlyings' markets, shared by everything pricing derivatives."""
        return self._contract_calendar

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
        """The catalog, and the derivatives listed now."""
        return self._tradables.at(self.wall_now())

    def market_clock(self, market: str) -> MarketClock:
        offset = self.offset(market)
        clock = self._tradables.market_prices(market).market_clock(market,
                                                                    self.wall_now() + offset)
        return MarketClock(market, clock.now - offset, clock.is_open,
                           None if clock.next_open is None else clock.next_open - offset,
                           None if clock.next_close is None else clock.next_close - offset)

    def quote(self, instrument: str) -> Quote:
        found, source = self._tradables.require(instrument, self.wall_now())
        offset = self.offset(found.market)
        if not offset:
            return source.last_trade(found.key, self.wall_now())
        quote = source.last_trade(found.key, self.wall_now() + offset)
        return Quote(quote.instrument, quote.price, quote.ts - offset)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime) -> list[Bar]:
        """Completed bars starting in [start, end) (venue times), as of the market's venue now."""
        found, source = self._tradables.require(instrument, self.wall_now())
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        start, end = require_utc(start, what="start"), require_utc(end, what="end")
        offset = self.offset(found.market)
        bars = source.bars(found.key, interval_s, start + offset, end + offset,
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
        check_account(account)
        with self._lock, self._book.write() as txn:
            order = txn.order(account, client_order_id)
            priced = (None if order is None
                      else self._tradables.priced(order.instrument, self.wall_now()))
            if order is None or not order.is_open or priced is None:
                return None
            instrument, source = priced
            at = self.venue_now(instrument.market)
            if not source.market_clock(instrument.market, at).is_open:
                return None
            last = source.last_trade(instrument.key, at).price
            price = taker_price(last, order.side, self._config.slippage_bps,
                                instrument.tick_size)
            if order.limit_price is not None:
                price = (min(price, order.limit_price) if order.side is Side.BUY
                         else max(price, order.limit_price))
            order, fill = self._fill_order(txn, order, Execution(order.remaining, price, at))
            return order.to_report((fill,))

    def cancel(self, account: str, client_order_id: str) -> OrderReport:
        """Cancel an open order; a finished one comes back unchanged. Filled parts stay."""
        check_account(account)
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
        check_account(account)
        with self._lock, self._book.read() as txn:
            order = txn.order(account, client_order_id)
            return None if order is None else order.to_report()

    def open_orders(self, account: str) -> list[OrderReport]:
        check_account(account)
        with self._lock, self._book.read() as txn:
            return [order.to_report() for order in txn.open_orders(account)]

    def funding_since(self, account: str, cursor: str | None, limit: int = 500) -> FundingPage:
        """Funding payments with a sequence above `cursor` (None: from the first), oldest
        first (settlement.py)."""
        check_account(account)
        after = parse_cursor(cursor, "funding")
        if not 1 <= limit <= MAX_FUNDING_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_FUNDING_PAGE}, got {limit}")
        with self._lock, self._book.read() as txn:
            stored = txn.funding_after(account, after, limit + 1)
        entries = tuple(f.to_entry() for f in stored[:limit])
        return FundingPage(entries, entries[-1].payment_id if entries else cursor,
                           more=len(stored) > limit)

    def fills_since(self, account: str, cursor: str | None, limit: int = 500) -> FillPage:
        """Fills with a sequence above `cursor` (None: from the first), oldest first."""
        check_account(account)
        after = parse_cursor(cursor, "fill")
        if not 1 <= limit <= MAX_FILL_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_FILL_PAGE}, got {limit}")
        with self._lock, self._book.read() as txn:
            stored = txn.fills_after(account, after, limit + 1)
        fills = tuple(f.to_fill() for f in stored[:limit])
        return FillPage(fills, fills[-1].broker_fill_id if fills else cursor,
                        more=len(stored) > limit)

    def positions(self, account: str) -> list[PositionReport]:
        """Non-flat positions, by instrument; average price is the average cost."""
        check_account(account)
        with self._lock, self._book.read() as txn:
            held = txn.positions(account)
        return [PositionReport(p.instrument, p.quantity, p.average_price)
                for p in held if p.quantity != ZERO]

    def balances(self, account: str) -> dict[str, Decimal]:
        """Cash per currency; an account not yet used shows the cash it would start with."""
        check_account(account)
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
            check_account(account)
        if not 1 <= limit <= MAX_SUBMISSION_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_SUBMISSION_PAGE}, got {limit}")
        with self._lock, self._book.read() as txn:
            found = txn.submissions_after(account, after, limit + 1)
        return found[:limit], len(found) > limit

    def match(self, now: datetime | None = None) -> int:
        """One matching pass at wall-clock `now` (default: the clock's): settle what is due
        on derivatives (expiries, funding), then fill every open order that can fill.
        Returns how many fills it made (settlement fills included)."""
        wall = require_utc(now, what="now") if now is not None else self.wall_now()
        with self._lock:
            settled = 0 if self._settler is None else self._settler.settle(self._book, wall)
            with self._book.read() as txn:
                candidates = txn.open_orders()
            due = [(order, execution) for order in candidates
                   if (execution := self._fill_due(order, wall)) is not None]
            if not due:
                return settled  # the common case takes no write transaction (no write lock)
            with self._book.write() as txn:
                for order, execution in due:
                    self._fill_order(txn, order, execution)
            return settled + len(due)

    # --- internals ------------------------------------------------------------------------

    def _open_book(self, sessions: SessionSource | None) -> tuple[datetime, dict[str, int]]:
        with self._book.write() as txn:
            return open_venue_time(txn, self._config, self._calendars, sessions,
                                   self.wall_now())

    def _take(self, account: str, request: OrderRequest, forced_reason: str | None
              ) -> OrderReport:
        check_account(account)
        check_request(request)
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
                order, fills = txn.insert_order(new_order(
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
            return self._accept_derivative(txn, account, request, wall)
        offset = self.offset(instrument.market)
        market = MarketMoment(self._prices, instrument, wall + offset if offset else wall,
                              self._latency)
        reason = order_problem(request, instrument)
        reserve: Decimal | None = None
        if reason is None:
            reason, reserve = self._admission(txn, account, request, instrument, market)
        return self._store_accepted(txn, account, request, instrument, market, reason, reserve,
                                    wall)

    def _accept_derivative(self, txn: BookSession, account: str, request: OrderRequest,
                           wall: datetime) -> tuple[StoredOrder, tuple[Fill, ...]]:
        """_accept for a key not in the catalog: a listed derivative, or a rejection."""
        spec = self._tradables.listed(request.instrument, wall)
        listing = self._tradables.listing
        if spec is None or listing is None:
            reason = (self._tradables.unlisted_reason(request.instrument)
                      or order_problem(request, None))
            order = txn.insert_order(new_order(account, request, reason, None, wall))
            logger.info("sandbox rejected %s/%s: %s", account, request.client_order_id, reason)
            return order, ()
        instrument = spec.instrument
        market = MarketMoment(listing, instrument, wall + self.offset(instrument.market),
                              self._latency)
        reason = order_problem(request, instrument)
        reserve: Decimal | None = None
        if reason is None:
            reason, reserve = self._margin_admission(txn, account, request, spec, market)
        return self._store_accepted(txn, account, request, instrument, market, reason, reserve,
                                    wall)

    def _store_accepted(self, txn: BookSession, account: str, request: OrderRequest,
                        instrument: Instrument, market: MarketMoment, reason: str | None,
                        reserve: Decimal | None, wall: datetime
                        ) -> tuple[StoredOrder, tuple[Fill, ...]]:
        order = new_order(account, request, reason, reserve, wall)
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
                   instrument: Instrument, market: MarketMoment
                   ) -> tuple[str | None, Decimal | None]:
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

    def _margin_admission(self, txn: BookSession, account: str, request: OrderRequest,
                          spec: DerivativeSpec, market: MarketMoment
                          ) -> tuple[str | None, Decimal | None]:
        """_admission for a derivative: the market, then margin (shorts always allowed);
        the unit price its margin was reckoned at, which an open order then holds."""
        instrument = spec.instrument
        if request.order_type is _MARKET and not market.is_open():
            return f"{MARKET_CLOSED}: {instrument.market} is not in session", None
        price = request.limit_price
        if price is None:
            price = taker_price(market.last_after_latency(), request.side,
                                self._config.slippage_bps, instrument.tick_size)
        return margin_problem(txn, account, spec, request.side, request.quantity, price,
                              self._config.fee_bps, self._tradables.spec_of), price

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

    def _first_fill_now(self, order: StoredOrder, instrument: Instrument,
                        market: MarketMoment) -> Execution | None:
        """What a new order fills right after it is accepted (after the venue's latency)."""
        if not market.is_open():
            return None
        return self._execution(order, instrument, market.after_latency,
                               market.last_after_latency())

    def _fill_due(self, order: StoredOrder, wall: datetime) -> Execution | None:
        """What an open order fills in a matching pass at wall time `wall`, if anything."""
        instrument = self._instruments.get(order.instrument)
        source: MarketPrices = self._prices
        if instrument is None:
            priced = self._tradables.priced(order.instrument, wall)
            if priced is None:
                return None  # no longer priced (or listed): it rests until cancelled
            instrument, source = priced
        at = wall + self.offset(instrument.market)
        if order.not_before is not None and at < order.not_before:
            return None
        if not source.market_clock(instrument.market, at).is_open:
            return None
        return self._execution(order, instrument, at,
                               source.last_trade(instrument.key, at).price)

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
        instrument = self._instruments.get(order.instrument)
        derivative = instrument is None
        if instrument is None:
            instrument = self._tradables.require_spec(order.instrument).instrument
        currency = instrument.currency
        quantity, price, at = execution.quantity, execution.price, execution.at
        offset = self.offset(instrument.market)
        wall_at = at - offset if offset else at  # what the outside world is told
        notional = quantity * price
        fee = fee_for(notional, self._config.fee_bps)
        stored = StoredFill(0, order.account, order.client_order_id, order.instrument,
                            order.side, quantity, price, fee, wall_at)
        if derivative:  # on margin: cash moves by realized P&L and the fee only
            fill = book_derivative_fill(txn, stored, currency).to_fill()
        else:
            fill = txn.insert_fill(stored).to_fill()
            cash = txn.balances(order.account).get(currency, ZERO)
            txn.set_balance(order.account, currency,
                            cash + cash_change(order.side, notional, fee))
            held = txn.position(order.account, order.instrument)
            txn.set_position(order.account, position_after(held, fill))
        filled = order.filled_quantity + quantity
        order = evolve(
            order, filled_quantity=filled, filled_notional=order.filled_notional + notional,
            status=status_after_fill(order.quantity, filled, order.status), updated_at=wall_at,
            # not_before stays in venue time: it is compared with venue time in _fill_due.
            not_before=None if execution.rest_after is None else at + execution.rest_after)
        return order, fill
