"""Option contract rules, tradingsymbols and listed expiries (contracts.py, expiries.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from fleetkit.brokers.sandbox.contracts import (
    ContractRules,
    load_contract_rules,
    option_symbol,
    parse_contract_rules,
    parse_option_symbol,
)
from fleetkit.brokers.sandbox.expiries import listed_expiries, shift_to_trading_day
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.core.options import OptionKind

CE, PE = OptionKind.CALL, OptionKind.PUT


@pytest.fixture(scope="module")
def rules() -> dict[str, ContractRules]:
    return load_contract_rules()


@pytest.fixture(scope="module")
def nse_days() -> set[date]:
    calendars = MarketCalendars(load_overrides(None).for_market_calendars())
    return {s.open.date() for s in calendars.sessions("XNSE", date(2025, 1, 1),
                                                      date(2027, 3, 31))}


@pytest.mark.parametrize(("root", "expiry", "strike", "kind", "symbol"), [
    ("NIFTY", date(2026, 12, 8), "24000", CE, "NIFTY26D0824000CE"),
    ("NIFTY", date(2026, 1, 6), "23950", PE, "NIFTY2610623950PE"),
    ("NIFTY", date(2026, 10, 13), "25000", CE, "NIFTY26O1325000CE"),
    ("NIFTY", date(2026, 11, 3), "25000", PE, "NIFTY26N0325000PE"),
    ("NIFTY", date(2026, 12, 29), "24000", PE, "NIFTY26DEC24000PE"),  # last Tuesday
    # March 2026's last Tuesday (the 31st) is a holiday: the monthly moved to Monday 30th
    # and keeps the monthly shape.
    ("NIFTY", date(2026, 3, 30), "22500", CE, "NIFTY26MAR22500CE"),
    ("BANKNIFTY", date(2026, 12, 29), "52100", CE, "BANKNIFTY26DEC52100CE"),
    ("SENSEX", date(2026, 12, 10), "80100", PE, "SENSEX26D1080100PE"),
    ("SENSEX", date(2026, 12, 31), "80100", CE, "SENSEX26DEC80100CE"),  # last Thursday
    ("NIFTY", date(2026, 12, 8), "24012.5", CE, "NIFTY26D0824012.5CE"),
])
def test_tradingsymbols_take_the_indian_brokers_shape(
        rules: dict[str, ContractRules], root: str, expiry: date, strike: str,
        kind: OptionKind, symbol: str) -> None:
    assert option_symbol(rules[root], expiry, Decimal(strike), kind) == symbol
    parsed = parse_option_symbol(symbol, tuple(rules))
    assert parsed is not None
    assert (parsed.root, parsed.year, parsed.month, parsed.strike, parsed.kind) == (
        root, expiry.year, expiry.month, Decimal(strike), kind)
    assert parsed.expiry_day == (None if rules[root].is_monthly(expiry) else expiry.day)


@pytest.mark.parametrize("symbol", ["NIFTY26D0824000XE", "NIFTY26X0824000CE", "NIFTY26DEC0CE",
                                    "NIFTY26DEC024000CE", "FINNIFTY26DEC24000CE", "NIFTY",
                                    "NIFTY 50"])
def test_what_is_no_option_symbol_is_not_parsed(rules: dict[str, ContractRules],
                                                symbol: str) -> None:
    assert parse_option_symbol(symbol, tuple(rules)) is None


def test_an_expiry_on_a_holiday_moves_to_the_trading_day_before(
        rules: dict[str, ContractRules], nse_days: set[date]) -> None:
    # Holi, Tuesday 3 March 2026: NIFTY's weekly expires on Monday the 2nd.
    assert shift_to_trading_day(date(2026, 3, 3), nse_days.__contains__) == date(2026, 3, 2)
    assert listed_expiries(rules["NIFTY"], date(2026, 2, 25), nse_days.__contains__) == [
        date(2026, 3, 2), date(2026, 3, 30)]
    # Christmas, Thursday 25 December 2025: SENSEX's expiry (its month's last) on Wednesday.
    assert listed_expiries(rules["SENSEX"], date(2025, 12, 19), nse_days.__contains__) == [
        date(2025, 12, 24)]


def test_nifty_lists_its_next_weekly_and_its_monthly_even_in_the_monthly_week(
        rules: dict[str, ContractRules], nse_days: set[date]) -> None:
    is_day = nse_days.__contains__
    assert listed_expiries(rules["NIFTY"], date(2026, 12, 7), is_day) == [
        date(2026, 12, 8), date(2026, 12, 29)]
    assert listed_expiries(rules["NIFTY"], date(2026, 12, 23), is_day) == [
        date(2026, 12, 29), date(2027, 1, 5)]
    # January 2027's last Tuesday is Republic Day: BANKNIFTY's monthly is on the Monday.
    assert listed_expiries(rules["BANKNIFTY"], date(2026, 12, 30), is_day) == [
        date(2027, 1, 25)]


def test_the_default_universe_is_about_730_instruments(rules: dict[str, ContractRules],
                                                       nse_days: set[date]) -> None:
    total = sum(len(listed_expiries(r, date(2026, 6, 3), nse_days.__contains__))
                * (2 * r.strikes_each_side + 1) * 2 for r in rules.values())
    assert 700 <= total <= 760


GOOD: dict[str, Any] = {"spot": "NSE:NIFTY 50", "exchange": "NFO", "lot_size": 75,
                        "strike_step": "50", "strikes_each_side": 10,
                        "weekly": {"weekday": "tuesday", "listed": 1},
                        "atm_volatility": 0.15, "atm_open_interest_lots": 1000}


@pytest.mark.parametrize(("change", "message"), [
    ({"exchange": "NSE"}, "exchange 'NSE' is not a derivatives segment; use one of BFO, NFO"),
    ({"lot_size": 0}, "lot_size: Input should be greater than 0"),
    ({"weekly": {"weekday": "saturday", "listed": 1}}, "weekly.weekday"),
    ({"weekly": None}, "give a weekly or a monthly expiry schedule"),
    ({"spot": "NIFTY 50"}, "must be an instrument key like 'NSE:NIFTY 50'"),
    ({"strike_size": 50}, "strike_size: Extra inputs are not permitted"),
])
def test_bad_rules_are_refused_in_one_line_naming_the_root_and_field(
        change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"^NIFTY: ") as raised:
        parse_contract_rules({"NIFTY": {**GOOD, **change}})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
