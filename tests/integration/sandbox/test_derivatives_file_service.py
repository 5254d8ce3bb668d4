"""A sandbox built from a fleet config whose `sandbox.derivatives_file` changes NIFTY's rules
(lot size 65, weekly expiry on Thursday) serves chains, quotes, futures and ticks by those
rules over loopback — and still passes the ChainSource contract kit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.stream_ticks import LOTS_AT_BEST, VenueTicks
from fleetkit.brokers.sandbox.testing import ManualClock
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.runtime.sandbox_service import build_venue
from fleetkit.testing.chain_source_kit import ChainSourceContract, ChainSourceKit

# Thursday 10 December 2026, 11:00 IST: by the shipped rules NIFTY's weekly is Tuesday the
# 15th; by the file's, today's Thursday weekly is still listed until the close.
MORNING = datetime(2026, 12, 10, 5, 30, tzinfo=UTC)
RULES = """\
NIFTY:
  lot_size: 65
  weekly: {weekday: thursday}
"""


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> SandboxVenue:
    folder = tmp_path_factory.mktemp("fleet")
    (folder / "nse-rules.yaml").write_text(RULES, encoding="utf-8")
    text = "sandbox: {seed: 5, time_mode: real, derivatives_file: nse-rules.yaml}\n"
    config = folder / "fleet.yaml"
    config.write_text(text, encoding="utf-8")
    loaded = LoadedConfig(parse_config(text, str(config)), str(config), folder)
    return build_venue(loaded, ManualClock(MORNING))


@pytest.fixture(scope="module")
def service(venue: SandboxVenue) -> Iterator[SandboxService]:
    with SandboxService(venue, match_interval_s=3600) as running:
        yield running


@pytest.fixture
def client(service: SandboxService) -> Iterator[SandboxClient]:
    with SandboxClient(service.url, "rules-reader") as connected:
        yield connected


def test_the_chain_follows_the_files_lot_size_and_weekly_expiry_day(
        client: SandboxClient) -> None:
    chain = client.chain("NIFTY", strikes_each_side=1)
    assert chain.lot_size == 65
    assert chain.expiries == (date(2026, 12, 10), date(2026, 12, 29))  # Thursday; the monthly
    assert chain.expiry == date(2026, 12, 10)
    call = chain.rows[1].call
    assert call.instrument == f"NFO:NIFTY26D10{chain.atm_strike}CE"
    assert call.lot_size == 65 and call.open_interest % 65 == 0
    assert client.option_quotes([call.instrument])[call.instrument].lot_size == 65
    # The monthly keeps the shipped weekday: the file changed the weekly only.
    assert client.chain("NIFTY", date(2026, 12, 29), 0).rows[0].put.instrument.startswith(
        "NFO:NIFTY26DEC")


def test_the_rest_answer_and_the_futures_carry_the_new_lot_size(
        service: SandboxService, client: SandboxClient) -> None:
    key = client.chain("NIFTY", strikes_each_side=0).rows[0].put.instrument
    answer = httpx.get(f"{service.url}/v1/quotes", params={"instruments": key}).json()
    assert answer["data"][key]["lot_size"] == 65
    assert {future.lot_size for future in client.futures("NIFTY").futures} == {65}


def test_underlyings_the_file_does_not_name_keep_the_shipped_rules(
        client: SandboxClient) -> None:
    bank = client.chain("BANKNIFTY", strikes_each_side=0)
    assert bank.lot_size == 35 and bank.expiries == (date(2026, 12, 29),)
    assert client.chain("SENSEX", strikes_each_side=0).lot_size == 20


def test_the_quote_stream_lists_the_thursday_weekly(venue: SandboxVenue,
                                                    client: SandboxClient) -> None:
    key = client.chain("NIFTY", strikes_each_side=0).rows[0].call.instrument
    tick = VenueTicks(venue).tick(key)
    assert tick.bid_quantity == 65 * LOTS_AT_BEST


class TestTheOverriddenSandboxKeepsTheContract(ChainSourceContract):
    @pytest.fixture
    def kit(self, client: SandboxClient) -> Iterator[ChainSourceKit]:
        # The shipped rules' Tuesday weekly is no contract under the file's.
        yield ChainSourceKit(client, "NIFTY", "NFO:NIFTY26D1524000CE", serves_past=True)

