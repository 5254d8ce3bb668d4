"""A fake Binance spot exchange on loopback that an unmodified ccxt.binance trades against.

    exchange = FakeExchange(
        [FakeMarket("BTCUSDT", "BTC", "USDT")],
        price=FakeExchange.fixed_prices({"BTCUSDT": Decimal("60000")}),
        balances={"USDT": Decimal("10000")})
    with FakeExchangeServer(exchange) as server:
        client = binance_client(server.url, exchange.api_key, exchange.api_secret)
        client.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "a-1"})

It is driven by an injectable clock and price source, so a replayed tape gives the same
fills every time; see `exchange.py` for the matching rules and the commission convention
(quote asset, unlike real Binance). Signed endpoints check Binance's HMAC-SHA256 scheme for
real (API key header, signature, timestamp within recvWindow of the fake's clock).

Faults (`exchange.faults.add(Fault(kind, ...))`) and what ccxt 4.5.90 raises for each:

    error_500 (500/502/503, plain body)  -> ccxt.ExchangeNotAvailable   (NetworkError)
    rate_limit (429, -1003, Retry-After) -> ccxt.DDoSProtection         (NetworkError;
                                            binance raises it for any 429 before reading
                                            the body, so not RateLimitExceeded)
    timeout (reply after delay_s)        -> ccxt.RequestTimeout         (NetworkError)
    ack_lost, status None (conn closed)  -> ccxt.NetworkError           (the order exists!)
    ack_lost, status 503                 -> ccxt.ExchangeNotAvailable   (the order exists!)
    refuse (conn closed, nothing done)   -> ccxt.NetworkError

Binance errors and ccxt's mapping of them (by message first, then code):

    -2010 insufficient balance           -> ccxt.InsufficientFunds
    -2010 "Duplicate order sent."        -> ccxt.InvalidOrder
    -1013 Filter failure: LOT_SIZE       -> ccxt.InvalidOrder
    -1013 Filter failure: PRICE_FILTER   -> ccxt.InvalidOrder
    -1013 Filter failure: NOTIONAL       -> ccxt.BadRequest  (not InvalidOrder: ccxt only
                                            special-cases the LOT_SIZE and PRICE_FILTER text)
    -2013 / -2011 unknown order          -> ccxt.OrderNotFound
    -1121 invalid symbol                 -> ccxt.BadSymbol
    -2015 bad API key (HTTP 401)         -> ccxt.AuthenticationError, but ccxt.DDoSProtection
                                            once the client has made one good private call
    -1022 bad signature                  -> ccxt.AuthenticationError
    -1021 timestamp outside recvWindow   -> ccxt.InvalidNonce        (a NetworkError!)

ccxt picks Binance's spot-specific error table by URL (https://api.binance.com/...); on
loopback it uses the generic table, which agrees with it for every code listed above.

What ccxt 4.5.90 does that an adapter must know (all seen against this fake):
- create_order(params={"clientOrderId": id}) is sent as newClientOrderId (ccxt makes one
  up when absent); spot orders ask newOrderRespType=FULL, so the reply carries the fills.
  POST parameters travel in a form body, GET/DELETE ones in the query string.
- A market order given a price becomes a quoteOrderQty order (amount * price); pass no
  price for market orders. ccxt truncates amount to stepSize and rounds price to tickSize
  itself, but leaves minQty and minNotional to the exchange.
- fetch_order / cancel_order take the client id as params={"clientOrderId": id} (sent as
  origClientOrderId; the id argument is then ignored) and need the symbol. A cancel reply's
  clientOrderId is the cancel's own id; the order's is info["origClientOrderId"].
- fetch_my_trades needs a symbol; since=t becomes startTime, and Binance (and this fake)
  then answers for one day from t only; page with params={"fromId": last_id + 1}; with
  neither it returns the newest `limit` (default 500) trades, ascending by id.
- fetch_open_orders without a symbol raises unless
  options["fetchOpenOrders"]["warnWithoutSymbol"] is False.
- Symbols are unified "BTC/USDT"; Binance ids ("BTCUSDT") appear in `info` and here.
"""

from .client import SPOT_ONLY_OPTIONS, binance_client, ccxt_urls
from .exchange import FakeExchange
from .faults import Fault, FaultKind, FaultPlan
from .model import (
    Balance,
    Bar,
    BarSource,
    BinanceError,
    FakeMarket,
    FakeOrder,
    FakeTrade,
    OrderStatus,
    PriceSource,
    Submission,
)
from .prices import FixedPrices
from .server import FakeExchangeServer

__all__ = [
    "SPOT_ONLY_OPTIONS",
    "Balance",
    "Bar",
    "BarSource",
    "BinanceError",
    "FakeExchange",
    "FakeExchangeServer",
    "FakeMarket",
    "FakeOrder",
    "FakeTrade",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FixedPrices",
    "OrderStatus",
    "PriceSource",
    "Submission",
    "binance_client",
    "ccxt_urls",
]
