"""Reconciliation as a pure function: ledger vs broker positions, open orders, average
prices and cash."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.engine.reconcile import (
    Difference,
    DifferenceKind,
    reconcile,
    reconcile_average_prices,
    reconcile_cash,
    reconcile_open_orders,
    reconcile_positions,
)

K = DifferenceKind
PROPERTY = settings(max_examples=200, deadline=None, database=None)
LOTS = {"NYSE:AAPL": Decimal(1), "JPX:7203": Decimal(100), "CRYPTO:BTC/USDT": Decimal("0.00001")}


# --- positions ---------------------------------------------------------------------------


def test_equal_positions_have_no_difference() -> None:
    book = {"NYSE:AAPL": Decimal(10), "JPX:7203": Decimal(-300)}
    assert reconcile_positions(book, dict(book), LOTS) == []


def test_positions_within_a_fraction_of_a_lot_have_no_difference() -> None:
    ledger = {"NYSE:AAPL": Decimal(10), "JPX:7203": Decimal(300)}
    broker = {"NYSE:AAPL": Decimal("10.999"), "JPX:7203": Decimal("299.5")}
    assert reconcile_positions(ledger, broker, LOTS) == []


def test_positions_one_lot_apart_differ() -> None:
    ledger = {"JPX:7203": Decimal(300)}
    broker = {"JPX:7203": Decimal(400)}
    assert reconcile_positions(ledger, broker, LOTS) == [
        Difference(K.POSITION, "JPX:7203", Decimal(300), Decimal(400))]


def test_a_position_only_at_the_broker_differs() -> None:
    assert reconcile_positions({}, {"NYSE:AAPL": Decimal(5)}, LOTS) == [
        Difference(K.POSITION, "NYSE:AAPL", Decimal(0), Decimal(5))]


def test_a_position_only_in_the_ledger_differs() -> None:
    assert reconcile_positions({"NYSE:AAPL": Decimal(-5)}, {}, LOTS) == [
        Difference(K.POSITION, "NYSE:AAPL", Decimal(-5), Decimal(0))]


def test_a_flat_position_on_one_side_and_none_on_the_other_agree() -> None:
    assert reconcile_positions({"NYSE:AAPL": Decimal(0)}, {}, LOTS) == []


def test_an_instrument_without_a_known_lot_differs_on_any_gap() -> None:
    differences = reconcile_positions({"XETRA:SAP": Decimal(10)}, {"XETRA:SAP": Decimal("10.001")},
                                      LOTS)
    assert [d.instrument for d in differences] == ["XETRA:SAP"]


def test_position_differences_come_sorted_by_instrument() -> None:
    ledger = {"NYSE:AAPL": Decimal(1), "JPX:7203": Decimal(100)}
    differences = reconcile_positions(ledger, {}, LOTS)
    assert [d.instrument for d in differences] == ["JPX:7203", "NYSE:AAPL"]


def test_position_difference_describes_both_sides() -> None:
    difference = Difference(K.POSITION, "NYSE:AAPL", Decimal(10), Decimal(12))
    assert difference.describe() == "NYSE:AAPL: ledger holds 10, broker holds 12"


# --- open orders -------------------------------------------------------------------------


def test_the_same_open_orders_on_both_sides_agree() -> None:
    orders = [("bot1-1", "NYSE:AAPL"), ("bot1-2", "JPX:7203")]
    assert reconcile_open_orders(orders, list(reversed(orders))) == []


def test_an_open_order_only_at_the_broker_differs() -> None:
    differences = reconcile_open_orders([], [("bot1-9", "NYSE:AAPL")])
    assert differences == [Difference(K.ORDER_ONLY_AT_BROKER, "NYSE:AAPL",
                                      client_order_id="bot1-9")]
    assert differences[0].describe() == "NYSE:AAPL: open order bot1-9 exists only at the broker"


def test_an_open_order_only_in_the_ledger_differs() -> None:
    differences = reconcile_open_orders([("bot1-3", "JPX:7203")], [])
    assert differences == [Difference(K.ORDER_ONLY_IN_LEDGER, "JPX:7203",
                                      client_order_id="bot1-3")]
    described = differences[0].describe()
    assert described.startswith("JPX:7203: open order bot1-3 exists only")
    assert described.endswith("ledger")


def test_broker_only_orders_are_listed_before_ledger_only_orders_each_sorted() -> None:
    ledger = [("b", "X:1"), ("a", "X:1"), ("shared", "X:1")]
    broker = [("d", "X:2"), ("c", "X:2"), ("shared", "X:1")]
    differences = reconcile_open_orders(ledger, broker)
    assert [(d.kind, d.client_order_id) for d in differences] == [
        (K.ORDER_ONLY_AT_BROKER, "c"), (K.ORDER_ONLY_AT_BROKER, "d"),
        (K.ORDER_ONLY_IN_LEDGER, "a"), (K.ORDER_ONLY_IN_LEDGER, "b")]


def test_reconcile_reports_positions_then_orders() -> None:
    differences = reconcile({"NYSE:AAPL": Decimal(1)}, {}, [], [("x", "NYSE:AAPL")], LOTS)
    assert [d.kind for d in differences] == [K.POSITION, K.ORDER_ONLY_AT_BROKER]


# --- properties --------------------------------------------------------------------------


instruments = st.sampled_from([*LOTS, "XETRA:SAP", "LSE:AZN"])
quantities = st.decimals(min_value=Decimal(-10_000), max_value=Decimal(10_000), places=5)
positions = st.dictionaries(instruments, quantities, max_size=5)
open_orders = st.lists(st.tuples(st.text("abcdef0123456789-", min_size=1, max_size=8),
                                 instruments), max_size=6, unique_by=lambda o: o[0])


@given(positions, open_orders)
@PROPERTY
def test_reconciling_a_book_with_itself_finds_nothing(book: dict[str, Decimal],
                                                      orders: list[tuple[str, str]]) -> None:
    assert reconcile(book, dict(book), orders, list(orders), LOTS) == []


@given(positions, positions)
@PROPERTY
def test_a_position_differs_exactly_when_the_gap_is_at_least_a_lot(
        ledger: dict[str, Decimal], broker: dict[str, Decimal]) -> None:
    flagged = {d.instrument for d in reconcile_positions(ledger, broker, LOTS)}
    for instrument in set(ledger) | set(broker):
        gap = abs(ledger.get(instrument, Decimal(0)) - broker.get(instrument, Decimal(0)))
        lot = LOTS.get(instrument)
        expected = gap > 0 if lot is None else gap >= lot
        assert (instrument in flagged) == expected


@given(open_orders, open_orders)
@PROPERTY
def test_order_differences_are_the_symmetric_difference_of_client_ids(
        ledger: list[tuple[str, str]], broker: list[tuple[str, str]]) -> None:
    differences = reconcile_open_orders(ledger, broker)
    ours, theirs = {cid for cid, _ in ledger}, {cid for cid, _ in broker}
    assert {d.client_order_id for d in differences if d.kind is K.ORDER_ONLY_AT_BROKER} == \
        theirs - ours
    assert {d.client_order_id for d in differences if d.kind is K.ORDER_ONLY_IN_LEDGER} == \
        ours - theirs


# --- beyond quantities: average prices and cash ----------------------------------------


def test_average_prices_within_the_tolerance_have_no_difference() -> None:
    ledger = {"NYSE:AAPL": Decimal("100.00"), "JPX:7203": Decimal(2500)}
    broker = {"NYSE:AAPL": Decimal("100.09"), "JPX:7203": Decimal("2500.0001")}
    assert reconcile_average_prices(ledger, broker, Decimal("0.1")) == []


def test_an_average_price_beyond_the_tolerance_differs() -> None:
    ledger = {"NYSE:AAPL": Decimal(100)}
    broker = {"NYSE:AAPL": Decimal(100000)}
    [difference] = reconcile_average_prices(ledger, broker, Decimal("0.1"))
    assert difference == Difference(K.AVERAGE_PRICE, "NYSE:AAPL", Decimal(100),
                                    Decimal(100000))
    assert difference.describe() == ("NYSE:AAPL: ledger average price 100, broker's 100000")


def test_a_broker_that_reports_no_average_price_is_not_compared() -> None:
    """Spot exchanges report balances, not entry prices (the ccxt adapter gives zero)."""
    assert reconcile_average_prices({"CRYPTO:BTC/USDT": Decimal(30000)},
                                    {"CRYPTO:BTC/USDT": Decimal(0)}, Decimal("0.1")) == []


def test_cash_within_the_tolerance_has_no_difference_and_beyond_it_differs() -> None:
    expected = {"USD": Decimal("998899.80"), "JPY": Decimal(1000)}
    assert reconcile_cash(expected, {"USD": Decimal("998899.30"), "JPY": Decimal(1000)},
                          {"USD": Decimal(1), "JPY": Decimal(150)}) == []
    [difference] = reconcile_cash(expected, {"USD": Decimal("-1.2"), "JPY": Decimal(1000)},
                                  {"USD": Decimal(1), "JPY": Decimal(150)})
    assert difference.kind is K.CASH and difference.instrument == "USD"
    assert difference.describe() == ("USD cash: the ledger's fills imply 998899.80, broker "
                                     "holds -1.2")


def test_cash_of_a_currency_only_one_side_knows_is_not_compared() -> None:
    assert reconcile_cash({"USD": Decimal(5)}, {"EUR": Decimal(7)}, {}) == []
