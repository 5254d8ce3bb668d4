"""The status read model's JSON: numbers as plain strings, never exponent notation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fleetkit.store.status import BotView, PositionView


def test_status_json_writes_whole_and_tiny_numbers_without_exponents() -> None:
    position = PositionView("JPX:7203", Decimal("1E+3"), Decimal("1.41E+3"), Decimal("1.4E+3"),
                            Decimal("-1E+4"))
    view = BotView("jp", "JPX", "JPY", "sma_cross", "sandbox", "ACTIVE", "", "trading", "",
                   1.0, (position,), Decimal("1E-7"), Decimal("-1E+4"), Decimal(0),
                   Decimal(0), 1, 1, 3)
    data = view.as_json()
    assert data["positions"][0] == {"instrument": "JPX:7203", "quantity": "1000",
                                    "average_price": "1410", "mark_price": "1400",
                                    "unrealized_pnl": "-10000"}
    assert data["pnl_today"]["realized"] == "0.0000001"
    assert datetime.now(UTC)  # the module imports cleanly without a database
