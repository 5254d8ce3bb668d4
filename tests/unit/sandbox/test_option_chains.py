"""Invented option chains: smile, term structure, spreads, OI and volume (chains.py), and
their listing over a venue's invented index (derivatives.py)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.chains import (
    RISK_FREE_RATE,
    TICK,
    PricingMoment,
    VolatilityState,
    half_spread_share,
    quote_option,
    smile_volatility,
)
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.contracts import OptionContract, load_contract_rules
from fleetkit.brokers.sandbox.derivatives import SandboxDerivatives
from fleetkit.brokers.sandbox.errors import DerivativesUnavailableError, UnknownInstrumentError
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.core.options import OptionKind

SEED = 11
# Tuesday 8 December 2026, 10:30 IST: NIFTY's weekly expires today at 15:30 IST.
MORNING = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
NORMAL = VolatilityState(long_run=0.15, realised=0.15)


@pytest.fixture(scope="module")
def calendars() -> MarketCalendars:
    return MarketCalendars(load_overrides(None).for_market_calendars())


def derivatives_at(calendars: MarketCalendars, moment: datetime,
                   seed: int = SEED) -> tuple[SandboxDerivatives, ManualClock]:
    clock = ManualClock(moment)
    venue = SandboxVenue(InventedPrices(seed, load_catalog(), calendars), MemoryBook(), clock,
                         VenueConfig(seed=seed), sessions=calendars)
    return SandboxDerivatives(venue), clock


@pytest.fixture(scope="module")
def morning(calendars: MarketCalendars) -> Iterator[SandboxDerivatives]:
    yield derivatives_at(calendars, MORNING)[0]


def relative_spread(quote: ChainQuote) -> Decimal:
    return (quote.ask - quote.bid) / quote.mid


def otm_quotes(chain: OptionChain) -> list[ChainQuote]:
    """Out-of-the-money legs ordered from the money outward: calls up, puts down."""
    calls = [r.call for r in chain.rows if r.strike > chain.spot]
    puts = [r.put for r in reversed(chain.rows) if r.strike < chain.spot]
    return calls + puts


# --- the pricing model ---------------------------------------------------------------------


def test_the_smile_rises_away_from_the_money_and_more_on_the_puts_side() -> None:
    spot, years = 24_000.0, 20 / 365
    atm = smile_volatility(NORMAL, spot, spot, years)
    for distance in (500.0, 1_000.0, 2_000.0):
        below = smile_volatility(NORMAL, spot, spot - distance, years)
        above = smile_volatility(NORMAL, spot, spot + distance, years)
        assert below > above > atm
    assert smile_volatility(NORMAL, spot, 22_000, years) > smile_volatility(NORMAL, spot,
                                                                             23_000, years)


def test_the_term_structure_inverts_in_a_turbulent_regime_and_steepens_in_a_calm_one() -> None:
    turbulent = VolatilityState(long_run=0.15, realised=0.35)
    calm = VolatilityState(long_run=0.15, realised=0.09)
    week, quarter = 7 / 365, 90 / 365
    assert turbulent.atm(week) > turbulent.atm(quarter) > NORMAL.atm(quarter)
    assert calm.atm(week) < calm.atm(quarter) <= NORMAL.atm(quarter)
    # Turbulence steepens the put skew too: the same number of sds below the money adds
    # more volatility.
    def put_wing(state: VolatilityState) -> float:
        forward = 24_000 * math.exp(RISK_FREE_RATE * week)
        strike = forward * math.exp(-1.5 * state.atm(week) * math.sqrt(week))
        return smile_volatility(state, 24_000, strike, week) / state.atm(week)

    assert put_wing(turbulent) > put_wing(NORMAL) > 1


def test_half_spreads_widen_away_from_the_money_and_toward_expiry() -> None:
    assert half_spread_share(2.0, 0.05) > half_spread_share(1.0, 0.05) > half_spread_share(0, 0.05)
    assert half_spread_share(1.0, 1 / 365) > half_spread_share(1.0, 7 / 365) > \
        half_spread_share(1.0, 60 / 365)


def test_quotes_sit_on_the_tick_grid_with_the_bid_below_the_ask(
        morning: SandboxDerivatives) -> None:
    for underlying in morning.underlyings():
        for row in morning.chain(underlying).rows:
            for quote in (row.call, row.put):
                for price in (quote.bid, quote.ask, quote.last):
                    assert price % TICK == 0 and price >= TICK, quote
                assert quote.bid < quote.ask and quote.bid <= quote.last <= quote.ask, quote
                assert quote.open_interest > 0 and quote.open_interest % quote.lot_size == 0
                assert quote.volume % quote.lot_size == 0


def test_relative_spreads_widen_away_from_the_money(morning: SandboxDerivatives) -> None:
    chain = morning.chain("BANKNIFTY")  # a monthly three weeks out: no tick floor near ATM
    for side in (OptionKind.CALL, OptionKind.PUT):
        legs = [q for q in otm_quotes(chain) if q.kind is side and q.mid > 20]
        spreads = [relative_spread(q) for q in legs]
        assert len(spreads) > 10
        assert spreads[-1] > spreads[len(spreads) // 2] > spreads[0]


def test_relative_spreads_widen_near_expiry(morning: SandboxDerivatives) -> None:
    weekly, monthly = (morning.chain("NIFTY", expiry) for expiry in morning.chain("NIFTY").expiries)
    assert weekly.expiry < monthly.expiry
    strike = weekly.atm_strike
    weekly_row, monthly_row = weekly.row(strike), monthly.row(strike)
    assert weekly_row is not None and monthly_row is not None
    assert relative_spread(weekly_row.call) > relative_spread(monthly_row.call)
    assert relative_spread(weekly_row.put) > relative_spread(monthly_row.put)


def test_open_interest_peaks_near_the_money(morning: SandboxDerivatives) -> None:
    chain = morning.chain("NIFTY")
    near = [r for r in chain.rows if abs(r.strike - chain.atm_strike) <= 5 * chain.strike_step]
    far = [r for r in chain.rows if abs(r.strike - chain.atm_strike) >= 30 * chain.strike_step]
    assert min(r.call.open_interest + r.put.open_interest for r in near) > \
        max(r.call.open_interest + r.put.open_interest for r in far)


def test_volume_only_grows_within_a_day(calendars: MarketCalendars) -> None:
    rules = load_contract_rules()["NIFTY"]
    contract = OptionContract("NIFTY", date(2026, 12, 29), Decimal(24_000), OptionKind.CALL,
                              rules.instrument(date(2026, 12, 29), Decimal(24_000),
                                               OptionKind.CALL), True)
    close = datetime(2026, 12, 29, 10, 0, tzinfo=UTC)
    volumes = [quote_option(rules, contract, close, PricingMoment(
        SEED, MORNING + timedelta(minutes=m), date(2026, 12, 8), 24_000.0, NORMAL,
        fraction)).volume for m, fraction in ((0, 0.0), (60, 0.2), (120, 0.5), (360, 1.0))]
    assert volumes == sorted(volumes) and volumes[0] == 0 < volumes[-1]


# --- listing and determinism ----------------------------------------------------------------


def test_the_default_universe_is_about_730_instruments(morning: SandboxDerivatives) -> None:
    total = sum(len(morning.chain(u, expiry).rows) * 2 for u in morning.underlyings()
                for expiry in morning.chain(u).expiries)
    assert 700 <= total <= 760


def test_expired_contracts_leave_and_the_next_weekly_joins(calendars: MarketCalendars) -> None:
    derivatives, clock = derivatives_at(calendars, MORNING)
    before = derivatives.chain("NIFTY")
    assert before.expiries == (date(2026, 12, 8), date(2026, 12, 29))
    expiring = before.rows[len(before.rows) // 2].call.instrument
    assert derivatives.quotes([expiring])[0].instrument == expiring
    clock.set(datetime(2026, 12, 8, 10, 0, tzinfo=UTC))  # 15:30 IST: the weekly's close
    after = derivatives.chain("NIFTY")
    assert after.expiries == (date(2026, 12, 15), date(2026, 12, 29))
    with pytest.raises(UnknownInstrumentError, match="is not listed now"):
        derivatives.quotes([expiring])


def test_the_same_seed_prices_the_same_chain_in_another_process(
        morning: SandboxDerivatives, calendars: MarketCalendars) -> None:
    chain = morning.chain("SENSEX", strikes_each_side=3)
    again = derivatives_at(calendars, MORNING)[0].chain("SENSEX", strikes_each_side=3)
    assert again == chain
    other_seed = derivatives_at(calendars, MORNING, seed=SEED + 1)[0].chain(
        "SENSEX", strikes_each_side=3)
    assert other_seed.spot != chain.spot
    script = (
        "import sys; sys.path[:0] = " + repr(sys.path) + "\n"
        "from tests.unit.sandbox.test_option_chains import *\n"
        "c = derivatives_at(MarketCalendars(load_overrides(None).for_market_calendars()),"
        " MORNING)[0].chain('SENSEX', strikes_each_side=3)\n"
        "print(repr([(r.call.bid, r.call.ask, r.call.last, r.put.bid, r.put.ask,"
        " r.put.open_interest, r.put.volume) for r in c.rows]))\n")
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, timeout=60).stdout.strip()
    assert printed == repr([(r.call.bid, r.call.ask, r.call.last, r.put.bid, r.put.ask,
                             r.put.open_interest, r.put.volume) for r in chain.rows])


def test_a_chain_at_a_past_moment_is_priced_on_that_minute(calendars: MarketCalendars) -> None:
    derivatives, clock = derivatives_at(calendars, MORNING)
    minute = MORNING - timedelta(minutes=30)
    past = derivatives.chain("NIFTY", strikes_each_side=2, at=minute)
    clock.advance(timedelta(hours=2))
    assert derivatives.chain("NIFTY", strikes_each_side=2, at=minute) == past
    with pytest.raises(ValueError, match="is in the future"):
        derivatives.chain("NIFTY", at=clock.now() + timedelta(minutes=1))


def test_unknown_underlyings_expiries_and_instruments_are_refused_by_name(
        morning: SandboxDerivatives) -> None:
    with pytest.raises(DerivativesUnavailableError, match="no options on 'FINNIFTY'; it lists "
                                                          "BANKNIFTY, NIFTY, SENSEX"):
        morning.chain("FINNIFTY")
    with pytest.raises(ValueError, match="lists no expiry on 2026-12-09"):
        morning.chain("NIFTY", date(2026, 12, 9))
    for key in ("NFO:NIFTY26D0924000CE", "NFO:NIFTY26D0824010CE", "BFO:NIFTY26D0824000CE",
                "NFO:NIFTY26D2924000CE"):  # no such expiry, off the grid, wrong exchange,
        with pytest.raises(UnknownInstrumentError, match="NIFTY"):  # monthly spelt weekly
            morning.quotes([key])
