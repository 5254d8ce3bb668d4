"""Order lifecycle: which status moves are legal, what a fill does to status, intents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import product

import pytest

from fleetkit.core.orders import (
    TERMINAL_STATUSES,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    can_transition,
    status_after_fill,
)

S = OrderStatus
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)

# The lifecycle as the ledger must enforce it, written out pair by pair. Staying in the same
# status is always allowed (re-applying a report is idempotent).
ALLOWED_MOVES = {
    (S.NEW, S.PENDING), (S.NEW, S.REJECTED),
    (S.PENDING, S.ACKNOWLEDGED), (S.PENDING, S.PARTIALLY_FILLED), (S.PENDING, S.FILLED),
    (S.PENDING, S.CANCELLED), (S.PENDING, S.REJECTED),
    (S.ACKNOWLEDGED, S.PARTIALLY_FILLED), (S.ACKNOWLEDGED, S.FILLED),
    (S.ACKNOWLEDGED, S.CANCELLED), (S.ACKNOWLEDGED, S.REJECTED),
    (S.PARTIALLY_FILLED, S.FILLED), (S.PARTIALLY_FILLED, S.CANCELLED),
}
ALL_PAIRS = list(product(OrderStatus, OrderStatus))
FORBIDDEN_MOVES = [(a, b) for a, b in ALL_PAIRS if a != b and (a, b) not in ALLOWED_MOVES]


def make_order(status: OrderStatus = S.ACKNOWLEDGED, quantity: str = "10",
               filled: str = "0") -> Order:
    return Order(
        id=1, bot_id=7, client_order_id="bot7-0001", instrument="NYSE:AAPL", side=Side.BUY,
        order_type=OrderType.MARKET, quantity=Decimal(quantity), limit_price=None,
        status=status, filled_quantity=Decimal(filled), average_fill_price=None,
        broker_order_id=None, created_at=T0, updated_at=T0, reason="signal 3",
    )


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED_MOVES))
def test_allowed_move_is_accepted(current: OrderStatus, new: OrderStatus) -> None:
    assert can_transition(current, new)


@pytest.mark.parametrize(("current", "new"), FORBIDDEN_MOVES)
def test_forbidden_move_is_refused(current: OrderStatus, new: OrderStatus) -> None:
    assert not can_transition(current, new)


@pytest.mark.parametrize("status", list(OrderStatus))
def test_staying_in_the_same_status_is_allowed(status: OrderStatus) -> None:
    assert can_transition(status, status)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_a_terminal_status_never_moves_anywhere_else(terminal: OrderStatus) -> None:
    assert [s for s in OrderStatus if s != terminal and can_transition(terminal, s)] == []


def test_terminal_statuses_are_filled_cancelled_and_rejected() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == {S.FILLED, S.CANCELLED, S.REJECTED}


def test_open_statuses_are_those_the_broker_holds_or_might_hold() -> None:
    assert {s for s in OrderStatus if s.is_open} == {S.PENDING, S.ACKNOWLEDGED,
                                                    S.PARTIALLY_FILLED}
    assert not S.NEW.is_open


def test_nothing_moves_back_to_new() -> None:
    assert [s for s in OrderStatus if s != S.NEW and can_transition(s, S.NEW)] == []


# --- status_after_fill -------------------------------------------------------------------


@pytest.mark.parametrize("current", [S.PENDING, S.ACKNOWLEDGED, S.PARTIALLY_FILLED])
def test_status_after_fill_is_partial_until_the_quantity_is_filled(current: OrderStatus) -> None:
    assert status_after_fill(Decimal(10), Decimal(4), current) is S.PARTIALLY_FILLED
    assert status_after_fill(Decimal(10), Decimal(10), current) is S.FILLED


def test_status_after_fill_without_any_fill_keeps_the_status() -> None:
    assert status_after_fill(Decimal(10), Decimal(0), S.ACKNOWLEDGED) is S.ACKNOWLEDGED
    assert status_after_fill(Decimal(10), Decimal(0), S.PENDING) is S.PENDING


@pytest.mark.parametrize("closed", [S.CANCELLED, S.REJECTED])
def test_fills_after_a_cancel_or_reject_do_not_reopen_the_order(closed: OrderStatus) -> None:
    assert status_after_fill(Decimal(10), Decimal(3), closed) is closed
    assert status_after_fill(Decimal(10), Decimal(10), closed) is closed


@pytest.mark.parametrize("current", [S.PENDING, S.ACKNOWLEDGED, S.PARTIALLY_FILLED])
@pytest.mark.parametrize("filled", ["0", "3", "10"])
def test_status_after_fill_is_always_a_legal_move(current: OrderStatus, filled: str) -> None:
    assert can_transition(current, status_after_fill(Decimal(10), Decimal(filled), current))


# --- Order --------------------------------------------------------------------------------


def test_with_status_moves_the_status_and_stamps_the_time() -> None:
    later = T0 + timedelta(seconds=3)
    moved = make_order(S.PENDING).with_status(S.ACKNOWLEDGED, later)
    assert moved.status is S.ACKNOWLEDGED
    assert moved.updated_at == later
    assert moved.created_at == T0
    assert moved.reason == "signal 3"


def test_with_status_replaces_the_reason_only_when_one_is_given() -> None:
    rejected = make_order(S.PENDING).with_status(S.REJECTED, T0, reason="insufficient funds")
    assert rejected.reason == "insufficient funds"


@pytest.mark.parametrize(("current", "new"), FORBIDDEN_MOVES)
def test_with_status_refuses_an_illegal_move_naming_the_order(current: OrderStatus,
                                                              new: OrderStatus) -> None:
    with pytest.raises(ValueError, match=f"order bot7-0001: {current} -> {new} not allowed"):
        make_order(current).with_status(new, T0)


def test_remaining_never_goes_negative() -> None:
    assert make_order(quantity="10", filled="4").remaining == Decimal(6)
    assert make_order(quantity="10", filled="12").remaining == Decimal(0)


def test_signed_remaining_is_negative_for_a_sell() -> None:
    sell = replace(make_order(quantity="10", filled="4"), side=Side.SELL)
    assert sell.signed_remaining == Decimal(-6)
    assert make_order(quantity="10", filled="4").signed_remaining == Decimal(6)


# --- sides, intents and fills ------------------------------------------------------------


def test_side_sign_and_side_for_a_delta() -> None:
    assert Side.BUY.sign == 1
    assert Side.SELL.sign == -1
    assert Side.for_delta(Decimal("0.5")) is Side.BUY
    assert Side.for_delta(Decimal("-0.5")) is Side.SELL


def test_limit_intent_needs_a_limit_price() -> None:
    with pytest.raises(ValueError, match="a limit order needs a limit_price"):
        OrderIntent("NYSE:AAPL", Side.BUY, Decimal(5), OrderType.LIMIT, Decimal(100))


def test_market_intent_checks_against_its_reference_price() -> None:
    intent = OrderIntent("NYSE:AAPL", Side.SELL, Decimal(5), OrderType.MARKET, Decimal(100))
    assert intent.price_for_checks == Decimal(100)
    assert intent.signed_quantity == Decimal(-5)


def test_limit_intent_checks_against_its_limit_price() -> None:
    intent = OrderIntent("NYSE:AAPL", Side.BUY, Decimal(5), OrderType.LIMIT, Decimal(100),
                         limit_price=Decimal("100.05"))
    assert intent.price_for_checks == Decimal("100.05")
    assert intent.signed_quantity == Decimal(5)


def test_fill_signed_quantity_and_notional() -> None:
    fill = Fill("f1", "bot7-0001", "NYSE:AAPL", Side.SELL, Decimal(3), Decimal("10.5"),
                Decimal("0.01"), T0)
    assert fill.signed_quantity == Decimal(-3)
    assert fill.notional == Decimal("31.5")
