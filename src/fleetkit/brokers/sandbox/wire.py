"""The sandbox's JSON wire format, shared by the service and the client.

Decimals travel as strings (no float ever touches money), datetimes as ISO-8601 in UTC with
an explicit offset. Parsing is strict: a missing field, a wrong type, a non-finite number or
a price that must be positive and is not raises BadBrokerReplyError naming the field, so a
garbled answer is refused before anything acts on it. Unknown extra fields are ignored, so
a newer venue can add fields without breaking older clients.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from fleetkit.core.errors import BadBrokerReplyError
from fleetkit.core.instruments import AssetClass, Instrument
from fleetkit.core.market_data import Bar, MarketClock, Quote
from fleetkit.core.orders import Fill, OrderStatus, OrderType, Side
from fleetkit.engine.ports import (
    FillPage,
    FundingEntry,
    FundingPage,
    OrderReport,
    OrderRequest,
    PositionReport,
)

from .book import Submission, SubmissionCounts

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
JsonObject = dict[str, Any]


# --- encoding ---------------------------------------------------------------------------


def dumps(payload: object) -> bytes:
    return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()


def loads(body: bytes | str, *, what: str = "body") -> object:
    """Parse JSON, refusing the NaN/Infinity tokens Python's json would otherwise accept."""
    def refuse(token: str) -> object:
        raise BadBrokerReplyError(f"{what}: {token} is not a number")

    try:
        return json.loads(body, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:
        raise BadBrokerReplyError(f"{what}: not valid JSON ({exc})") from exc


def decimal_text(value: Decimal) -> str:
    return format(value, "f")


def time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _optional(value: T | None, encode: Callable[[T], str]) -> str | None:
    return None if value is None else encode(value)


def order_request_to_dict(request: OrderRequest) -> JsonObject:
    return {
        "client_order_id": request.client_order_id, "instrument": request.instrument,
        "side": request.side.value, "order_type": request.order_type.value,
        "quantity": decimal_text(request.quantity),
        "limit_price": _optional(request.limit_price, decimal_text),
    }


def fill_to_dict(fill: Fill) -> JsonObject:
    return {
        "broker_fill_id": fill.broker_fill_id, "client_order_id": fill.client_order_id,
        "instrument": fill.instrument, "side": fill.side.value,
        "quantity": decimal_text(fill.quantity), "price": decimal_text(fill.price),
        "fee": decimal_text(fill.fee), "ts": time_text(fill.ts),
    }


def order_report_to_dict(report: OrderReport) -> JsonObject:
    return {
        "client_order_id": report.client_order_id, "broker_order_id": report.broker_order_id,
        "instrument": report.instrument, "side": report.side.value,
        "order_type": report.order_type.value, "quantity": decimal_text(report.quantity),
        "limit_price": _optional(report.limit_price, decimal_text),
        "status": report.status.value, "filled_quantity": decimal_text(report.filled_quantity),
        "average_fill_price": _optional(report.average_fill_price, decimal_text),
        "reason": report.reason, "fills": [fill_to_dict(f) for f in report.fills],
    }


def fill_page_to_dict(page: FillPage) -> JsonObject:
    return {"fills": [fill_to_dict(f) for f in page.fills], "cursor": page.cursor,
            "more": page.more}


def funding_entry_to_dict(entry: FundingEntry) -> JsonObject:
    return {
        "payment_id": entry.payment_id, "instrument": entry.instrument,
        "at": time_text(entry.at), "rate": decimal_text(entry.rate),
        "quantity": decimal_text(entry.quantity), "mark": decimal_text(entry.mark),
        "amount": decimal_text(entry.amount),
    }


def funding_page_to_dict(page: FundingPage) -> JsonObject:
    return {"funding": [funding_entry_to_dict(e) for e in page.entries], "cursor": page.cursor,
            "more": page.more}


def position_to_dict(position: PositionReport) -> JsonObject:
    return {"instrument": position.instrument, "quantity": decimal_text(position.quantity),
            "average_price": decimal_text(position.average_price)}


def bar_to_dict(bar: Bar) -> JsonObject:
    return {"ts": time_text(bar.ts), "open": bar.open, "high": bar.high, "low": bar.low,
            "close": bar.close, "volume": bar.volume}


def quote_to_dict(quote: Quote) -> JsonObject:
    return {"instrument": quote.instrument, "price": decimal_text(quote.price),
            "ts": time_text(quote.ts)}


def market_clock_to_dict(clock: MarketClock) -> JsonObject:
    return {"market": clock.market, "now": time_text(clock.now), "is_open": clock.is_open,
            "next_open": _optional(clock.next_open, time_text),
            "next_close": _optional(clock.next_close, time_text)}


def instrument_to_dict(instrument: Instrument) -> JsonObject:
    return {
        "key": instrument.key, "symbol": instrument.symbol, "market": instrument.market,
        "asset_class": instrument.asset_class.value, "currency": instrument.currency,
        "tick_size": decimal_text(instrument.tick_size),
        "lot_size": decimal_text(instrument.lot_size), "calendar": instrument.calendar,
        "min_quantity": _optional(instrument.min_quantity, decimal_text),
    }


def balances_to_dict(balances: Mapping[str, Decimal]) -> JsonObject:
    return {currency: decimal_text(amount) for currency, amount in sorted(balances.items())}


def submission_to_dict(submission: Submission) -> JsonObject:
    return {"sequence": submission.sequence, "account": submission.account,
            "client_order_id": submission.client_order_id,
            "received_at": time_text(submission.received_at),
            "duplicate": submission.duplicate, "status": submission.status.value}


def submission_counts_to_dict(counts: SubmissionCounts) -> JsonObject:
    return {"submissions": counts.submissions, "duplicates": counts.duplicates,
            "rejected": counts.rejected}


# --- strict parsing ---------------------------------------------------------------------


class Reader:
    """One JSON object being parsed; every complaint names the field's full path."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise BadBrokerReplyError(f"{where}: expected an object, got {_kind(data)}")
        self._data: Mapping[str, object] = data
        self._where = where

    def path(self, name: str) -> str:
        return f"{self._where}.{name}"

    def raw(self, name: str) -> object:
        if name not in self._data:
            raise BadBrokerReplyError(f"{self.path(name)}: missing")
        return self._data[name]

    def field_names(self) -> list[str]:
        return list(self._data)

    def is_null(self, name: str) -> bool:
        return self.raw(name) is None

    def text(self, name: str, *, empty: bool = False) -> str:
        value = self.raw(name)
        if not isinstance(value, str):
            raise BadBrokerReplyError(f"{self.path(name)}: expected a string, got {_kind(value)}")
        if not empty and not value:
            raise BadBrokerReplyError(f"{self.path(name)}: must not be empty")
        return value

    def optional_text(self, name: str) -> str | None:
        return None if self.is_null(name) else self.text(name)

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            raise BadBrokerReplyError(f"{self.path(name)}: expected true or false, "
                                      f"got {_kind(value)}")
        return value

    def decimal(self, name: str, *, minimum: str = "any") -> Decimal:
        """A decimal string; `minimum` is "any", "zero" (not negative) or "positive"."""
        text = self.text(name)
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise BadBrokerReplyError(f"{self.path(name)}: {text!r} is not a number") from None
        if not value.is_finite():
            raise BadBrokerReplyError(f"{self.path(name)}: {text!r} is not a finite number")
        _check_minimum(self.path(name), value, minimum)
        return value

    def optional_decimal(self, name: str, *, minimum: str = "any") -> Decimal | None:
        return None if self.is_null(name) else self.decimal(name, minimum=minimum)

    def number(self, name: str, *, minimum: str = "any") -> float:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadBrokerReplyError(f"{self.path(name)}: expected a number, got {_kind(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise BadBrokerReplyError(f"{self.path(name)}: {value!r} is not a finite number")
        _check_minimum(self.path(name), number, minimum)
        return number

    def integer(self, name: str) -> int:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadBrokerReplyError(f"{self.path(name)}: expected a whole number, "
                                      f"got {_kind(value)}")
        return value

    def time(self, name: str) -> datetime:
        text = self.text(name)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadBrokerReplyError(f"{self.path(name)}: {text!r} is not an ISO-8601 "
                                      "time") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise BadBrokerReplyError(f"{self.path(name)}: {text!r} has no UTC offset")
        return moment.astimezone(UTC)

    def optional_time(self, name: str) -> datetime | None:
        return None if self.is_null(name) else self.time(name)

    def choice(self, name: str, enum: type[E]) -> E:
        text = self.text(name)
        try:
            return enum(text)
        except ValueError:
            known = ", ".join(member.value for member in enum)
            raise BadBrokerReplyError(f"{self.path(name)}: unknown value {text!r} "
                                      f"(expected one of {known})") from None

    def items(self, name: str) -> list[tuple[str, object]]:
        """The elements of a JSON array, each with its path for nested readers."""
        value = self.raw(name)
        if not isinstance(value, list):
            raise BadBrokerReplyError(f"{self.path(name)}: expected a list, got {_kind(value)}")
        return [(f"{self.path(name)}[{i}]", item) for i, item in enumerate(value)]


def _check_minimum(path: str, value: Decimal | float, minimum: str) -> None:
    if minimum == "positive" and not value > 0:
        raise BadBrokerReplyError(f"{path}: must be positive, got {value}")
    if minimum == "zero" and value < 0:
        raise BadBrokerReplyError(f"{path}: must not be negative, got {value}")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def order_request_from_dict(data: object, where: str = "order") -> OrderRequest:
    """Only the shape is checked here: whether the quantity or price is acceptable is the
    venue's decision, which it records as a rejection a later lookup can find."""
    r = Reader(data, where)
    return OrderRequest(r.text("client_order_id"), r.text("instrument"), r.choice("side", Side),
                        r.choice("order_type", OrderType), r.decimal("quantity"),
                        r.optional_decimal("limit_price"))


def fill_from_dict(data: object, where: str = "fill") -> Fill:
    r = Reader(data, where)
    return Fill(r.text("broker_fill_id"), r.text("client_order_id"), r.text("instrument"),
                r.choice("side", Side), r.decimal("quantity", minimum="positive"),
                r.decimal("price", minimum="positive"), r.decimal("fee", minimum="zero"),
                r.time("ts"))


def order_report_from_dict(data: object, where: str = "order") -> OrderReport:
    r = Reader(data, where)
    status = r.choice("status", OrderStatus)
    # A rejected order is reported as it was asked for, which may be why it was rejected.
    asked = "any" if status is OrderStatus.REJECTED else "positive"
    report = OrderReport(
        client_order_id=r.text("client_order_id"), broker_order_id=r.text("broker_order_id"),
        instrument=r.text("instrument"), side=r.choice("side", Side),
        order_type=r.choice("order_type", OrderType),
        quantity=r.decimal("quantity", minimum=asked),
        limit_price=r.optional_decimal("limit_price", minimum=asked), status=status,
        filled_quantity=r.decimal("filled_quantity", minimum="zero"),
        average_fill_price=r.optional_decimal("average_fill_price", minimum="positive"),
        reason=r.text("reason", empty=True),
        fills=tuple(fill_from_dict(item, path) for path, item in r.items("fills")))
    _check_report_consistent(report, where)
    return report


def _check_report_consistent(report: OrderReport, where: str) -> None:
    if report.filled_quantity > max(report.quantity, Decimal(0)):
        raise BadBrokerReplyError(f"{where}.filled_quantity: {report.filled_quantity} exceeds "
                                  f"the order quantity {report.quantity}")
    for i, fill in enumerate(report.fills):
        if fill.client_order_id != report.client_order_id:
            raise BadBrokerReplyError(f"{where}.fills[{i}].client_order_id: "
                                      f"{fill.client_order_id!r} is not this order's")


def fill_page_from_dict(data: object, where: str = "page") -> FillPage:
    r = Reader(data, where)
    return FillPage(tuple(fill_from_dict(item, path) for path, item in r.items("fills")),
                    r.optional_text("cursor"), r.boolean("more"))


def funding_entry_from_dict(data: object, where: str = "funding") -> FundingEntry:
    r = Reader(data, where)
    return FundingEntry(r.text("payment_id"), r.text("instrument"), r.time("at"),
                        r.decimal("rate"), r.decimal("quantity"),
                        r.decimal("mark", minimum="positive"), r.decimal("amount"))


def funding_page_from_dict(data: object, where: str = "page") -> FundingPage:
    r = Reader(data, where)
    return FundingPage(tuple(funding_entry_from_dict(item, path)
                             for path, item in r.items("funding")),
                       r.optional_text("cursor"), r.boolean("more"))


def position_from_dict(data: object, where: str = "position") -> PositionReport:
    r = Reader(data, where)
    return PositionReport(r.text("instrument"), r.decimal("quantity"),
                          r.decimal("average_price", minimum="zero"))


def bar_from_dict(data: object, where: str = "bar") -> Bar:
    r = Reader(data, where)
    bar = Bar(r.time("ts"), r.number("open", minimum="positive"),
              r.number("high", minimum="positive"), r.number("low", minimum="positive"),
              r.number("close", minimum="positive"), r.number("volume", minimum="zero"))
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        raise BadBrokerReplyError(f"{where}: open/close outside low..high ({bar})")
    return bar


def quote_from_dict(data: object, where: str = "quote") -> Quote:
    r = Reader(data, where)
    return Quote(r.text("instrument"), r.decimal("price", minimum="positive"), r.time("ts"))


def market_clock_from_dict(data: object, where: str = "clock") -> MarketClock:
    r = Reader(data, where)
    return MarketClock(r.text("market"), r.time("now"), r.boolean("is_open"),
                       r.optional_time("next_open"), r.optional_time("next_close"))


def instrument_from_dict(data: object, where: str = "instrument") -> Instrument:
    r = Reader(data, where)
    instrument = Instrument(
        symbol=r.text("symbol"), market=r.text("market"),
        asset_class=r.choice("asset_class", AssetClass), currency=r.text("currency"),
        tick_size=r.decimal("tick_size", minimum="positive"),
        lot_size=r.decimal("lot_size", minimum="positive"), calendar=r.text("calendar"),
        min_quantity=r.optional_decimal("min_quantity", minimum="positive"))
    if instrument.key != r.text("key"):
        raise BadBrokerReplyError(f"{where}.key: {r.text('key')!r} does not match "
                                  f"market and symbol ({instrument.key!r})")
    return instrument


def balances_from_dict(data: object, where: str = "balances") -> dict[str, Decimal]:
    r = Reader(data, where)
    return {currency: r.decimal(currency) for currency in r.field_names()}


def submission_from_dict(data: object, where: str = "submission") -> Submission:
    r = Reader(data, where)
    return Submission(r.integer("sequence"), r.text("account"), r.text("client_order_id"),
                      r.time("received_at"), r.boolean("duplicate"),
                      r.choice("status", OrderStatus))


def submission_counts_from_dict(data: object, where: str = "counts") -> SubmissionCounts:
    r = Reader(data, where)
    return SubmissionCounts(r.integer("submissions"), r.integer("duplicates"),
                            r.integer("rejected"))


def list_from(data: object, name: str, parse: Callable[[object, str], T],
              where: str = "body") -> list[T]:
    """Parse `{name: [...]}` with `parse` for each element."""
    return [parse(item, path) for path, item in Reader(data, where).items(name)]
