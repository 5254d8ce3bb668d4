"""core.ledger.fill_refusal: what makes a broker's fill too implausible to apply."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.core.ledger import FillChecks, fill_contents_differ, fill_refusal
from fleetkit.core.orders import Fill, Order, OrderStatus, OrderType, Side

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None, database=None)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100_000), places=2)


def order(side: Side = Side.BUY, limit: Decimal | None = None,
          reference: Decimal | None = Decimal(100), quantity: str = "10") -> Order:
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    return Order(1, 1, "fk-1-1", "NYSE:AAPL", side, kind, Decimal(quantity), limit,
                 OrderStatus.ACKNOWLEDGED, Decimal(0), None, None, T0, T0, "", reference)


def fill(price: Decimal, side: Side = Side.BUY, quantity: str = "1", fee: str = "0") -> Fill:
    return Fill("f1", "fk-1-1", "NYSE:AAPL", side, Decimal(quantity), price, Decimal(fee), T0)


@given(limit=prices, price=prices, side=st.sampled_from(Side))
@PROPERTY
def test_a_limit_fill_is_accepted_exactly_when_it_is_at_the_limit_or_better(
        limit: Decimal, price: Decimal, side: Side) -> None:
    refusal = fill_refusal(order(side, limit=limit), fill(price, side))
    better_or_equal = price <= limit if side is Side.BUY else price >= limit
    assert (refusal is None) == better_or_equal


@given(price=prices, side=st.sampled_from(Side))
@PROPERTY
def test_a_market_fill_is_accepted_exactly_within_the_tolerance_of_its_reference(
        price: Decimal, side: Side) -> None:
    checks = FillChecks(market_price_tolerance_pct=Decimal(5))
    refusal = fill_refusal(order(side), fill(price, side), checks)
    assert (refusal is None) == (abs(price - 100) <= 5)


def test_a_market_order_without_a_reference_is_not_judged_by_price() -> None:
    """An order adopted from the broker has no decision price of ours to compare with."""
    assert fill_refusal(order(reference=None), fill(Decimal(1_000_000))) is None


@pytest.mark.parametrize(("fee", "max_fee_pct", "refused"), [
    ("1", "1", False), ("1.01", "1", True), ("0", "0", False), ("0.01", "0", True),
    ("1000000", "1", True)])
def test_a_fee_above_its_bound_of_the_notional_is_refused(fee: str, max_fee_pct: str,
                                                          refused: bool) -> None:
    checks = FillChecks(max_fee_pct=Decimal(max_fee_pct))
    refusal = fill_refusal(order(), fill(Decimal(100), fee=fee), checks)
    assert (refusal is not None) == refused
    if refused:
        assert f"fee of {fee}" in (refusal or "")


def test_fill_contents_differ_names_each_changed_field_and_ignores_the_time() -> None:
    base = fill(Decimal(100), fee="0.1")
    later = Fill(base.broker_fill_id, base.client_order_id, base.instrument, base.side,
                 base.quantity, base.price, base.fee, datetime(2027, 1, 1, tzinfo=UTC))
    assert fill_contents_differ(base, later) == []
    moved = fill(Decimal(101), quantity="2", fee="0.1")
    assert fill_contents_differ(base, moved) == ["quantity", "price"]
    assert fill_contents_differ(base, fill(Decimal("100.0"), fee="0.10")) == []


def test_fill_checks_refuse_a_tolerance_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FillChecks(market_price_tolerance_pct=Decimal(0))
