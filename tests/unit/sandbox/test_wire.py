"""The sandbox wire format: lossless round trips, and garbage refused with the field named."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetkit.brokers.sandbox import wire
from fleetkit.brokers.sandbox.testing import crypto, equity
from fleetkit.core.errors import BadBrokerReplyError
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

D = Decimal
TS = datetime(2024, 1, 3, 15, 0, 1, 250_000, tzinfo=UTC)
FILL = Fill("7", "bot-1:NYSE:AAA/42", "NYSE:AAA", Side.BUY, D(6), D("100.02"), D("0.060012"), TS)
REPORT = OrderReport("bot-1:NYSE:AAA/42", "SBX-3", "NYSE:AAA", Side.BUY, OrderType.LIMIT, D(10),
                     D("101.00"), OrderStatus.PARTIALLY_FILLED, D(6), D("100.02"), "", (FILL,))


def through_json(payload: dict[str, Any]) -> object:
    return wire.loads(wire.dumps(payload))


ROUND_TRIPS = [
    pytest.param(OrderRequest("c:1/2", "CRYPTO:BTC/USDT", Side.SELL, OrderType.MARKET,
                              D("0.0001")), wire.order_request_to_dict,
                 wire.order_request_from_dict, id="request"),
    pytest.param(FILL, wire.fill_to_dict, wire.fill_from_dict, id="fill"),
    pytest.param(REPORT, wire.order_report_to_dict, wire.order_report_from_dict, id="report"),
    pytest.param(FillPage((FILL, FILL), "7", True), wire.fill_page_to_dict,
                 wire.fill_page_from_dict, id="page"),
    pytest.param(FillPage((), None), wire.fill_page_to_dict, wire.fill_page_from_dict,
                 id="empty-page"),
    pytest.param(FundingPage((FundingEntry("12", "CRYPTO:BTC/USDT:USDT", TS, D("-0.00025053"),
                                           D("-0.5"), D("30006.01"), D("-3.75875884")),),
                             "12", True),
                 wire.funding_page_to_dict, wire.funding_page_from_dict, id="funding-page"),
    pytest.param(FundingPage((), None), wire.funding_page_to_dict, wire.funding_page_from_dict,
                 id="empty-funding-page"),
    pytest.param(PositionReport("NYSE:AAA", D(-5), D("99.98")), wire.position_to_dict,
                 wire.position_from_dict, id="position"),
    pytest.param(Bar(TS, 1.5, 2.0, 1.25, 1.75, 0.0), wire.bar_to_dict, wire.bar_from_dict,
                 id="bar"),
    pytest.param(Quote("JPX:CCC", D(2500), TS), wire.quote_to_dict, wire.quote_from_dict,
                 id="quote"),
    pytest.param(MarketClock("NYSE", TS, True, None, TS + timedelta(hours=6)),
                 wire.market_clock_to_dict, wire.market_clock_from_dict, id="clock"),
    pytest.param(equity("NYSE", "BBB", "USD", "XNYS", min_quantity="10"),
                 wire.instrument_to_dict, wire.instrument_from_dict, id="instrument"),
    pytest.param(crypto("BTC/USDT"), wire.instrument_to_dict, wire.instrument_from_dict,
                 id="crypto-instrument"),
]


@pytest.mark.parametrize(("value", "encode", "decode"), ROUND_TRIPS)
def test_every_wire_type_survives_a_round_trip_through_json(value: Any, encode: Any,
                                                            decode: Any) -> None:
    assert decode(through_json(encode(value))) == value


def test_decimals_travel_as_plain_strings_and_times_with_a_utc_offset() -> None:
    data = wire.fill_to_dict(Fill("1", "c", "NYSE:AAA", Side.BUY, D("1E+1"), D("100.020"),
                                  D(0), TS.astimezone(timezone(timedelta(hours=9)))))

    assert (data["quantity"], data["price"], data["fee"]) == ("10", "100.020", "0")
    assert data["ts"] == "2024-01-03T15:00:01.250000+00:00"


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_finite_decimal_round_trips_exactly(value: Decimal) -> None:
    request = OrderRequest("c", "NYSE:AAA", Side.BUY, OrderType.MARKET, value)

    parsed = wire.order_request_from_dict(through_json(wire.order_request_to_dict(request)))

    assert parsed.quantity == value


def test_balances_round_trip() -> None:
    balances = {"USD": D("999.5"), "JPY": D(150_000_000)}

    assert wire.balances_from_dict(through_json(wire.balances_to_dict(balances))) == balances


def report_with(**changes: Any) -> dict[str, Any]:
    return {**wire.order_report_to_dict(REPORT), **changes}


def fill_with(**changes: Any) -> dict[str, Any]:
    return {**wire.fill_to_dict(FILL), **changes}


GARBAGE = [
    pytest.param({k: v for k, v in report_with().items() if k != "status"}, "order.status: missing",
                 id="missing-field"),
    pytest.param(report_with(quantity=10), "order.quantity: expected a string, got int",
                 id="number-for-decimal"),
    pytest.param(report_with(quantity="NaN"), "order.quantity: 'NaN' is not a finite",
                 id="nan"),
    pytest.param(report_with(quantity="Infinity"), "not a finite", id="infinity"),
    pytest.param(report_with(quantity="ten"), "'ten' is not a number", id="not-a-number"),
    pytest.param(report_with(quantity="0"), "order.quantity: must be positive", id="zero-qty"),
    pytest.param(report_with(limit_price="-1"), "order.limit_price: must be positive",
                 id="negative-limit"),
    pytest.param(report_with(status="done"), "order.status: unknown value 'done'",
                 id="unknown-status"),
    pytest.param(report_with(side="hold"), "order.side: unknown value 'hold'", id="unknown-side"),
    pytest.param(report_with(filled_quantity="-1"), "filled_quantity: must not be negative",
                 id="negative-filled"),
    pytest.param(report_with(filled_quantity="11"), "exceeds the order quantity",
                 id="overfilled"),
    pytest.param(report_with(average_fill_price="0"), "average_fill_price: must be positive",
                 id="zero-average"),
    pytest.param(report_with(fills={}), "order.fills: expected a list", id="fills-not-list"),
    pytest.param(report_with(fills=[fill_with(price="0")]), r"order.fills\[0\].price: must be",
                 id="fill-zero-price"),
    pytest.param(report_with(fills=[fill_with(fee="-0.01")]), r"fills\[0\].fee: must not be",
                 id="fill-negative-fee"),
    pytest.param(report_with(fills=[fill_with(ts="2024-01-03T15:00:00")]), "no UTC offset",
                 id="naive-time"),
    pytest.param(report_with(fills=[fill_with(ts="yesterday")]), "not an ISO-8601 time",
                 id="bad-time"),
    pytest.param(report_with(fills=[fill_with(client_order_id="other")]), "not this order's",
                 id="someone-elses-fill"),
    pytest.param(report_with(client_order_id=""), "client_order_id: must not be empty",
                 id="empty-id"),
    pytest.param(report_with(reason=None), "order.reason: expected a string, got null",
                 id="null-reason"),
    pytest.param([1, 2], "order: expected an object, got list", id="not-an-object"),
]


@pytest.mark.parametrize(("data", "message"), GARBAGE)
def test_a_garbled_order_report_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(BadBrokerReplyError, match=message):
        wire.order_report_from_dict(data)


def test_a_rejected_order_is_reported_with_the_quantity_it_was_asked_for() -> None:
    data = report_with(status="rejected", quantity="-3", limit_price="0", filled_quantity="0",
                       average_fill_price=None, fills=[], reason="quantity -3 is not ...")

    assert wire.order_report_from_dict(data).quantity == D(-3)


@pytest.mark.parametrize(("data", "message"), [
    ({"ts": TS.isoformat(), "open": 1, "high": 0.5, "low": 0.4, "close": 1, "volume": 1},
     "outside low..high"),
    ({"ts": TS.isoformat(), "open": True, "high": 1, "low": 1, "close": 1, "volume": 1},
     "bar.open: expected a number, got bool"),
    ({"ts": TS.isoformat(), "open": 1, "high": 1, "low": 1, "close": 1, "volume": -1},
     "bar.volume: must not be negative"),
    ({"ts": TS.isoformat(), "open": 0, "high": 1, "low": 1, "close": 1, "volume": 1},
     "bar.open: must be positive"),
])
def test_a_garbled_bar_is_refused(data: object, message: str) -> None:
    with pytest.raises(BadBrokerReplyError, match=message):
        wire.bar_from_dict(data)


def test_nan_tokens_and_broken_json_are_refused() -> None:
    with pytest.raises(BadBrokerReplyError, match="NaN is not a number"):
        wire.loads(b'{"open": NaN}')
    with pytest.raises(BadBrokerReplyError, match="not valid JSON"):
        wire.loads(b'{"open": ')
    with pytest.raises(BadBrokerReplyError, match="not valid JSON"):
        wire.loads(b"\xff\xfe")


def test_an_instrument_whose_key_disagrees_with_its_parts_is_refused() -> None:
    data = {**wire.instrument_to_dict(crypto("BTC/USDT")), "key": "CRYPTO:ETH/USDT"}

    with pytest.raises(BadBrokerReplyError, match=r"instrument\.key"):
        wire.instrument_from_dict(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

PARSERS = [wire.order_report_from_dict, wire.fill_page_from_dict, wire.fill_from_dict,
           wire.position_from_dict, wire.bar_from_dict, wire.quote_from_dict,
           wire.market_clock_from_dict, wire.instrument_from_dict, wire.order_request_from_dict,
           wire.balances_from_dict, wire.funding_page_from_dict]


@given(st.sampled_from(PARSERS), json_values)
def test_parsing_arbitrary_json_only_ever_raises_bad_broker_reply(parse: Any,
                                                                   data: object) -> None:
    with contextlib.suppress(BadBrokerReplyError):
        parse(data)


@given(st.sampled_from(sorted(wire.order_report_to_dict(REPORT))), json_values)
def test_a_report_with_one_field_replaced_by_garbage_parses_or_is_refused(
        name: str, value: object) -> None:
    data = json.loads(json.dumps(report_with(**{name: value})))
    try:
        report = wire.order_report_from_dict(data)
    except BadBrokerReplyError as exc:
        assert f"order.{name}" in str(exc) or "order.fills" in str(exc) or "order:" in str(exc)
    else:
        assert report.quantity > 0 and report.filled_quantity >= 0
