"""evolve() copies a record with some fields changed, as dataclasses.replace would (without
re-running __init__), for slotted and plain frozen dataclasses alike."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fleetkit.core.orders import Order, OrderStatus, OrderType, Side
from fleetkit.core.records import evolve

T0 = datetime(2026, 12, 7, tzinfo=UTC)
ORDER = Order(7, 1, "fk-1-7", "CRYPTO:BTC/USDT", Side.BUY, OrderType.MARKET, Decimal("0.5"),
              None, OrderStatus.PENDING, Decimal(0), None, None, T0, T0, "entry",
              Decimal("42000.00"))


@dataclasses.dataclass(frozen=True)
class Plain:
    """Frozen without slots, with a default and a field named like evolve's own words."""

    changes: int
    label: str = "x"


def test_evolve_is_replace_for_a_slotted_record() -> None:
    changed = evolve(ORDER, status=OrderStatus.FILLED, filled_quantity=Decimal("0.5"))
    assert changed == dataclasses.replace(ORDER, status=OrderStatus.FILLED,
                                          filled_quantity=Decimal("0.5"))
    assert changed is not ORDER and ORDER.status is OrderStatus.PENDING
    assert evolve(ORDER) == ORDER
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.status = OrderStatus.NEW  # type: ignore[misc]


def test_evolve_is_replace_for_a_plain_frozen_record() -> None:
    assert evolve(Plain(1), changes=2) == Plain(2)
    assert evolve(Plain(1, "a"), label="b") == Plain(1, "b")


def test_evolve_names_fields_a_record_does_not_have() -> None:
    with pytest.raises(TypeError, match=r"Order has no fields \['colour'\]"):
        evolve(ORDER, colour="red")
    with pytest.raises(TypeError, match="Plain has no fields"):
        evolve(Plain(1), nope=0)
