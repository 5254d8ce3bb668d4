"""FakeExchange: the state of a fake Binance spot account (markets, balances, orders, fills).

No HTTP here: `FakeExchangeServer` speaks Binance's REST dialect on top of it, and a test
can read the same state directly to check what the client did.

Matching is deliberately simple and deterministic. A MARKET order fills whole, at once, at
`price(symbol, now())`. A LIMIT order that is marketable (buy limit >= price, sell limit <=
price) fills whole, at once, at its limit price; otherwise GTC rests (IOC/FOK expire) and
fills whole, at its limit price, the first time a request arrives or `match()` runs with the
price at or through the limit. There is no book depth and no partial fill.

Commission is `commission_rate` of the quote amount, charged in the QUOTE asset on every
fill, buys and sells alike, and not rounded. Real Binance charges the asset you receive
(base on a buy) unless you pay fees with BNB; one asset here keeps the ledger arithmetic
of a parity test simple. A buy therefore needs quote for notional plus commission.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from .faults import FaultPlan
from .model import (
    Balance,
    BarSource,
    BinanceError,
    Clock,
    FakeMarket,
    FakeOrder,
    FakeTrade,
    OrderRequest,
    OrderStatus,
    PriceSource,
    Submission,
    filter_failure,
    insufficient_balance,
    invalid_symbol,
)
from .prices import FixedPrices

ZERO = Decimal(0)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class _Wallet:
    """Free and locked amounts per asset; every change checks it leaves nothing negative."""

    def __init__(self, balances: Mapping[str, Decimal]) -> None:
        self.free: dict[str, Decimal] = {asset: Decimal(amount) for asset, amount in
                                         balances.items()}
        self.locked: dict[str, Decimal] = {}

    def lock(self, asset: str, amount: Decimal) -> None:
        if self.free.get(asset, ZERO) < amount:
            raise insufficient_balance()
        self.free[asset] = self.free.get(asset, ZERO) - amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        self.spend_locked(asset, amount)
        self.credit(asset, amount)

    def spend_locked(self, asset: str, amount: Decimal) -> None:
        left = self.locked.get(asset, ZERO) - amount
        if left < 0:
            raise AssertionError(f"fake exchange bug: locked {asset} would go negative")
        self.locked[asset] = left

    def credit(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + amount

    def snapshot(self, assets: Sequence[str]) -> dict[str, Balance]:
        names = dict.fromkeys([*assets, *self.free, *self.locked])
        return {asset: Balance(self.free.get(asset, ZERO), self.locked.get(asset, ZERO))
                for asset in names}


class FakeExchange:
    """A deterministic, thread-safe fake of one Binance spot account.

    `price(symbol, at)` is the last trade price of a Binance symbol ("BTCUSDT") at a time;
    `bars(symbol, interval_s, start, end)` returns the complete bars whose open time lies in
    [start, end) (without it, klines are flat at the price at each bar's close); `now()` is
    the exchange's clock (UTC, tz-aware) for matching, order times and signed-request
    timestamps. Every public method may be called from any thread.
    """

    def __init__(self, markets: Sequence[FakeMarket], price: PriceSource, *,
                 bars: BarSource | None = None, now: Clock | None = None,
                 balances: Mapping[str, Decimal] | None = None,
                 commission_rate: Decimal = Decimal("0.001"),
                 api_key: str = "fake-api-key",
                 api_secret: str = "fake-api-secret") -> None:  # noqa: S107 - a fake's own
        if not markets:
            raise ValueError("a fake exchange needs at least one market")
        if not Decimal(0) <= commission_rate < 1:
            raise ValueError("commission_rate is a fraction in [0, 1)")
        self.markets: Mapping[str, FakeMarket] = {m.symbol: m for m in markets}
        self.price_source = price
        self.bar_source = bars
        self.clock: Clock = now or _wall_clock
        self.commission_rate = Decimal(commission_rate)
        self.api_key = api_key
        self.api_secret = api_secret
        self.faults = FaultPlan()
        self._lock = threading.RLock()
        self._wallet = _Wallet(balances or {})
        self._orders: dict[int, FakeOrder] = {}
        self._trades: list[FakeTrade] = []
        self._used_client_ids: set[str] = set()
        self._submissions: list[Submission] = []
        self.internal_errors: list[str] = []  # tracebacks of requests the fake itself failed

    @staticmethod
    def fixed_prices(prices: Mapping[str, Decimal]) -> FixedPrices:
        """A price source for simple tests: one price per symbol, changed with `.set()`."""
        return FixedPrices(prices)

    # --- reading -------------------------------------------------------------------

    def now(self) -> datetime:
        at = self.clock()
        if at.tzinfo is None:
            raise ValueError("the fake exchange's clock must return tz-aware datetimes")
        return at.astimezone(UTC)

    def market(self, symbol: str) -> FakeMarket:
        try:
            return self.markets[symbol]
        except KeyError:
            raise invalid_symbol() from None

    def price(self, symbol: str) -> Decimal:
        """The last price of `symbol` now."""
        return Decimal(self.price_source(self.market(symbol).symbol, self.now()))

    def balances(self) -> dict[str, Balance]:
        """Free and locked amount of every asset of every market, and any other asset held."""
        assets = [a for m in self.markets.values() for a in (m.base, m.quote)]
        with self._lock:
            return self._wallet.snapshot(assets)

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Money moved in (or out, negative) outside any order: a transfer, a manual trade
        on the website — what a bot's boot reconciliation must notice."""
        with self._lock:
            self._wallet.free[asset] = self._wallet.free.get(asset, Decimal(0)) + amount

    def orders(self) -> list[FakeOrder]:
        """Every accepted order, oldest first."""
        with self._lock:
            return list(self._orders.values())

    def trades(self) -> list[FakeTrade]:
        """Every fill, oldest first."""
        with self._lock:
            return list(self._trades)

    @property
    def submissions(self) -> list[Submission]:
        """Every POST /api/v3/order that arrived, in arrival order (faults and rejects too)."""
        with self._lock:
            return list(self._submissions)

    @property
    def duplicate_submissions(self) -> int:
        """How many order POSTs reused the clientOrderId of an order already accepted."""
        with self._lock:
            return sum(1 for s in self._submissions if s.duplicate)

    def record_submission(self, client_order_id: str | None, fault: str | None) -> None:
        with self._lock:
            duplicate = client_order_id is not None and client_order_id in self._used_client_ids
            self._submissions.append(Submission(client_order_id, self.now(), duplicate, fault))

    # --- orders --------------------------------------------------------------------

    def get_order(self, symbol: str, order_id: int | None = None,
                  client_order_id: str | None = None) -> FakeOrder:
        """An order by id, else by clientOrderId (the newest one that used it)."""
        self.market(symbol)
        with self._lock:
            order = self._find(symbol, order_id, client_order_id)
        if order is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        return order

    def open_orders(self, symbol: str | None = None) -> list[FakeOrder]:
        if symbol is not None:
            self.market(symbol)
        with self._lock:
            return [o for o in self._orders.values()
                    if o.is_open and symbol in (None, o.symbol)]

    def place_order(self, request: OrderRequest) -> tuple[FakeOrder, list[FakeTrade]]:
        """Check, accept and (if it can) fill a new order; BinanceError if refused."""
        market = self.market(request.symbol)
        with self._lock:
            if request.client_order_id is not None and self._is_open_client_id(
                    request.symbol, request.client_order_id):
                raise BinanceError(400, -2010, "Duplicate order sent.")
            now = self.now()
            last = self.price(market.symbol)
            price, quantity = _check_filters(market, request, last)
            order = self._accept(market, request, price, quantity, now)
            if request.type == "MARKET" or _marketable(request.side, price, last):
                trade = self._fill(order, price, False)
                return self._orders[order.order_id], [trade]
            if request.time_in_force in ("IOC", "FOK"):
                self._close(order, OrderStatus.EXPIRED)
            return self._orders[order.order_id], []

    def cancel_order(self, symbol: str, order_id: int | None = None,
                     client_order_id: str | None = None) -> FakeOrder:
        """Cancel an open order; -2011 if there is none (filled orders included, as on Binance)."""
        self.market(symbol)
        with self._lock:
            order = self._find(symbol, order_id, client_order_id)
            if order is None or not order.is_open:
                raise BinanceError(400, -2011, "Unknown order sent.")
            return self._close(order, OrderStatus.CANCELED)

    def match(self) -> list[FakeTrade]:
        """Fill every resting order whose limit the price has reached; the fills made."""
        with self._lock:
            resting = [o for o in self._orders.values() if o.is_open]
            prices = {symbol: self.price(symbol) for symbol in {o.symbol for o in resting}}
            return [self._fill(o, o.price, True) for o in resting
                    if _marketable(o.side, o.price, prices[o.symbol])]

    def my_trades(self, symbol: str, *, order_id: int | None = None, from_id: int | None = None,
                  start: datetime | None = None, end: datetime | None = None,
                  limit: int = 500) -> list[FakeTrade]:
        """Fills of `symbol` by Binance's rules: from `from_id`, or within [start, end], the
        oldest `limit` of them; with neither, the newest `limit`. Always ascending by id."""
        self.market(symbol)
        with self._lock:
            trades = [t for t in self._trades if t.symbol == symbol
                      and order_id in (None, t.order_id)
                      and (from_id is None or t.trade_id >= from_id)
                      and (start is None or t.time >= start)
                      and (end is None or t.time <= end)]
        if from_id is None and start is None and end is None:
            return trades[max(len(trades) - limit, 0):]
        return trades[:limit]

    # --- internals (called with the lock held) -----------------------------------------

    def _find(self, symbol: str, order_id: int | None,
              client_order_id: str | None) -> FakeOrder | None:
        if order_id is not None:
            order = self._orders.get(order_id)
            return order if order is not None and order.symbol == symbol else None
        matches = [o for o in self._orders.values()
                   if o.symbol == symbol and o.client_order_id == client_order_id]
        return matches[-1] if matches else None

    def _is_open_client_id(self, symbol: str, client_order_id: str) -> bool:
        return any(o.is_open and o.client_order_id == client_order_id and o.symbol == symbol
                   for o in self._orders.values())

    def _accept(self, market: FakeMarket, request: OrderRequest, price: Decimal,
                quantity: Decimal, now: datetime) -> FakeOrder:
        if request.side == "BUY":
            asset, reserve = market.quote, quantity * price * (1 + self.commission_rate)
        else:
            asset, reserve = market.base, quantity
        self._wallet.lock(asset, reserve)
        order = FakeOrder(
            order_id=len(self._orders) + 1,
            client_order_id=request.client_order_id or f"fake-order-{len(self._orders) + 1}",
            symbol=market.symbol, side=request.side, type=request.type,
            time_in_force=request.time_in_force if request.type == "LIMIT" else None,
            price=price if request.type == "LIMIT" else ZERO,
            orig_qty=quantity, executed_qty=ZERO, cummulative_quote_qty=ZERO,
            status=OrderStatus.NEW, time=now, update_time=now,
            reserved=reserve, reserved_asset=asset)
        self._orders[order.order_id] = order
        self._used_client_ids.add(order.client_order_id)
        return order

    def _fill(self, order: FakeOrder, price: Decimal, is_maker: bool) -> FakeTrade:
        market = self.markets[order.symbol]
        quote_qty = order.orig_qty * price
        commission = quote_qty * self.commission_rate
        if order.side == "BUY":
            self._wallet.spend_locked(market.quote, quote_qty + commission)
            self._wallet.unlock(market.quote, order.reserved - quote_qty - commission)
            self._wallet.credit(market.base, order.orig_qty)
        else:
            self._wallet.spend_locked(market.base, order.orig_qty)
            self._wallet.credit(market.quote, quote_qty - commission)
        now = self.now()
        trade = FakeTrade(
            trade_id=len(self._trades) + 1, order_id=order.order_id, symbol=order.symbol,
            price=price, qty=order.orig_qty, quote_qty=quote_qty, commission=commission,
            commission_asset=market.quote, time=now, is_buyer=order.side == "BUY",
            is_maker=is_maker)
        self._trades.append(trade)
        self._orders[order.order_id] = replace(
            order, executed_qty=order.orig_qty, cummulative_quote_qty=quote_qty,
            status=OrderStatus.FILLED, update_time=now, reserved=ZERO)
        return trade

    def _close(self, order: FakeOrder, status: OrderStatus) -> FakeOrder:
        self._wallet.unlock(order.reserved_asset, order.reserved)
        closed = replace(order, status=status, update_time=self.now(), reserved=ZERO)
        self._orders[order.order_id] = closed
        return closed


def _marketable(side: str, limit: Decimal, last: Decimal) -> bool:
    return limit >= last if side == "BUY" else limit <= last


def _check_filters(market: FakeMarket, request: OrderRequest,
                   last: Decimal) -> tuple[Decimal, Decimal]:
    """The order's price (limit, or last for a market order) and quantity, after Binance's
    PRICE_FILTER, LOT_SIZE and NOTIONAL checks, in that order."""
    quantity = request.quantity
    price = last
    if request.type == "LIMIT":
        price = request.price if request.price is not None else ZERO
        if (price < market.tick_size or price > market.max_price
                or price % market.tick_size != 0):
            raise filter_failure("PRICE_FILTER")
    if (quantity < market.min_qty or quantity > market.max_qty or quantity <= 0
            or quantity % market.step_size != 0):
        raise filter_failure("LOT_SIZE")
    notional = quantity * price
    if notional < market.min_notional or notional > market.max_notional:
        raise filter_failure("NOTIONAL")
    return price, quantity
