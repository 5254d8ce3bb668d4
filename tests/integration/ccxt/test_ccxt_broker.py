"""The live ccxt adapter against a fake Binance on loopback: the broker kit's contract, the
venue's grid and minimums, every failure mode, and credentials that never leak."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from fleetkit.brokers.ccxt.broker import CcxtBroker
from fleetkit.brokers.ccxt.credentials import Secret, load_credentials
from fleetkit.brokers.ccxt.venue import CcxtVenue
from fleetkit.core.errors import (
    ConfigError,
    CredentialsError,
    OrderRejectedError,
    TransientBrokerError,
)
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest
from fleetkit.testing.broker_kit import BrokerContract, BrokerKit
from fleetkit.testing.fake_exchange import Fault
from tests.integration.ccxt.live_venue import API_SECRET, BTC, ETH, Live, venue_spec
from tests.support import eventually

D = Decimal


class TestCcxtBrokerContract(BrokerContract):
    @pytest.fixture
    def kit(self, live: Live) -> Iterator[BrokerKit]:
        yield BrokerKit(broker=live.broker, instrument=BTC, quantity=D("0.001"),
                        resting_price=D("30000"), too_large=D("5"), timeout_s=5.0)


def market(cid: str, quantity: str = "0.001", instrument: str = BTC) -> OrderRequest:
    return OrderRequest(cid, instrument, Side.BUY, OrderType.MARKET, D(quantity))


def test_instruments_come_from_the_venue_grid(live: Live) -> None:
    inst = live.broker._instruments[BTC]
    assert (inst.tick_size, inst.lot_size, inst.min_quantity) == (D("0.01"), D("0.00001"),
                                                                  D("0.0001"))
    assert inst.currency == "USDT"


def test_off_grid_small_or_tiny_orders_are_refused_unsent(live: Live) -> None:
    live.broker.quote(ETH)  # the adapter values market orders at the last quote
    cases = [("0.000015", BTC, "step"), ("0.00005", BTC, "minimum"),
             ("0.0010", ETH, "notional")]  # 0.001 ETH is 3 USDT, under 5
    for n, (quantity, instrument, reason) in enumerate(cases):
        with pytest.raises(OrderRejectedError, match=reason):
            live.broker.submit(market(f"grid-{n}", quantity, instrument))
    limit = OrderRequest("grid-9", BTC, Side.BUY, OrderType.LIMIT, D("0.001"), D("50000.005"))
    with pytest.raises(OrderRejectedError, match="tick"):
        live.broker.submit(limit)
    assert live.exchange.submissions == []


def test_market_data_quotes_and_complete_bars(live: Live) -> None:
    quote = live.broker.quote(BTC)
    assert quote.price == D("60000") and quote.instrument == BTC
    clock = live.broker.market_clock("CRYPTO")
    assert clock.is_open and clock.next_close is None
    end = clock.now
    bars = live.broker.bars(BTC, 60, end.replace(microsecond=0) - (end - end), end)
    assert bars == [] or all(b.close == 60000.0 for b in bars)


@pytest.mark.parametrize("kind", ["error_500", "rate_limit", "refuse"])
def test_a_refused_submission_is_transient_and_leaves_nothing(live: Live, kind: str) -> None:
    live.exchange.faults.add(Fault(kind, path="/api/v3/order", method="POST"))
    with pytest.raises(TransientBrokerError):
        live.broker.submit(market("fault-1"))
    assert live.broker.lookup("fault-1") is None  # never placed: safe to void after grace


@pytest.mark.parametrize("status", [None, 503])
def test_a_lost_ack_is_transient_and_the_order_is_found_by_lookup(
        live: Live, status: int | None) -> None:
    live.exchange.faults.add(Fault("ack_lost", path="/api/v3/order", method="POST",
                                   status=status))
    with pytest.raises(TransientBrokerError):
        live.broker.submit(market("lost-1"))
    found = live.broker.lookup("lost-1")
    assert found is not None and found.status is OrderStatus.FILLED
    assert len(live.exchange.submissions) == 1


def test_a_timed_out_submission_is_settled_by_lookup_not_resent(live: Live) -> None:
    live.exchange.faults.add(Fault("timeout", path="/api/v3/order", method="POST",
                                   delay_s=3.0))
    with pytest.raises(TransientBrokerError, match="RequestTimeout"):
        live.broker.submit(market("slow-1"))
    eventually(lambda: live.broker.lookup("slow-1") is not None, 5.0, "the late order is found")
    assert len(live.exchange.submissions) == 1


def test_a_resend_of_an_open_order_answers_with_the_original(live: Live) -> None:
    resting = OrderRequest("dup-1", BTC, Side.BUY, OrderType.LIMIT, D("0.001"), D("30000"))
    first = live.broker.submit(resting)
    again = live.broker.submit(resting)
    assert again.broker_order_id == first.broker_order_id
    assert len([o for o in live.exchange.orders() if o.client_order_id == "dup-1"]) == 1


def test_fills_carry_the_fee_in_quote_currency_and_page_by_trade_id(live: Live) -> None:
    for n in range(3):
        live.broker.submit(market(f"fee-{n}"))
    live.broker.submit(market("fee-eth", "0.01", ETH))
    page = live.broker.fills_since(None)
    assert sorted(f.client_order_id for f in page.fills) == ["fee-0", "fee-1", "fee-2",
                                                             "fee-eth"]
    btc = [f for f in page.fills if f.instrument == BTC]
    assert all(f.fee == D("0.06") for f in btc)  # 0.1% of 60 USDT
    later = live.broker.fills_since(page.cursor)
    assert later.fills == ()
    live.broker.submit(market("fee-3"))
    assert [f.client_order_id for f in live.broker.fills_since(page.cursor).fills] == ["fee-3"]


def test_fills_of_orders_placed_before_a_restart_still_carry_our_client_id(live: Live) -> None:
    live.broker.submit(market("before-1"))
    fresh = CcxtBroker(live.venue, live.broker._instruments, live.broker._clock)
    assert [f.client_order_id for f in fresh.fills_since(None).fills] == ["before-1"]


def test_positions_are_balances_less_what_config_reserves(live: Live) -> None:
    live.broker.submit(market("pos-1", "0.002"))
    held = {p.instrument: p.quantity for p in live.broker.positions()}
    assert held == {BTC: D("0.002"), ETH: D(0)}
    reserved = CcxtVenue(venue_spec(live.server.url, reserved={"BTC": D("0.0005")}),
                         private=True)
    other = CcxtBroker(reserved, live.broker._instruments, live.broker._clock)
    assert {p.instrument: p.quantity for p in other.positions()}[BTC] == D("0.0015")


def test_wrong_credentials_are_a_credentials_error_that_never_shows_the_secret(
        live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("KIT_SECRET", "wrong-secret-value-ABCDEFG")
    venue = CcxtVenue(venue_spec(live.server.url), private=True)
    broker = CcxtBroker(venue, live.broker._instruments, live.broker._clock)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialsError) as refused:
        broker.positions()
    shown = " ".join([str(refused.value), repr(refused.value), caplog.text, repr(venue.spec)])
    assert "wrong-secret-value-ABCDEFG" not in shown and API_SECRET not in shown
    monkeypatch.setenv("KIT_SECRET", API_SECRET)
    venue.refresh_credentials()  # a refresh re-reads the environment and proves the key
    assert broker.positions()


def test_missing_credentials_name_the_variable_to_set(live: Live,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_SECRET")
    with pytest.raises(ConfigError, match=r"\$KIT_SECRET, which is not set: export KIT_SECRET"):
        CcxtVenue(venue_spec(live.server.url), private=True)


def test_a_secret_prints_as_stars_everywhere() -> None:
    secret = Secret("hunter2-hunter2")
    assert "hunter2" not in f"{secret} {secret!r} {[secret]} {dict(s=secret)}"
    assert secret.reveal() == "hunter2-hunter2"


def test_credentials_can_come_from_files(tmp_path: object) -> None:
    from pathlib import Path

    from fleetkit.brokers.ccxt.credentials import CredentialSources

    folder = Path(str(tmp_path))
    (folder / "key").write_text("file-key\n")
    (folder / "secret").write_text("file-secret\n")
    creds = load_credentials(CredentialSources(api_key_file=str(folder / "key"),
                                               secret_file=str(folder / "secret")), "x")
    assert creds is not None
    assert (creds.api_key.reveal(), creds.secret.reveal()) == ("file-key", "file-secret")


def test_a_key_revoked_mid_run_is_a_credentials_error_not_an_outage(live: Live) -> None:
    assert live.broker.positions()  # one good private call first (ccxt then says DDoS)
    live.exchange.api_key = "a-new-key-the-bot-does-not-have"
    with pytest.raises(CredentialsError):
        live.broker.positions()
