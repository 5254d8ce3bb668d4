"""The ChainSource contract kit against the sandbox: a real SandboxService on loopback, asked
through SandboxClient, for an underlying with weeklies and monthlies (NIFTY, on NFO) and one
with a single weekly listed (SENSEX, on BFO). And the kit's teeth: adapters broken on
purpose fail the contract test that guards what they broke."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.calendars.overrides import load_overrides
from fleetkit.core.errors import BrokerError
from fleetkit.core.futures import FuturesCurve
from fleetkit.core.option_chains import ChainQuote, OptionChain
from fleetkit.testing.chain_source_kit import ChainSourceContract, ChainSourceKit

SEED = 5
# Thursday 10 December 2026, 11:00 IST: in session, SENSEX's weekly expires today.
MORNING = datetime(2026, 12, 10, 5, 30, tzinfo=UTC)
# Weeklies of 1 January 2026: long expired by then.
EXPIRED = {"NIFTY": "NFO:NIFTY26D0124000CE", "SENSEX": "BFO:SENSEX26D0180000PE"}


@pytest.fixture(scope="module")
def service() -> Iterator[SandboxService]:
    calendars = MarketCalendars(load_overrides(None).for_market_calendars())
    venue = SandboxVenue(InventedPrices(SEED, load_catalog(), calendars), MemoryBook(),
                         ManualClock(MORNING), VenueConfig(seed=SEED), sessions=calendars)
    with SandboxService(venue, match_interval_s=3600) as running:
        yield running


class TestSandboxChainSource(ChainSourceContract):
    @pytest.fixture(params=["NIFTY", "SENSEX"])
    def kit(self, request: pytest.FixtureRequest, service: SandboxService
            ) -> Iterator[ChainSourceKit]:
        underlying: str = request.param
        with SandboxClient(service.url, "chain-kit") as client:
            yield ChainSourceKit(client, underlying, EXPIRED[underlying], serves_past=True)



# --- the kit fails adapters that break the contract -----------------------------------------


class _Wrapped:
    """The sandbox client behind a ChainSource that a test breaks one way."""

    def __init__(self, client: SandboxClient) -> None:
        self.client = client

    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        return self.client.chain(underlying, expiry, strikes_each_side, at)

    def option_quotes(self, instruments: Sequence[str]) -> dict[str, ChainQuote]:
        return self.client.option_quotes(instruments)

    def futures(self, underlying: str, at: datetime | None = None) -> FuturesCurve:
        return self.client.futures(underlying, at)


class _LeavesOutWhatItDoesNotList(_Wrapped):
    def option_quotes(self, instruments: Sequence[str]) -> dict[str, ChainQuote]:
        found: dict[str, ChainQuote] = {}
        for key in instruments:
            with contextlib.suppress(BrokerError):
                found.update(self.client.option_quotes([key]))
        return found


class _IgnoresAt(_Wrapped):
    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        return self.client.chain(underlying, expiry, strikes_each_side)


class _CrossesAQuote(_Wrapped):
    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        chain = self.client.chain(underlying, expiry, strikes_each_side, at)
        row = chain.rows[0]
        crossed = replace(row, put=replace(row.put, bid=row.put.ask + 1))
        return replace(chain, rows=(crossed, *chain.rows[1:]))


class _SwapsTheColumns(_Wrapped):
    def chain(self, underlying: str, expiry: date | None = None,
              strikes_each_side: int | None = None, at: datetime | None = None
              ) -> OptionChain:
        chain = self.client.chain(underlying, expiry, strikes_each_side, at)
        return replace(chain, rows=tuple(replace(r, call=r.put, put=r.call)
                                         for r in chain.rows))


@pytest.mark.parametrize(("broken", "caught_by"), [
    (_LeavesOutWhatItDoesNotList, "test_an_unlisted_instrument_is_refused_naming_it"),
    (_IgnoresAt, "test_a_past_moment_gives_the_chain_as_it_stood_then"),
    (_CrossesAQuote, "test_quotes_are_priced_and_never_crossed"),
    (_SwapsTheColumns, "test_every_row_holds_a_call_and_a_put_of_its_expiry_and_strike"),
])
def test_the_kit_fails_an_adapter_that_breaks_the_contract(
        service: SandboxService, broken: type[_Wrapped], caught_by: str) -> None:
    with SandboxClient(service.url, "chain-kit") as client:
        kit = ChainSourceKit(broken(client), "NIFTY", EXPIRED["NIFTY"], serves_past=True)
        check = getattr(ChainSourceContract(), caught_by)
        with pytest.raises((AssertionError, pytest.fail.Exception)):  # a failed check or
            check(kit)  # a pytest.raises that saw nothing raised
        # ... while what it did not break still passes: the wrapper itself is sound.
        ChainSourceContract().test_strikes_each_side_are_honoured_on_the_strike_grid(kit, 1)
