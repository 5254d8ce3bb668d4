"""The ATM strike and a leg's mark: exact decimals, halves up, one-sided books."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from fleetkit.core.numbers import floor_minute
from fleetkit.core.option_quotes import OptionQuote, mark
from fleetkit.core.options import atm_strike


@pytest.mark.parametrize(("spot", "step", "strike"), [
    ("24012.35", "50", "24000"), ("24025", "50", "24050"), ("24024.99", "50", "24000"),
    ("51234.5", "100", "51200"), ("101.25", "2.5", "102.5"), ("100", "0.5", "100"),
])
def test_the_atm_strike_is_the_nearest_multiple_of_the_step_halves_up(
        spot: str, step: str, strike: str) -> None:
    found = atm_strike(Decimal(spot), Decimal(step))
    assert found == Decimal(strike) and str(found) == strike


def test_a_step_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="strike step must be positive"):
        atm_strike(Decimal(100), Decimal(0))


def test_a_mark_is_the_mid_of_a_two_sided_book_else_the_last_trade() -> None:
    assert mark(Decimal("10.00"), Decimal("10.10"), Decimal(9)) == Decimal("10.05")
    assert mark(None, Decimal("10.10"), Decimal(9)) == Decimal(9)
    assert mark(Decimal("10.20"), Decimal("10.10"), None) is None  # crossed: no mark


def test_a_quote_with_a_bad_option_type_or_price_is_refused() -> None:
    good = {"instrument": "NFO:X", "underlying": "NIFTY", "expiry": date(2026, 1, 6),
            "strike": Decimal(24000), "option_type": "CE", "bid": None, "ask": None,
            "last": None, "volume": 0, "open_interest": 0,
            "underlying_price": Decimal(24000), "iv": None, "source": "sandbox"}
    OptionQuote(**good)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CE or PE"):
        OptionQuote(**{**good, "option_type": "XX"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite Decimal"):
        OptionQuote(**{**good, "bid": Decimal("NaN")})  # type: ignore[arg-type]


def test_minute_of_floors_to_the_utc_minute() -> None:
    moment = datetime(2026, 1, 5, 3, 45, 59, 999, tzinfo=UTC)
    assert floor_minute(moment) == datetime(2026, 1, 5, 3, 45, tzinfo=UTC)
