"""The JSON shapes Binance's spot REST API answers with, built from the fake's state.

Field names, string-encoded decimals and millisecond times follow Binance's documented
replies closely enough that ccxt's parsers find everything they read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from .model import Balance, FakeMarket, FakeOrder, FakeTrade, fmt, to_ms

Json = dict[str, Any]
ORDER_TYPES = ["LIMIT", "MARKET"]  # ccxt refuses other types before sending, as it should
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def market_json(market: FakeMarket) -> Json:
    """One entry of exchangeInfo's `symbols`."""
    return {
        "symbol": market.symbol, "status": "TRADING",
        "baseAsset": market.base, "baseAssetPrecision": 8,
        "quoteAsset": market.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES, "icebergAllowed": False, "ocoAllowed": False,
        "otoAllowed": False, "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False,
        "cancelReplaceAllowed": False, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False, "filters": _filters(market),
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
    }


def _filters(market: FakeMarket) -> list[Json]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": fmt(market.tick_size),
         "maxPrice": fmt(market.max_price), "tickSize": fmt(market.tick_size)},
        {"filterType": "LOT_SIZE", "minQty": fmt(market.min_qty),
         "maxQty": fmt(market.max_qty), "stepSize": fmt(market.step_size)},
        {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(Decimal(0)),
         "maxQty": fmt(market.max_qty), "stepSize": fmt(Decimal(0))},
        {"filterType": "NOTIONAL", "minNotional": fmt(market.min_notional),
         "applyMinToMarket": True, "maxNotional": fmt(market.max_notional),
         "applyMaxToMarket": False, "avgPriceMins": 5},
    ]


def exchange_info_json(markets: Sequence[FakeMarket], now: datetime) -> Json:
    return {"timezone": "UTC", "serverTime": to_ms(now), "rateLimits": RATE_LIMITS,
            "exchangeFilters": [], "symbols": [market_json(m) for m in markets]}


def order_json(order: FakeOrder) -> Json:
    """An order as GET /api/v3/order and /openOrders describe it."""
    return {
        "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
        "clientOrderId": order.client_order_id, "price": fmt(order.price),
        "origQty": fmt(order.orig_qty), "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cummulative_quote_qty),
        "status": order.status.value, "timeInForce": order.time_in_force or "GTC",
        "type": order.type, "side": order.side, "stopPrice": fmt(Decimal(0)),
        "icebergQty": fmt(Decimal(0)), "time": to_ms(order.time),
        "updateTime": to_ms(order.update_time), "isWorking": True,
        "workingTime": to_ms(order.time), "origQuoteOrderQty": fmt(Decimal(0)),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def new_order_json(order: FakeOrder, fills: Sequence[FakeTrade], response_type: str) -> Json:
    """The reply to POST /api/v3/order in the shape `newOrderRespType` asks for."""
    ack: Json = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
                 "clientOrderId": order.client_order_id, "transactTime": to_ms(order.time)}
    if response_type == "ACK":
        return ack
    full = order_json(order)
    for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
        del full[key]
    result = {**ack, **full}
    if response_type == "FULL":
        result["fills"] = [_fill_json(t) for t in fills]
    return result


def canceled_order_json(order: FakeOrder, cancel_client_id: str, now: datetime) -> Json:
    """The reply to DELETE /api/v3/order: the order, plus the id of the cancel request."""
    body = order_json(order)
    for key in ("time", "updateTime", "isWorking", "workingTime", "stopPrice", "icebergQty",
                "origQuoteOrderQty"):
        del body[key]
    return {**body, "origClientOrderId": order.client_order_id,
            "clientOrderId": cancel_client_id, "transactTime": to_ms(now)}


def _fill_json(trade: FakeTrade) -> Json:
    return {"price": fmt(trade.price), "qty": fmt(trade.qty),
            "commission": fmt(trade.commission), "commissionAsset": trade.commission_asset,
            "tradeId": trade.trade_id}


def trade_json(trade: FakeTrade) -> Json:
    """One entry of GET /api/v3/myTrades."""
    return {
        "symbol": trade.symbol, "id": trade.trade_id, "orderId": trade.order_id,
        "orderListId": -1, "price": fmt(trade.price), "qty": fmt(trade.qty),
        "quoteQty": fmt(trade.quote_qty), "commission": fmt(trade.commission),
        "commissionAsset": trade.commission_asset, "time": to_ms(trade.time),
        "isBuyer": trade.is_buyer, "isMaker": trade.is_maker, "isBestMatch": True,
    }


def account_json(balances: Mapping[str, Balance], commission_rate: Decimal,
                 now: datetime) -> Json:
    """GET /api/v3/account: every balance, zeros included (as without omitZeroBalances)."""
    bps = int(commission_rate * 10000)
    rate = fmt(commission_rate)
    return {
        "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": rate, "taker": rate, "buyer": fmt(Decimal(0)),
                            "seller": fmt(Decimal(0))},
        "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False,
        "updateTime": to_ms(now), "accountType": "SPOT",
        "balances": [{"asset": asset, "free": fmt(b.free), "locked": fmt(b.locked)}
                     for asset, b in balances.items()],
        "permissions": ["SPOT"], "uid": 1,
    }


def book_json(market: FakeMarket, last: Decimal, levels: int, now: datetime) -> Json:
    """A tiny order book: `levels` one-tick steps either side of the last price, 1 unit each.
    For show only: orders here fill at the last price, not against this book."""
    bids = [[fmt(last - market.tick_size * i), fmt(Decimal(1))] for i in range(1, levels + 1)]
    asks = [[fmt(last + market.tick_size * i), fmt(Decimal(1))] for i in range(1, levels + 1)]
    return {"lastUpdateId": to_ms(now), "bids": bids, "asks": asks}


def book_ticker_json(market: FakeMarket, last: Decimal) -> Json:
    one = fmt(Decimal(1))
    return {"symbol": market.symbol, "bidPrice": fmt(last - market.tick_size), "bidQty": one,
            "askPrice": fmt(last + market.tick_size), "askQty": one}


def ticker_24hr_json(market: FakeMarket, last: Decimal, now: datetime) -> Json:
    """24-hour statistics are not modelled: open, high and low equal the last price and
    volume is zero, so the ticker never asks the price source about times it may not have."""
    zero = fmt(Decimal(0))
    close_ms = to_ms(now)
    return {
        **book_ticker_json(market, last), "priceChange": zero, "priceChangePercent": "0.000",
        "weightedAvgPrice": fmt(last), "prevClosePrice": fmt(last), "lastPrice": fmt(last),
        "lastQty": zero, "openPrice": fmt(last), "highPrice": fmt(last), "lowPrice": fmt(last),
        "volume": zero, "quoteVolume": zero, "openTime": close_ms - 86_400_000,
        "closeTime": close_ms, "firstId": -1, "lastId": -1, "count": 0,
    }
