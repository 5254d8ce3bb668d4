"""Invented index futures: listing, carry, open interest rolling, the front month
(futures.py, derivatives.py)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.chains import RISK_FREE_RATE, TICK
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.contracts import (
    ContractRules,
    future_symbol,
    load_contract_rules,
    parse_future_symbol,
)
from fleetkit.brokers.sandbox.derivatives import SandboxDerivatives
from fleetkit.brokers.sandbox.futures import front_month
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides

SEED = 3


@pytest.fixture(scope="module")
def calendars() -> MarketCalendars:
    return MarketCalendars(load_overrides(None).for_market_calendars())


def derivatives_at(calendars: MarketCalendars, moment: datetime,
                   rules: dict[str, ContractRules] | None = None
                   ) -> tuple[SandboxDerivatives, ManualClock]:
    clock = ManualClock(moment)
    venue = SandboxVenue(InventedPrices(SEED, load_catalog(), calendars), MemoryBook(), clock,
                         VenueConfig(seed=SEED), sessions=calendars)
    return SandboxDerivatives(venue, rules), clock


def test_future_symbols_are_monthly_and_round_trip() -> None:
    rules = load_contract_rules()
    assert future_symbol(rules["NIFTY"], date(2026, 12, 29)) == "NIFTY26DECFUT"
    assert future_symbol(rules["SENSEX"], date(2027, 1, 28)) == "SENSEX27JANFUT"
    assert parse_future_symbol("BANKNIFTY26DECFUT", tuple(rules)) == ("BANKNIFTY", 2026, 12)
    assert parse_future_symbol("NIFTY26DEC24000CE", tuple(rules)) is None


def test_three_months_are_listed_priced_at_carry_the_near_one_tightest(
        calendars: MarketCalendars) -> None:
    derivatives, _ = derivatives_at(calendars, datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    curve = derivatives.futures("NIFTY")
    assert [q.instrument for q in curve.futures] == [
        "NFO:NIFTY26DECFUT", "NFO:NIFTY27JANFUT", "NFO:NIFTY27FEBFUT"]
    assert [q.expiry for q in curve.futures] == [date(2026, 12, 29), date(2027, 1, 25),
                                                 date(2027, 2, 23)]
    spreads = [q.ask - q.bid for q in curve.futures]
    assert spreads == sorted(spreads) and spreads[0] == 2 * TICK
    spot = float(curve.spot)
    for quote in curve.futures:
        years = (quote.expiry - date(2026, 12, 1)).days / 365
        carry = spot * (math.exp(RISK_FREE_RATE * years) - 1)
        assert float(quote.basis) == pytest.approx(carry, abs=spot * 0.0006)
        assert quote.last % TICK == 0 and quote.bid < quote.last < quote.ask
    assert [q.last for q in curve.futures] == sorted(q.last for q in curve.futures)
    assert curve.front == "NFO:NIFTY26DECFUT"
    # Shipped rules roll two trading days before expiry: Dec 28 and 29 are the last two (the
    # 25th is a holiday), so December stops being the front at the 24th's close.
    assert curve.roll_at == datetime(2026, 12, 24, 10, 0, tzinfo=UTC)  # 15:30 IST


def test_open_interest_moves_to_the_next_month_in_the_roll_week(
        calendars: MarketCalendars) -> None:
    derivatives, clock = derivatives_at(calendars, datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    early = derivatives.futures("BANKNIFTY").futures
    clock.set(datetime(2026, 12, 28, 6, 0, tzinfo=UTC))
    late = derivatives.futures("BANKNIFTY").futures
    assert early[0].open_interest > early[1].open_interest
    assert late[0].open_interest < late[1].open_interest
    clock.set(datetime(2026, 12, 29, 10, 0, tzinfo=UTC))  # December's close: it leaves
    rolled = derivatives.futures("BANKNIFTY")
    assert rolled.front == "NFO:BANKNIFTY27JANFUT"
    assert [q.instrument for q in rolled.futures][-1] == "NFO:BANKNIFTY27MARFUT"


def test_the_front_rolls_the_configured_trading_days_before_expiry(
        calendars: MarketCalendars) -> None:
    days = {s.open.date() for s in calendars.sessions("XNSE", date(2026, 12, 1),
                                                      date(2027, 1, 31))}
    expiries = [date(2026, 12, 29), date(2027, 1, 25)]
    assert front_month(expiries, date(2026, 12, 24), 2, days.__contains__) == expiries[0]
    # Friday 25 December is a holiday: on the 28th one trading day (the 28th) is left.
    assert front_month(expiries, date(2026, 12, 28), 2, days.__contains__) == expiries[1]
    assert front_month(expiries, date(2026, 12, 29), 0, days.__contains__) == expiries[0]
    rules = load_contract_rules()["NIFTY"].model_copy(update={"roll_days_before": 2})
    derivatives, _ = derivatives_at(calendars, datetime(2026, 12, 28, 6, 0, tzinfo=UTC),
                                    {"NIFTY": rules})
    curve = derivatives.futures("NIFTY")
    assert curve.front == "NFO:NIFTY27JANFUT"
    assert curve.futures[0].last > Decimal(0)
