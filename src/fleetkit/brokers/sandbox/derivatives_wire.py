"""Option chains and quotes, and index futures, on the sandbox's wire, shaped like Kite's
quote API.

Field names follow Kite (`last_price`, `volume`, `oi`, `depth.buy[0].price`, `timestamp`,
`tradingsymbol`, `instrument_type`), so an adapter for a real Indian broker maps one to
one; prices keep the house rule of decimal strings. The sandbox adds what Kite leaves to
the client: `underlying_price` and `implied_volatility` (null where no volatility explains
the mid). Parsing is as strict as wire.py: a missing field or a crossed, zero or negative
price is refused naming the field, never passed on as a quote.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fleetkit.core.errors import BadBrokerReplyError
from fleetkit.core.futures import FundingPayment, FutureQuote, FuturesCurve, PerpetualQuote
from fleetkit.core.option_chains import ChainQuote, ChainRow, OptionChain
from fleetkit.core.options import OptionKind

from .wire import JsonObject, Reader, decimal_text, time_text


def option_quote_to_dict(quote: ChainQuote) -> JsonObject:
    exchange, _, symbol = quote.instrument.partition(":")
    # Kite's depth has five levels with quantity and order counts; the sandbox invents one.
    level_quantity = max(quote.open_interest // 1000 // quote.lot_size, 1) * quote.lot_size
    return {
        "instrument": quote.instrument, "tradingsymbol": symbol, "exchange": exchange,
        "name": quote.underlying, "instrument_type": quote.kind.value,
        "strike": decimal_text(quote.strike), "expiry": quote.expiry.isoformat(),
        "lot_size": quote.lot_size, "timestamp": time_text(quote.ts),
        "last_price": decimal_text(quote.last), "volume": quote.volume,
        "oi": quote.open_interest,
        "depth": {"buy": [{"price": decimal_text(quote.bid), "quantity": level_quantity,
                           "orders": 1}],
                  "sell": [{"price": decimal_text(quote.ask), "quantity": level_quantity,
                            "orders": 1}]},
        "underlying_price": decimal_text(quote.underlying_price),
        "implied_volatility": quote.implied_volatility,
    }


def option_quote_from_dict(data: object, where: str = "quote") -> ChainQuote:
    r = Reader(data, where)
    instrument = r.text("instrument")
    bid = _best(Reader(r.raw("depth"), r.path("depth")), "buy")
    ask = _best(Reader(r.raw("depth"), r.path("depth")), "sell")
    if bid > ask:
        raise BadBrokerReplyError(f"{where}: crossed quote for {instrument}: bid {bid} > ask {ask}")
    volume, oi, lot_size = r.integer("volume"), r.integer("oi"), r.integer("lot_size")
    if volume < 0 or oi < 0 or lot_size <= 0:
        raise BadBrokerReplyError(f"{where}: volume and oi must not be negative, lot_size "
                                  f"must be positive (got {volume}, {oi}, {lot_size})")
    iv = None if r.is_null("implied_volatility") else r.number("implied_volatility",
                                                               minimum="positive")
    return ChainQuote(
        instrument=instrument, underlying=r.text("name"), expiry=_date(r, "expiry"),
        strike=r.decimal("strike", minimum="positive"),
        kind=r.choice("instrument_type", OptionKind), bid=bid, ask=ask,
        last=r.decimal("last_price", minimum="positive"), volume=volume, open_interest=oi,
        underlying_price=r.decimal("underlying_price", minimum="positive"),
        implied_volatility=iv, lot_size=lot_size, ts=r.time("timestamp"))


def chain_to_dict(chain: OptionChain) -> JsonObject:
    return {
        "underlying": chain.underlying, "spot_instrument": chain.spot_instrument,
        "spot": decimal_text(chain.spot), "expiry": chain.expiry.isoformat(),
        "expiries": [d.isoformat() for d in chain.expiries],
        "atm_strike": decimal_text(chain.atm_strike),
        "strike_step": decimal_text(chain.strike_step), "lot_size": chain.lot_size,
        "timestamp": time_text(chain.ts),
        "rows": [{"strike": decimal_text(row.strike), "call": option_quote_to_dict(row.call),
                  "put": option_quote_to_dict(row.put)} for row in chain.rows],
    }


def chain_from_dict(data: object, where: str = "chain") -> OptionChain:
    r = Reader(data, where)
    rows = []
    for path, item in r.items("rows"):
        row = Reader(item, path)
        rows.append(ChainRow(row.decimal("strike", minimum="positive"),
                             option_quote_from_dict(row.raw("call"), row.path("call")),
                             option_quote_from_dict(row.raw("put"), row.path("put"))))
    expiries = []
    for path, item in r.items("expiries"):
        if not isinstance(item, str):
            raise BadBrokerReplyError(f"{path}: expected a date string")
        expiries.append(_parse_date(item, path))
    return OptionChain(
        underlying=r.text("underlying"), spot_instrument=r.text("spot_instrument"),
        spot=r.decimal("spot", minimum="positive"), expiry=_date(r, "expiry"),
        expiries=tuple(expiries), atm_strike=r.decimal("atm_strike", minimum="positive"),
        strike_step=r.decimal("strike_step", minimum="positive"), lot_size=r.integer("lot_size"),
        ts=r.time("timestamp"), rows=tuple(rows))


def future_quote_to_dict(quote: FutureQuote) -> JsonObject:
    exchange, _, symbol = quote.instrument.partition(":")
    level_quantity = max(quote.open_interest // 1000 // quote.lot_size, 1) * quote.lot_size
    return {
        "instrument": quote.instrument, "tradingsymbol": symbol, "exchange": exchange,
        "name": quote.underlying, "instrument_type": "FUT",
        "expiry": quote.expiry.isoformat(), "lot_size": quote.lot_size,
        "timestamp": time_text(quote.ts), "last_price": decimal_text(quote.last),
        "volume": quote.volume, "oi": quote.open_interest,
        "depth": {"buy": [{"price": decimal_text(quote.bid), "quantity": level_quantity,
                           "orders": 1}],
                  "sell": [{"price": decimal_text(quote.ask), "quantity": level_quantity,
                            "orders": 1}]},
        "underlying_price": decimal_text(quote.underlying_price),
    }


def future_quote_from_dict(data: object, where: str = "future") -> FutureQuote:
    r = Reader(data, where)
    instrument = r.text("instrument")
    depth = Reader(r.raw("depth"), r.path("depth"))
    bid, ask = _best(depth, "buy"), _best(depth, "sell")
    if bid > ask:
        raise BadBrokerReplyError(f"{where}: crossed quote for {instrument}: bid {bid} > ask {ask}")
    if r.text("instrument_type") != "FUT":
        raise BadBrokerReplyError(f"{r.path('instrument_type')}: expected FUT")
    volume, oi, lot_size = r.integer("volume"), r.integer("oi"), r.integer("lot_size")
    if volume < 0 or oi < 0 or lot_size <= 0:
        raise BadBrokerReplyError(f"{where}: volume and oi must not be negative, lot_size "
                                  f"must be positive (got {volume}, {oi}, {lot_size})")
    return FutureQuote(instrument, r.text("name"), _date(r, "expiry"), bid, ask,
                       r.decimal("last_price", minimum="positive"), volume, oi,
                       r.decimal("underlying_price", minimum="positive"), lot_size,
                       r.time("timestamp"))


def futures_to_dict(curve: FuturesCurve) -> JsonObject:
    return {"underlying": curve.underlying, "spot_instrument": curve.spot_instrument,
            "spot": decimal_text(curve.spot), "front": curve.front,
            "roll_at": time_text(curve.roll_at), "timestamp": time_text(curve.ts),
            "futures": [future_quote_to_dict(q) for q in curve.futures]}


def futures_from_dict(data: object, where: str = "futures") -> FuturesCurve:
    r = Reader(data, where)
    quotes = tuple(future_quote_from_dict(item, path) for path, item in r.items("futures"))
    front = r.text("front")
    if front not in {q.instrument for q in quotes}:
        raise BadBrokerReplyError(f"{r.path('front')}: {front!r} is not among the futures")
    return FuturesCurve(r.text("underlying"), r.text("spot_instrument"),
                        r.decimal("spot", minimum="positive"), front, r.time("roll_at"),
                        r.time("timestamp"), quotes)


def funding_to_dict(payment: FundingPayment) -> JsonObject:
    return {"at": time_text(payment.at), "rate": decimal_text(payment.rate)}


def funding_from_dict(data: object, where: str = "funding") -> FundingPayment:
    r = Reader(data, where)
    return FundingPayment(r.time("at"), r.decimal("rate"))


def perpetual_to_dict(quote: PerpetualQuote) -> JsonObject:
    return {"instrument": quote.instrument, "index_instrument": quote.index_instrument,
            "index_price": decimal_text(quote.index_price),
            "mark_price": decimal_text(quote.mark_price),
            "depth": {"buy": [{"price": decimal_text(quote.bid)}],
                      "sell": [{"price": decimal_text(quote.ask)}]},
            "last_funding": funding_to_dict(quote.last_funding),
            "predicted_funding_rate": decimal_text(quote.predicted_funding_rate),
            "next_funding_time": time_text(quote.next_funding_at),
            "funding_interval_s": quote.funding_interval_s, "timestamp": time_text(quote.ts)}


def perpetual_from_dict(data: object, where: str = "perpetual") -> PerpetualQuote:
    r = Reader(data, where)
    depth = Reader(r.raw("depth"), r.path("depth"))
    bid, ask = _best(depth, "buy"), _best(depth, "sell")
    if bid > ask:
        raise BadBrokerReplyError(f"{where}: crossed quote: bid {bid} > ask {ask}")
    interval = r.integer("funding_interval_s")
    if interval <= 0:
        raise BadBrokerReplyError(f"{r.path('funding_interval_s')}: must be positive")
    return PerpetualQuote(
        r.text("instrument"), r.text("index_instrument"),
        r.decimal("index_price", minimum="positive"), r.decimal("mark_price", minimum="positive"),
        bid, ask, funding_from_dict(r.raw("last_funding"), r.path("last_funding")),
        r.decimal("predicted_funding_rate"), r.time("next_funding_time"), interval,
        r.time("timestamp"))


def quotes_to_dict(quotes: list[ChainQuote]) -> JsonObject:
    """Kite answers a map keyed by instrument; so does the sandbox."""
    return {"data": {quote.instrument: option_quote_to_dict(quote) for quote in quotes}}


def quotes_from_dict(data: object, where: str = "quotes") -> dict[str, ChainQuote]:
    r = Reader(Reader(data, where).raw("data"), f"{where}.data")
    found = {}
    for key in r.field_names():
        quote = option_quote_from_dict(r.raw(key), r.path(key))
        if quote.instrument != key:
            raise BadBrokerReplyError(f"{r.path(key)}: keyed {key!r} but quotes "
                                      f"{quote.instrument!r}")
        found[key] = quote
    return found


def _best(depth: Reader, side: str) -> Decimal:
    levels = depth.items(side)
    if not levels:
        raise BadBrokerReplyError(f"{depth.path(side)}: no price on this side")
    path, level = levels[0]
    return Reader(level, path).decimal("price", minimum="positive")


def _date(r: Reader, name: str) -> date:
    return _parse_date(r.text(name), r.path(name))


def _parse_date(text: str, path: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadBrokerReplyError(f"{path}: {text!r} is not a date (YYYY-MM-DD)") from None
