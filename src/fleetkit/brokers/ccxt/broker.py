"""CcxtBroker: one spot account on a real exchange as the engine's Broker and MarketData.

This is the only place where live trading differs from the sandbox: the same engine calls
the same six Broker methods; here they become ccxt calls.

- Our client order id travels with every order (ccxt's `clientOrderId` param), so after a
  crash `lookup()` finds an order by the id written ahead in the ledger, never by guessing.
- Quantities and prices must already sit on the venue's grid (the instruments come from the
  venue's own precision, so the trader sizes on it); anything off the grid, under the
  minimum size or under the minimum notional is refused here with the reason, unsent.
- Fills carry the venue's trade id, whether they come with an order's answer (Binance's
  FULL response) or from `fills_since` (the account's trade list): one trade, one id,
  applied once however often it is reported.
- A spot position is the account's balance of the base asset, less what config reserves.
- A submission whose answer is lost raises TransientBrokerError: the engine settles it by
  lookup, never by resending. A resend of a client id the venue already holds answers
  with the original order.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from fleetkit.core.errors import BadBrokerReplyError, ConfigError, OrderRejectedError
from fleetkit.core.instruments import ALWAYS_OPEN, AssetClass, Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.numbers import ZERO, plain, to_decimal
from fleetkit.core.orders import Fill, OrderStatus, OrderType, Side
from fleetkit.engine.ports import (
    Clock,
    FillPage,
    FundingPage,
    OrderReport,
    OrderRequest,
    PositionReport,
)

from .venue import CcxtVenue, OrderNotFoundAtVenue

logger = logging.getLogger("fleetkit.ccxt")

TIMEFRAMES: dict[int, str] = {1: "1s", 60: "1m", 180: "3m", 300: "5m", 900: "15m",
                              1800: "30m", 3600: "1h", 7200: "2h", 14400: "4h", 86400: "1d"}
_STATUS = {"open": OrderStatus.ACKNOWLEDGED, "closed": OrderStatus.FILLED,
           "canceled": OrderStatus.CANCELLED, "cancelled": OrderStatus.CANCELLED,
           "expired": OrderStatus.CANCELLED, "rejected": OrderStatus.REJECTED}
MAX_BAR_PAGES = 20


def venue_instrument(venue: CcxtVenue, market_code: str, symbol: str) -> Instrument:
    """An Instrument on the venue's own grid: tick, step and minimum size from its markets."""
    found = venue.market(symbol)
    precision = found.get("precision") or {}
    limits = found.get("limits") or {}
    tick = _step(venue, precision.get("price"), f"{symbol} price precision")
    step = _step(venue, precision.get("amount"), f"{symbol} amount precision")
    minimum = (limits.get("amount") or {}).get("min")
    return Instrument(symbol=symbol, market=market_code, asset_class=AssetClass.CRYPTO,
                      currency=str(found["quote"]), tick_size=tick, lot_size=step,
                      calendar=ALWAYS_OPEN,
                      min_quantity=None if minimum is None else to_decimal(minimum))


def _step(venue: CcxtVenue, value: object, what: str) -> Decimal:
    import ccxt

    if value is None:
        raise ConfigError(f"{venue.spec.ccxt_id} publishes no {what}")
    number = to_decimal(value, what=what)
    if venue.exchange.precisionMode == ccxt.TICK_SIZE:
        return number
    if venue.exchange.precisionMode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(number))
    raise ConfigError(f"{venue.spec.ccxt_id} states precision in significant digits, which "
                      "fleetkit does not support yet")


class CcxtBroker:
    """Broker + MarketData for the bot's instruments (keys "CRYPTO:BTC/USDT") on `venue`."""

    def __init__(self, venue: CcxtVenue, instruments: Mapping[str, Instrument],
                 clock: Clock) -> None:
        self._venue = venue
        self._instruments = dict(instruments)
        self._clock = clock
        self._symbols = {key: inst.symbol for key, inst in instruments.items()}
        self._keys = {inst.symbol: key for key, inst in instruments.items()}
        self._where: dict[str, str] = {}  # client order id -> symbol, learned as we go
        self._client_ids: dict[tuple[str, str], str] = {}  # (symbol, venue id) -> client id
        self._last_price: dict[str, Decimal] = {}

    @property
    def venue(self) -> CcxtVenue:
        return self._venue

    # --- Broker: sending ----------------------------------------------------------------

    def submit(self, request: OrderRequest) -> OrderReport:
        symbol = self._symbol(request.instrument)
        self._check_grid(request)
        price = None if request.limit_price is None else float(request.limit_price)
        kind = "limit" if request.order_type is OrderType.LIMIT else "market"
        self._where[request.client_order_id] = symbol
        try:
            order = self._venue.call(lambda ex: ex.create_order(
                symbol, kind, request.side.value, float(request.quantity), price,
                {"clientOrderId": request.client_order_id}))
        except OrderRejectedError:
            # A venue that refuses a repeated client id (Binance: "Duplicate order sent")
            # already holds the original: answer with it, as the Broker contract says.
            existing = self.lookup(request.client_order_id)
            if existing is not None:
                return existing
            raise
        report = self._with_fills(self._report(order, request.client_order_id), order)
        if report.status is OrderStatus.REJECTED:
            raise OrderRejectedError(report.reason or "rejected by the venue")
        return report

    def cancel(self, client_order_id: str) -> OrderReport:
        for symbol in self._candidates(client_order_id):
            try:
                order = self._venue.call(partial(_cancel, symbol, client_order_id))
            except OrderNotFoundAtVenue:
                continue
            return self._report(order, client_order_id)
        # Filled or cancelled already, or never received: say which.
        existing = self.lookup(client_order_id)
        if existing is None:
            raise OrderRejectedError(f"cancel {client_order_id}: the venue has no such order")
        return existing

    # --- Broker: reading back -------------------------------------------------------------

    def lookup(self, client_order_id: str) -> OrderReport | None:
        for symbol in self._candidates(client_order_id):
            try:
                order = self._venue.call(partial(_fetch_by_client_id, symbol, client_order_id))
            except OrderNotFoundAtVenue:
                continue
            self._where[client_order_id] = symbol
            return self._report(order, client_order_id)
        return None

    def open_orders(self) -> list[OrderReport]:
        reports: list[OrderReport] = []
        for symbol in self._keys:
            orders = self._venue.call(partial(_open_orders, symbol))
            reports.extend(self._report(order, None) for order in _listed(orders, "orders"))
        return reports

    def fills_since(self, cursor: str | None, limit: int = 500) -> FillPage:
        """The account's trades after `cursor`, per symbol (a JSON map of the last trade id
        seen per symbol). Venues that page by trade id (Binance: fromId) are read exactly;
        others by time, where a repeated trade is harmless (fill ids are unique)."""
        marks = _parse_cursor(cursor)
        fills: list[Fill] = []
        more = False
        for symbol in self._keys:
            trades = self._trades_after(symbol, marks.get(symbol), limit)
            more = more or len(trades) >= limit
            for trade in trades:
                fill = self._fill(symbol, trade)
                fills.append(fill)
                marks[symbol] = {"id": str(trade["id"]), "ms": int(trade["timestamp"])}
        fills.sort(key=lambda f: f.ts)
        return FillPage(tuple(fills), json.dumps(marks, sort_keys=True) if marks else cursor,
                        more)

    def funding_since(self, cursor: str | None, limit: int = 500) -> FundingPage:
        """Spot accounts: no perpetuals, so no funding (the empty page keeps the cursor)."""
        return FundingPage((), cursor)

    def cash(self) -> None:
        """Not compared: an exchange account's quote balance moves with deposits,
        withdrawals, other trading and fees paid in other coins, none of them in a bot's
        ledger (its positions, and the reserved amounts, are compared instead)."""
        return None

    def positions(self) -> list[PositionReport]:
        balance = self._venue.call(lambda ex: ex.fetch_balance())
        totals = balance.get("total") if isinstance(balance, dict) else None
        if not isinstance(totals, dict):
            raise BadBrokerReplyError(f"{self._venue.spec.ccxt_id}: balance without totals")
        reports = []
        for key, inst in self._instruments.items():
            base = inst.symbol.partition("/")[0]
            held = _number(totals.get(base, 0) or 0, f"{base} balance", allow_zero=True,
                           allow_negative=False)
            quantity = held - self._venue.spec.reserved.get(base, ZERO)
            reports.append(PositionReport(key, quantity, ZERO))
        return reports

    # --- MarketData ---------------------------------------------------------------------

    def market_clock(self, market: str) -> MarketClock:
        return MarketClock(market, self._clock.now(), True, None, None)

    def quote(self, instrument: str) -> Quote:
        symbol = self._symbol(instrument)
        ticker = self._venue.call(lambda ex: ex.fetch_ticker(symbol))
        if not isinstance(ticker, dict):
            raise BadBrokerReplyError(f"{symbol}: the ticker is not an object")
        price = _number(ticker.get("last"), f"{symbol} last price")
        stamp = ticker.get("timestamp")
        ts = self._clock.now() if stamp is None else _from_ms(stamp, f"{symbol} ticker time")
        self._last_price[instrument] = price
        return Quote(instrument, self._instruments[instrument].round_price(price), ts)

    def bars(self, instrument: str, interval_s: int, start: datetime, end: datetime
             ) -> list[Bar]:
        symbol = self._symbol(instrument)
        timeframe = TIMEFRAMES.get(interval_s)
        if timeframe is None or timeframe not in (self._venue.exchange.timeframes or {}):
            offered = ", ".join(self._venue.exchange.timeframes or {})
            raise ConfigError(f"{self._venue.spec.ccxt_id} has no {interval_s}s candles; pick "
                              f"a bar_interval it offers ({offered})")
        now = self._clock.now()
        step = timedelta(seconds=interval_s)
        bars: list[Bar] = []
        since = start
        for _ in range(MAX_BAR_PAGES):
            rows = self._venue.call(partial(_candles, symbol, timeframe,
                                            int(since.timestamp() * 1000)))
            page = [_bar(row, symbol) for row in _listed(rows, "candles")]
            fresh = [b for b in page if since <= b.ts < end and b.ts + step <= now]
            bars.extend(fresh)
            # A short page is the venue's newest; a page reaching `end` holds all asked
            # for (one more request would only fetch bars past it, on a rate limit).
            if not fresh or len(page) < 1000 or page[-1].ts + step >= end:
                break
            since = fresh[-1].ts + step
        return bars

    # --- helpers ----------------------------------------------------------------------

    def _symbol(self, instrument: str) -> str:
        try:
            return self._symbols[instrument]
        except KeyError:
            raise OrderRejectedError(f"{instrument} is not an instrument of this bot") from None

    def _candidates(self, client_order_id: str) -> list[str]:
        known = self._where.get(client_order_id)
        return [known] if known else list(self._keys)

    def _check_grid(self, request: OrderRequest) -> None:
        inst = self._instruments[request.instrument]
        if inst.floor_quantity(request.quantity) != request.quantity:
            raise OrderRejectedError(f"quantity {plain(request.quantity)} is not a multiple of "
                                     f"{inst.symbol}'s step {plain(inst.lot_size)}")
        if request.quantity < inst.smallest_quantity:
            raise OrderRejectedError(f"quantity {plain(request.quantity)} is under {inst.symbol}'s "
                                     f"minimum {plain(inst.smallest_quantity)}")
        limit = request.limit_price
        if limit is not None and inst.round_price(limit) != limit:
            raise OrderRejectedError(f"limit {plain(limit)} is not on {inst.symbol}'s tick "
                                     f"{plain(inst.tick_size)}")
        minimum_cost = ((self._venue.market(inst.symbol).get("limits") or {}).get("cost")
                        or {}).get("min")
        price = limit if limit is not None else self._last_price.get(request.instrument)
        if minimum_cost is not None and price is not None:
            notional = request.quantity * price
            if notional < to_decimal(minimum_cost):
                raise OrderRejectedError(f"order value {plain(notional)} is under "
                                         f"{inst.symbol}'s minimum notional {minimum_cost}")

    def _report(self, order: object, expected_client_id: str | None) -> OrderReport:
        if not isinstance(order, dict):
            raise BadBrokerReplyError("the venue answered an order call with a non-object")
        symbol = order.get("symbol")
        if symbol not in self._keys:
            raise BadBrokerReplyError(f"order for unknown symbol {symbol!r}")
        raw = order.get("info")
        info: dict[str, Any] = raw if isinstance(raw, dict) else {}
        # A cancel's answer names the cancel request's own id; the order's is the original.
        client_id = (info.get("origClientOrderId") or order.get("clientOrderId")
                     or expected_client_id)
        if not client_id or (expected_client_id and client_id != expected_client_id):
            raise BadBrokerReplyError(f"order {order.get('id')} came back with client id "
                                      f"{client_id!r}, expected {expected_client_id!r}")
        venue_id = str(order.get("id") or "")
        if not venue_id:
            raise BadBrokerReplyError(f"order {client_id} has no venue id")
        self._client_ids[(symbol, venue_id)] = client_id
        self._where[client_id] = symbol
        quantity = _number(order.get("amount"), f"{client_id} amount")
        filled = _number(order.get("filled") or 0, f"{client_id} filled", allow_zero=True)
        average = order.get("average")
        status = _STATUS.get(str(order.get("status")))
        if status is None:
            raise BadBrokerReplyError(f"order {client_id} has unknown status "
                                      f"{order.get('status')!r}")
        if status is OrderStatus.ACKNOWLEDGED and filled > ZERO:
            status = OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.FILLED and filled < quantity:
            status = OrderStatus.PARTIALLY_FILLED
        kind = OrderType.LIMIT if order.get("type") == "limit" else OrderType.MARKET
        limit = order.get("price") if kind is OrderType.LIMIT else None
        return OrderReport(
            client_order_id=client_id, broker_order_id=venue_id, instrument=self._keys[symbol],
            side=_side(order.get("side"), client_id), order_type=kind, quantity=quantity,
            limit_price=None if limit is None else _number(limit, f"{client_id} price"),
            status=status, filled_quantity=filled,
            average_fill_price=None if not average or filled == ZERO
            else _number(average, f"{client_id} average"),
            reason=str(info.get("msg", "")) if status is OrderStatus.REJECTED else "")

    def _with_fills(self, report: OrderReport, order: dict[str, Any]) -> OrderReport:
        """Fills the venue sent with its answer (Binance: newOrderRespType FULL), under the
        very ids `fills_since` will report later — so the position moves now and the later
        report of the same trade is a no-op. Trades without an id are left for fills_since."""
        trades = order.get("trades")
        if not trades or not isinstance(trades, list) or not all(
                isinstance(t, dict) and t.get("id") is not None for t in trades):
            return report
        symbol = self._symbols[report.instrument]
        stamp = order.get("timestamp")
        at = self._clock.now() if stamp is None else _from_ms(stamp, "order time")
        fills = tuple(self._fill(symbol, {**trade, "order": report.broker_order_id,
                                          "side": trade.get("side") or report.side.value,
                                          "timestamp": trade.get("timestamp") or to_ms(at)})
                      for trade in trades)
        return replace(report, fills=fills)

    def _trades_after(self, symbol: str, mark: dict[str, Any] | None, limit: int
                      ) -> list[dict[str, Any]]:
        by_id = self._venue.spec.ccxt_id.startswith("binance")
        if by_id:
            params = {"fromId": int(mark["id"]) + 1 if mark else 0}
            trades = self._venue.call(lambda ex: ex.fetch_my_trades(symbol, None, limit, params))
        else:
            since = mark["ms"] if mark else None
            trades = self._venue.call(lambda ex: ex.fetch_my_trades(symbol, since, limit))
        listed = sorted(_listed(trades, "trades"), key=lambda t: (t.get("timestamp") or 0,
                                                                  str(t.get("id"))))
        if mark and not by_id:
            listed = [t for t in listed if str(t.get("id")) != mark["id"]]
        return listed

    def _fill(self, symbol: str, trade: dict[str, Any]) -> Fill:
        trade_id = trade.get("id")
        if trade_id is None or trade.get("timestamp") is None:
            raise BadBrokerReplyError(f"{symbol} trade without id or time")
        venue_order = str(trade.get("order") or "")
        client_id = self._client_id(symbol, venue_order)
        quantity = _number(trade.get("amount"), f"trade {trade_id} amount")
        price = _number(trade.get("price"), f"trade {trade_id} price")
        return Fill(broker_fill_id=f"{symbol}:{trade_id}", client_order_id=client_id,
                    instrument=self._keys[symbol], side=_side(trade.get("side"), str(trade_id)),
                    quantity=quantity, price=price, fee=self._fee(symbol, trade, price),
                    ts=_from_ms(trade["timestamp"], f"trade {trade_id} time"))

    def _client_id(self, symbol: str, venue_order: str) -> str:
        known = self._client_ids.get((symbol, venue_order))
        if known is not None:
            return known
        if not venue_order:
            return ""
        order = self._venue.call(lambda ex: ex.fetch_order(venue_order, symbol))
        client_id = str(order.get("clientOrderId") or "") if isinstance(order, dict) else ""
        self._client_ids[(symbol, venue_order)] = client_id
        return client_id

    def _fee(self, symbol: str, trade: dict[str, Any], price: Decimal) -> Decimal:
        fee = trade.get("fee") or {}
        cost = fee.get("cost")
        if not cost:
            return ZERO
        amount = _number(cost, f"trade {trade.get('id')} fee", allow_zero=True)
        base, _, quote = symbol.partition("/")
        currency = fee.get("currency")
        if currency in (None, quote):
            return amount
        if currency == base:
            return amount * price
        logger.warning("fee in %s on %s cannot be valued in %s; recorded as zero",
                       currency, symbol, quote)
        return ZERO


# One ccxt call each, for CcxtVenue.call (which hands in the exchange object).

def _cancel(symbol: str, client_order_id: str, exchange: Any) -> Any:
    return exchange.cancel_order(None, symbol, {"clientOrderId": client_order_id})


def _fetch_by_client_id(symbol: str, client_order_id: str, exchange: Any) -> Any:
    return exchange.fetch_order(None, symbol, {"clientOrderId": client_order_id})


def _open_orders(symbol: str, exchange: Any) -> Any:
    return exchange.fetch_open_orders(symbol)


def _candles(symbol: str, timeframe: str, since_ms: int, exchange: Any) -> Any:
    return exchange.fetch_ohlcv(symbol, timeframe, since_ms, 1000)


def _parse_cursor(cursor: str | None) -> dict[str, dict[str, Any]]:
    if not cursor:
        return {}
    try:
        marks = json.loads(cursor)
    except json.JSONDecodeError:
        raise BadBrokerReplyError(f"fills cursor {cursor[:40]!r} is not this adapter's") from None
    if not isinstance(marks, dict):
        raise BadBrokerReplyError("fills cursor is not a map of symbols")
    return {str(k): dict(v) for k, v in marks.items() if isinstance(v, dict)}


def _listed(value: object, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict | list) for v in value):
        raise BadBrokerReplyError(f"the venue answered with {what} that are not a list")
    return list(value)


def _number(value: object, what: str, *, allow_zero: bool = False,
            allow_negative: bool = False) -> Decimal:
    try:
        number = to_decimal(value, what=what)
    except ValueError as exc:
        raise BadBrokerReplyError(str(exc)) from None
    if (number < ZERO and not allow_negative) or (number == ZERO and not allow_zero):
        raise BadBrokerReplyError(f"{what} must be positive, got {plain(number)}")
    return number


def to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _from_ms(value: object, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadBrokerReplyError(f"{what} is not a time in milliseconds: {value!r}")
    return datetime.fromtimestamp(value / 1000, UTC)


def _side(value: object, what: str) -> Side:
    try:
        return Side(str(value))
    except ValueError:
        raise BadBrokerReplyError(f"{what}: unknown side {value!r}") from None


def _bar(row: object, symbol: str) -> Bar:
    if not isinstance(row, list) or len(row) < 6:
        raise BadBrokerReplyError(f"{symbol}: a candle is not [time, o, h, l, c, v]")
    o, h, lo, c = (float(_number(v, f"{symbol} candle price")) for v in row[1:5])
    volume = float(_number(row[5] or 0, f"{symbol} candle volume", allow_zero=True))
    return Bar(_from_ms(row[0], f"{symbol} candle time"), o, h, lo, c, volume)

