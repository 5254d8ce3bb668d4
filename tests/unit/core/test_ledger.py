"""Ledger math: positions and P&L from fills (average cost), and the fill/order bookkeeping.

The reference P&L is cash-flow accounting, which needs no average price at all:
    net P&L at a mark = sum(-signed_qty * price) + position_qty * mark - sum(fees)
Average-cost accounting splits that same number into realized + unrealized, so the two must
agree. The average price is a Decimal quotient, rounded at the context's 28 significant
digits when it does not divide evenly (buy 1 @ 1 then 2 @ 2 averages 5/3); streams that never
add to an open position involve no such rounding and must agree exactly. Streams that do add
agree to far below any currency's smallest unit, which is asserted explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.ledger import (
    PnlTotals,
    Position,
    apply_fill,
    cash_flow,
    cash_flows,
    day_start_value,
    fill_refusal,
    order_after_fill,
    pnl_totals,
    position_from_fills,
    positions_from_fills,
    status_from_report,
)
from fleetkit.core.orders import Fill, Order, OrderStatus, OrderType, Side

S = OrderStatus
PROPERTY = settings(max_examples=150, deadline=None, database=None)
INSTRUMENT = "NYSE:AAPL"
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
# Inputs carry at most 6 decimal places of money (4 dp quantity x 2 dp price; 4 dp fees);
# average-price rounding errors are ~1e-20 at these magnitudes.
ROUNDING_BOUND = Decimal("1e-12")


@dataclass(frozen=True)
class Trade:
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal


quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal(10), places=4)
trades = st.builds(Trade, st.sampled_from(Side), quantities, prices, fees)
trade_streams = st.lists(trades, min_size=1, max_size=25)
marks = prices


def fill(side: Side, quantity: str | Decimal, price: str | Decimal, fee: str | Decimal = "0",
         *, instrument: str = INSTRUMENT, fill_id: str = "f1",
         client_order_id: str = "bot7-0001") -> Fill:
    return Fill(fill_id, client_order_id, instrument, side, Decimal(quantity), Decimal(price),
                Decimal(fee), T0)


def fills_of(stream: list[Trade]) -> list[Fill]:
    return [fill(t.side, t.quantity, t.price, t.fee, fill_id=f"f{i}")
            for i, t in enumerate(stream)]


def no_pyramiding(stream: list[Trade]) -> list[Fill]:
    """The stream with every fill that would add to an open position turned around, so each
    fill opens from flat, reduces, closes or flips: the average price is always a fill price."""
    position = Decimal(0)
    out = []
    for i, t in enumerate(stream):
        side = t.side if position == 0 else (Side.SELL if position > 0 else Side.BUY)
        out.append(fill(side, t.quantity, t.price, t.fee, fill_id=f"f{i}"))
        position += out[-1].signed_quantity
    return out


def reference_net_pnl(fills: list[Fill], mark: Decimal) -> Decimal:
    cash = sum((-f.signed_quantity * f.price for f in fills), Decimal(0))
    quantity = sum((f.signed_quantity for f in fills), Decimal(0))
    return cash + quantity * mark - sum((f.fee for f in fills), Decimal(0))


def ledger_net_pnl(position: Position, mark: Decimal) -> Decimal:
    return position.realized_pnl + position.unrealized_pnl(mark) - position.fees


def make_order(status: OrderStatus = S.ACKNOWLEDGED, quantity: str = "10", filled: str = "0",
               average: str | None = None, side: Side = Side.BUY) -> Order:
    return Order(
        id=1, bot_id=7, client_order_id="bot7-0001", instrument=INSTRUMENT, side=side,
        order_type=OrderType.MARKET, quantity=Decimal(quantity), limit_price=None,
        status=status, filled_quantity=Decimal(filled),
        average_fill_price=None if average is None else Decimal(average),
        broker_order_id="B1", created_at=T0, updated_at=T0,
    )


# --- properties of positions and P&L -----------------------------------------------------


@given(trade_streams)
@PROPERTY
def test_position_quantity_is_the_signed_sum_of_fills(stream: list[Trade]) -> None:
    fills = fills_of(stream)
    position = position_from_fills(INSTRUMENT, fills)
    assert position.quantity == sum((f.signed_quantity for f in fills), Decimal(0))


@given(trade_streams)
@PROPERTY
def test_fees_accumulate_exactly(stream: list[Trade]) -> None:
    fills = fills_of(stream)
    assert position_from_fills(INSTRUMENT, fills).fees == sum((f.fee for f in fills),
                                                              Decimal(0))


@given(trade_streams, marks)
@PROPERTY
def test_net_pnl_equals_cash_flow_exactly_when_no_fill_adds_to_a_position(
        stream: list[Trade], mark: Decimal) -> None:
    fills = no_pyramiding(stream)
    position = position_from_fills(INSTRUMENT, fills)
    assert ledger_net_pnl(position, mark) == reference_net_pnl(fills, mark)
    assert position.net_pnl(mark) == reference_net_pnl(fills, mark)


@given(trade_streams, marks)
@PROPERTY
def test_net_pnl_equals_cash_flow_up_to_decimal_precision_for_any_stream(
        stream: list[Trade], mark: Decimal) -> None:
    fills = fills_of(stream)
    position = position_from_fills(INSTRUMENT, fills)
    reference = reference_net_pnl(fills, mark)
    assert abs(position.net_pnl(mark) - reference) <= ROUNDING_BOUND
    # The reference has at most 6 decimal places, so rounding ours to 10 recovers it exactly.
    assert position.net_pnl(mark).quantize(Decimal("1e-10")) == reference


@given(trade_streams.flatmap(lambda s: st.tuples(st.just(s), st.permutations(s))), marks)
@PROPERTY
def test_net_pnl_at_a_mark_does_not_depend_on_the_order_of_fills(
        streams: tuple[list[Trade], list[Trade]], mark: Decimal) -> None:
    stream, reordered = streams
    ours = position_from_fills(INSTRUMENT, fills_of(stream))
    theirs = position_from_fills(INSTRUMENT, fills_of(reordered))
    assert ours.quantity == theirs.quantity
    assert ours.fees == theirs.fees
    assert abs(ours.net_pnl(mark) - theirs.net_pnl(mark)) <= ROUNDING_BOUND


@given(trade_streams)
@PROPERTY
def test_a_flat_position_has_no_average_price_and_no_unrealized_pnl(stream: list[Trade]) -> None:
    fills = no_pyramiding(stream)
    closing = -sum((f.signed_quantity for f in fills), Decimal(0))
    if closing != 0:
        fills.append(fill(Side.for_delta(closing), abs(closing), "50", fill_id="close"))
    position = position_from_fills(INSTRUMENT, fills)
    assert position.is_flat
    assert position.average_price == 0
    assert position.unrealized_pnl(Decimal(123)) == 0
    assert position.realized_pnl - position.fees == reference_net_pnl(fills, Decimal(0))


@given(trade_streams)
@PROPERTY
def test_average_price_lies_within_the_prices_paid(stream: list[Trade]) -> None:
    fills = fills_of(stream)
    position = position_from_fills(INSTRUMENT, fills)
    if not position.is_flat:
        assert min(f.price for f in fills) <= position.average_price
        assert position.average_price <= max(f.price for f in fills)


def test_realized_split_depends_on_the_order_of_fills_even_when_net_does_not() -> None:
    one = [fill(Side.BUY, "1", "10"), fill(Side.SELL, "1", "12"), fill(Side.BUY, "1", "11")]
    other = [one[2], one[0], one[1]]
    first = position_from_fills(INSTRUMENT, one)
    second = position_from_fills(INSTRUMENT, other)
    assert (first.realized_pnl, first.average_price) == (Decimal(2), Decimal(11))
    assert (second.realized_pnl, second.average_price) == (Decimal("1.5"), Decimal("10.5"))
    assert first.net_pnl(Decimal(13)) == second.net_pnl(Decimal(13)) == Decimal(4)


# --- apply_fill by example ---------------------------------------------------------------


def test_buying_twice_averages_the_price() -> None:
    position = position_from_fills(INSTRUMENT, [fill(Side.BUY, "2", "10"),
                                                fill(Side.BUY, "2", "12")])
    assert (position.quantity, position.average_price) == (Decimal(4), Decimal(11))
    assert position.realized_pnl == 0


def test_selling_part_realizes_pnl_and_keeps_the_average() -> None:
    position = position_from_fills(INSTRUMENT, [fill(Side.BUY, "4", "10"),
                                                fill(Side.SELL, "1", "13", "0.5")])
    assert position.quantity == Decimal(3)
    assert position.average_price == Decimal(10)
    assert position.realized_pnl == Decimal(3)
    assert position.fees == Decimal("0.5")
    assert position.net_pnl(Decimal(11)) == Decimal(3) + Decimal(3) - Decimal("0.5")


def test_selling_through_zero_flips_to_a_short_opened_at_the_fill_price() -> None:
    position = position_from_fills(INSTRUMENT, [fill(Side.BUY, "5", "10"),
                                                fill(Side.SELL, "8", "12")])
    assert position.quantity == Decimal(-3)
    assert position.average_price == Decimal(12)
    assert position.realized_pnl == Decimal(10)


def test_covering_a_short_below_its_price_is_a_gain() -> None:
    position = position_from_fills(INSTRUMENT, [fill(Side.SELL, "2", "10"),
                                                fill(Side.BUY, "2", "8")])
    assert position.is_flat
    assert position.realized_pnl == Decimal(4)


def test_unrealized_pnl_of_a_short_gains_as_the_price_falls() -> None:
    short = Position(INSTRUMENT, Decimal(-2), Decimal(10))
    assert short.unrealized_pnl(Decimal(8)) == Decimal(4)
    assert short.unrealized_pnl(None) == 0


def test_apply_fill_refuses_another_instruments_fill() -> None:
    with pytest.raises(ValueError, match="fill for NYSE:MSFT applied to NYSE:AAPL"):
        apply_fill(Position(INSTRUMENT), fill(Side.BUY, "1", "10", instrument="NYSE:MSFT"))


@pytest.mark.parametrize(("quantity", "price"), [("0", "10"), ("-1", "10"), ("1", "0"),
                                                 ("1", "-10")])
def test_apply_fill_refuses_a_quantity_or_price_that_is_not_positive(quantity: str,
                                                                     price: str) -> None:
    with pytest.raises(ValueError, match="f1: quantity and price must be positive"):
        apply_fill(Position(INSTRUMENT), fill(Side.BUY, quantity, price))


def test_positions_from_fills_keeps_instruments_apart() -> None:
    positions = positions_from_fills([
        fill(Side.BUY, "2", "10"),
        fill(Side.SELL, "1", "300", instrument="NYSE:MSFT"),
        fill(Side.BUY, "1", "13"),
    ])
    assert positions[INSTRUMENT].quantity == Decimal(3)
    assert positions["NYSE:MSFT"].quantity == Decimal(-1)


# --- totals and day start ----------------------------------------------------------------


def test_pnl_totals_sum_realized_unrealized_at_each_mark_and_fees() -> None:
    long = Position(INSTRUMENT, Decimal(2), Decimal(10), Decimal(5), Decimal("0.25"))
    short = Position("NYSE:MSFT", Decimal(-1), Decimal(300), Decimal(-3), Decimal("0.5"))
    unmarked = Position("NYSE:KO", Decimal(7), Decimal(60), Decimal(1), Decimal(0))
    totals = pnl_totals([(long, Decimal(11)), (short, Decimal(290)), (unmarked, None)])
    assert totals == PnlTotals(realized=Decimal(3), unrealized=Decimal(12), fees=Decimal("0.75"))
    assert totals.net == Decimal("14.25")


def test_pnl_totals_of_nothing_is_zero() -> None:
    assert pnl_totals([]) == PnlTotals()
    assert PnlTotals().net == 0


def test_day_start_net_is_zero_for_a_bot_never_seen_before() -> None:
    assert day_start_value(None, Decimal(99), Decimal(42), "2026-01-05") == 0


def test_day_start_net_is_kept_within_the_same_day() -> None:
    assert day_start_value("2026-01-05", Decimal(99), Decimal(42), "2026-01-05") == Decimal(99)


def test_day_start_net_rolls_to_the_last_net_on_a_new_day() -> None:
    assert day_start_value("2026-01-05", Decimal(99), Decimal(42), "2026-01-06") == Decimal(42)


# --- fill refusal ------------------------------------------------------------------------


def test_fill_for_an_unknown_order_is_refused() -> None:
    reason = fill_refusal(None, fill(Side.BUY, "1", "10"))
    assert reason == "no order with client id 'bot7-0001' belongs to this bot"


def test_fill_for_another_instrument_is_refused() -> None:
    reason = fill_refusal(make_order(), fill(Side.BUY, "1", "10", instrument="NYSE:MSFT"))
    assert reason is not None
    assert "is for NYSE:MSFT but order bot7-0001 is for NYSE:AAPL" in reason


def test_fill_on_the_other_side_is_refused() -> None:
    reason = fill_refusal(make_order(), fill(Side.SELL, "1", "10"))
    assert reason is not None
    assert "side sell differs from the order's buy" in reason


@pytest.mark.parametrize(("quantity", "price", "fee"), [("NaN", "10", "0"), ("1", "Infinity", "0"),
                                                        ("1", "10", "NaN"), ("sNaN", "10", "0")])
def test_fill_with_a_non_finite_number_is_refused(quantity: str, price: str, fee: str) -> None:
    reason = fill_refusal(make_order(), fill(Side.BUY, quantity, price, fee))
    assert reason == "fill f1 has a non-finite number"


@pytest.mark.parametrize(("quantity", "price", "fee"), [("0", "10", "0"), ("-1", "10", "0"),
                                                        ("1", "0", "0"), ("1", "10", "-0.01")])
def test_fill_with_a_non_positive_quantity_price_or_negative_fee_is_refused(
        quantity: str, price: str, fee: str) -> None:
    reason = fill_refusal(make_order(), fill(Side.BUY, quantity, price, fee))
    assert reason == "fill f1 has a non-positive quantity/price or negative fee"


def test_fill_that_would_overfill_is_refused() -> None:
    reason = fill_refusal(make_order(quantity="10", filled="8"), fill(Side.BUY, "3", "10"))
    assert reason is not None
    assert "would overfill order bot7-0001 (8/10 filled)" in reason


def test_fill_that_completes_the_order_exactly_is_accepted() -> None:
    assert fill_refusal(make_order(quantity="10", filled="8"), fill(Side.BUY, "2", "10")) is None


def test_fill_with_a_zero_fee_is_accepted() -> None:
    assert fill_refusal(make_order(), fill(Side.BUY, "1", "10", "0")) is None


# --- order after fill --------------------------------------------------------------------


def test_first_partial_fill_sets_filled_average_and_status() -> None:
    later = datetime(2026, 1, 5, 15, 1, tzinfo=UTC)
    order = order_after_fill(make_order(quantity="10"), fill(Side.BUY, "4", "10"), later)
    assert order.filled_quantity == Decimal(4)
    assert order.average_fill_price == Decimal(10)
    assert order.status is S.PARTIALLY_FILLED
    assert order.updated_at == later


def test_completing_fill_weights_the_average_and_fills_the_order() -> None:
    order = make_order(S.PARTIALLY_FILLED, quantity="10", filled="4", average="10")
    done = order_after_fill(order, fill(Side.BUY, "6", "15"), T0)
    assert done.filled_quantity == Decimal(10)
    assert done.average_fill_price == Decimal(13)
    assert done.status is S.FILLED


def test_late_fill_on_a_cancelled_order_is_counted_but_keeps_it_cancelled() -> None:
    order = make_order(S.CANCELLED, quantity="10", filled="4", average="10")
    late = order_after_fill(order, fill(Side.BUY, "2", "13"), T0)
    assert late.filled_quantity == Decimal(6)
    assert late.average_fill_price == Decimal(11)
    assert late.status is S.CANCELLED


# --- status from a broker report ---------------------------------------------------------


def test_broker_filled_without_ledger_fills_stays_acknowledged() -> None:
    assert status_from_report(S.PENDING, S.FILLED, Decimal(0), Decimal(10)) is S.ACKNOWLEDGED


def test_broker_filled_with_part_of_the_fills_in_the_ledger_is_partially_filled() -> None:
    assert (status_from_report(S.ACKNOWLEDGED, S.FILLED, Decimal(4), Decimal(10))
            is S.PARTIALLY_FILLED)


def test_order_is_filled_once_the_ledger_holds_all_its_fills() -> None:
    assert status_from_report(S.PARTIALLY_FILLED, S.FILLED, Decimal(10), Decimal(10)) is S.FILLED


def test_broker_acknowledgement_of_a_pending_order() -> None:
    assert status_from_report(S.PENDING, S.ACKNOWLEDGED, Decimal(0), Decimal(10)) is S.ACKNOWLEDGED


def test_cancel_after_a_partial_fill_is_cancelled() -> None:
    assert (status_from_report(S.PARTIALLY_FILLED, S.CANCELLED, Decimal(4), Decimal(10))
            is S.CANCELLED)


def test_reject_after_a_partial_fill_counts_as_cancelled() -> None:
    assert (status_from_report(S.PARTIALLY_FILLED, S.REJECTED, Decimal(4), Decimal(10))
            is S.CANCELLED)


@pytest.mark.parametrize("reported", [S.CANCELLED, S.REJECTED])
def test_cancel_or_reject_without_fills_is_taken_as_reported(reported: OrderStatus) -> None:
    assert status_from_report(S.ACKNOWLEDGED, reported, Decimal(0), Decimal(10)) is reported


@pytest.mark.parametrize("terminal", [S.FILLED, S.CANCELLED, S.REJECTED])
@pytest.mark.parametrize("reported", list(OrderStatus))
def test_a_terminal_status_never_changes_whatever_the_broker_says(terminal: OrderStatus,
                                                                  reported: OrderStatus) -> None:
    assert status_from_report(terminal, reported, Decimal(4), Decimal(10)) is terminal


@given(trade_streams)
@PROPERTY
def test_the_cash_a_position_moved_equals_the_sum_of_its_fills_cash(stream: list[Trade]) -> None:
    """What reconciliation compares with a broker's cash: realized - fees - qty * average
    is the fills' own cash flow, to far below a currency's smallest unit."""
    fills = fills_of(stream)
    moved = sum((-f.signed_quantity * f.price - f.fee for f in fills), Decimal(0))
    position = position_from_fills(INSTRUMENT, fills)
    assert abs(cash_flow(position) - moved) <= ROUNDING_BOUND
    assert cash_flows([position], {INSTRUMENT: "USD"}) == {"USD": cash_flow(position)}


def test_cash_flows_sum_positions_by_currency_and_skip_unknown_instruments() -> None:
    usd = Position("NYSE:AAPL", Decimal(1), Decimal(100), Decimal(5), Decimal("0.1"))
    jpy = Position("JPX:7203", Decimal(0), Decimal(0), Decimal(300), Decimal(2))
    odd = Position("LSE:X", Decimal(9), Decimal(9))
    assert cash_flows([usd, jpy, odd], {"NYSE:AAPL": "USD", "JPX:7203": "JPY",
                                        "NYSE:MSFT": "USD"}) == {
        "USD": Decimal("-95.1"), "JPY": Decimal(298)}
