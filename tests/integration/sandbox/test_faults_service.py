"""Fault injection through the real service and HTTP client: what each fault looks like to a
bot, the admin API that switches faults live, and the counters that prove invariants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from fleetkit.brokers.sandbox.api import SandboxApi
from fleetkit.brokers.sandbox.book import SubmissionCounts
from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.faults import INJECTED_REJECT, NEVER_TRADED, FaultConfig
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.sqlbook import SCHEMA_VERSION, SqlBook
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.core.errors import BadBrokerReplyError, OrderRejectedError, TransientBrokerError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest
from fleetkit.sqlutil.engine import make_engine

D = Decimal
BOT = "bot/1:demo"
ALL_OFF = FaultConfig()


def market(cid: str, quantity: str = "1") -> OrderRequest:
    return OrderRequest(cid, "NYSE:AAA", Side.BUY, OrderType.MARKET, D(quantity))


def limit(cid: str, price: str, quantity: str = "1") -> OrderRequest:
    return OrderRequest(cid, "NYSE:AAA", Side.BUY, OrderType.LIMIT, D(quantity), D(price))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NEW_YORK_MIDDAY)


@pytest.fixture
def venue(clock: ManualClock) -> SandboxVenue:
    return build_venue(ScriptedPrices(), clock)


@pytest.fixture
def service(venue: SandboxVenue) -> Iterator[SandboxService]:
    with SandboxService(venue) as running:
        yield running


@pytest.fixture
def client(service: SandboxService) -> Iterator[SandboxClient]:
    # No quick retries: each fault here must reach the caller exactly as injected.
    with SandboxClient(service.url, BOT, timeout_s=2.0, retries=0) as connected:
        yield connected


def with_faults(client: SandboxClient, **settings: Any) -> FaultConfig:
    return client.set_faults(FaultConfig(**settings))


# --- what each fault looks like to a bot ------------------------------------------------


def test_a_dropped_ack_raises_transient_yet_a_lookup_finds_the_order(
        client: SandboxClient) -> None:
    with_faults(client, drop_ack_probability=1.0)

    with pytest.raises(TransientBrokerError, match="disconnected without sending a response"):
        client.submit(market("lost-ack"))

    with_faults(client)
    found = client.lookup("lost-ack")
    assert found is not None and found.status is OrderStatus.FILLED
    stats = client.stats()
    assert stats.faults["drop_ack"] == 1
    # The client did not quietly send it again: the venue saw it exactly once.
    assert stats.accounts == {BOT: SubmissionCounts(1, 0, 0)}


def test_an_injected_5xx_raises_transient_and_places_nothing(client: SandboxClient) -> None:
    with_faults(client, error_5xx_probability=1.0)

    with pytest.raises(TransientBrokerError, match="HTTP 503 unavailable"):
        client.submit(market("busy"))

    with_faults(client)
    assert client.lookup("busy") is None
    assert client.stats().faults["error_5xx"] == 1


def test_a_refused_connection_raises_transient_and_places_nothing(
        client: SandboxClient) -> None:
    with_faults(client, refuse_probability=1.0)

    with pytest.raises(TransientBrokerError):
        client.submit(market("refused"))
    with pytest.raises(TransientBrokerError):
        client.positions()

    with_faults(client)
    assert client.lookup("refused") is None
    assert client.positions() == []  # the pool opened a fresh connection
    assert client.stats().faults["refuse"] == 2


def test_an_injected_reject_raises_and_a_lookup_shows_it_rejected(
        client: SandboxClient) -> None:
    with_faults(client, reject_probability=1.0)

    with pytest.raises(OrderRejectedError, match=INJECTED_REJECT):
        client.submit(market("refused-by-venue"))

    found = client.lookup("refused-by-venue")
    assert found is not None and found.status is OrderStatus.REJECTED
    assert found.reason == INJECTED_REJECT
    assert client.stats().accounts[BOT] == SubmissionCounts(1, 0, 1)


def test_duplicate_fills_show_up_twice_in_fill_pages(client: SandboxClient) -> None:
    with_faults(client, duplicate_fill_probability=1.0)
    [first_fill] = client.submit(market("dup-1")).fills
    [second_fill] = client.submit(market("dup-2")).fills

    page = client.fills_since(None)
    again = client.fills_since(page.cursor)

    ids = [fill.broker_fill_id for fill in page.fills]
    assert sorted(set(ids)) == sorted({first_fill.broker_fill_id, second_fill.broker_fill_id})
    assert len(ids) == 3
    assert page.cursor == second_fill.broker_fill_id
    assert [fill.broker_fill_id for fill in again.fills] in (
        [first_fill.broker_fill_id], [second_fill.broker_fill_id])  # one already delivered
    assert client.stats().faults["duplicate_fill"] == 2


def test_delayed_fills_arrive_only_after_the_delay(client: SandboxClient,
                                                   clock: ManualClock) -> None:
    with_faults(client, delay_fills_s=60.0)

    report = client.submit(market("slow-fill", "2"))

    assert report.fills == () and report.status is OrderStatus.FILLED
    assert client.fills_since(None).fills == ()
    clock.advance(timedelta(seconds=59))
    assert client.fills_since(None).fills == ()
    clock.advance(timedelta(seconds=2))
    [fill] = client.fills_since(None).fills
    assert (fill.client_order_id, fill.quantity) == ("slow-fill", D(2))


def test_a_cancel_that_arrives_too_late_answers_filled(client: SandboxClient) -> None:
    client.submit(limit("resting", "95.00", "4"))
    with_faults(client, fill_after_cancel_probability=1.0)

    answer = client.cancel("resting")

    assert (answer.status, answer.filled_quantity) == (OrderStatus.FILLED, D(4))
    [fill] = client.fills_since(None).fills
    assert fill.price == D("95.00")
    assert client.open_orders() == []


def test_a_latency_spike_past_the_timeout_is_transient_with_the_order_placed(
        service: SandboxService) -> None:
    with SandboxClient(service.url, BOT, timeout_s=0.1) as impatient:
        with_faults(impatient, latency_spike_probability=1.0, latency_spike_ms=400)

        with pytest.raises(TransientBrokerError, match="Timeout"):
            impatient.submit(market("slow-answer"))

        with_faults(impatient)
        found = impatient.lookup("slow-answer")
        assert found is not None and found.status is OrderStatus.FILLED


# --- garbage ----------------------------------------------------------------------------

CALLS: dict[str, Callable[[SandboxClient], object]] = {
    "submit": lambda client: client.submit(limit("garbled", "99.00")),
    "lookup": lambda client: client.lookup("held"),
    "cancel": lambda client: client.cancel("held"),
    "open orders": lambda client: client.open_orders(),
    "fills": lambda client: client.fills_since(None),
    "positions": lambda client: client.positions(),
    "balances": lambda client: client.balances(),
}
VISIBLE = [(call, kind) for call in CALLS
           for kind in ("missing_field", "nan_price", "negative_price")
           if (call, kind) != ("balances", "negative_price")]  # a negative balance is valid
VISIBLE += [(call, "unknown_order_fill") for call in ("submit", "lookup", "cancel")]


@pytest.mark.parametrize(("call", "kind"), VISIBLE)
def test_garbage_the_client_can_see_is_a_bad_broker_reply(client: SandboxClient, call: str,
                                                          kind: str) -> None:
    client.submit(market("bought"))
    client.submit(limit("held", "90.00"))
    with_faults(client, garbage_probability=1.0, garbage_kinds=[kind])

    with pytest.raises(BadBrokerReplyError):
        CALLS[call](client)

    assert client.stats().faults[f"garbage_{kind}"] == 1


@pytest.mark.parametrize("kind", ["unknown_order_fill", "unknown_instrument_fill"])
def test_fills_for_unknown_orders_or_instruments_parse_and_are_the_ledgers_to_refuse(
        client: SandboxClient, kind: str) -> None:
    # Well-formed, so no parser can refuse them; the ledger does (tested with the ledger).
    client.submit(market("real"))
    with_faults(client, garbage_probability=1.0, garbage_kinds=[kind])

    page = client.fills_since(None)

    made_up = page.fills[-1]
    assert made_up.client_order_id != "real" or made_up.instrument == NEVER_TRADED
    assert page.fills[0].client_order_id == "real"


# --- the admin API ----------------------------------------------------------------------


def test_fault_settings_round_trip_through_the_admin_api(client: SandboxClient) -> None:
    assert client.faults() == ALL_OFF

    wanted = FaultConfig(seed=42, drop_ack_probability=0.1, latency_spike_ms=5,
                         latency_spike_probability=0.5, garbage_kinds=("nan_price",))

    assert client.set_faults(wanted) == wanted
    assert client.faults() == wanted
    assert client.set_faults(ALL_OFF) == ALL_OFF


def test_bad_fault_settings_are_refused_naming_the_setting(service: SandboxService,
                                                           client: SandboxClient) -> None:
    with httpx.Client(base_url=service.url) as http:
        unknown = http.put("/v1/admin/faults", json={"drop_acks": 1})
        out_of_range = http.put("/v1/admin/faults", json={"reject_probability": 2})
        not_json = http.put("/v1/admin/faults", content=b"{")

    assert unknown.status_code == 400 and "drop_acks" in unknown.json()["message"]
    assert out_of_range.status_code == 400
    assert "reject_probability" in out_of_range.json()["message"]
    assert not_json.status_code == 400
    assert client.faults() == ALL_OFF


def test_health_answers_with_every_fault_certain(client: SandboxClient) -> None:
    with_faults(client, refuse_probability=1.0, error_5xx_probability=1.0,
                garbage_probability=1.0)

    assert client.health()["status"] == "ok"
    assert client.quote("NYSE:AAA").price == D("100.00")
    assert client.stats().faults["requests"] == 0


def test_faults_given_when_the_service_starts_are_in_force(venue: SandboxVenue) -> None:
    config = FaultConfig(reject_probability=1.0)
    with SandboxService(venue, faults=config) as service, \
            SandboxClient(service.url, BOT) as client:
        assert client.faults() == config
        with pytest.raises(OrderRejectedError):
            client.submit(market("at-start"))


def test_a_service_with_its_own_handler_has_no_fault_settings(venue: SandboxVenue) -> None:
    with SandboxService(venue, handler=SandboxApi(venue)) as service, \
            SandboxClient(service.url, BOT) as client:
        with pytest.raises(BadBrokerReplyError, match="no_fault_injection"):
            client.faults()
        assert client.stats().faults == {}


def test_stats_count_submissions_and_resends_per_account(service: SandboxService,
                                                         client: SandboxClient) -> None:
    client.submit(market("once"))
    client.submit(market("once"))  # a resend: the chaos suite asserts this never happens
    with SandboxClient(service.url, "other") as other:
        other.submit(market("x"))

    stats = client.stats()

    assert stats.accounts == {BOT: SubmissionCounts(2, 1, 0), "other": SubmissionCounts(1, 0, 0)}
    assert (stats.submissions, stats.duplicates) == (3, 1)


def test_submissions_page_through_with_their_times(client: SandboxClient,
                                                   clock: ManualClock) -> None:
    for n in range(3):
        client.submit(market(f"s-{n}"))
        clock.advance(timedelta(minutes=1))

    first = client.submissions(BOT, limit=2)
    rest = client.submissions(BOT, after=first.cursor, limit=2)

    assert first.more and not rest.more
    assert [(s.client_order_id, s.received_at) for s in first.submissions + rest.submissions] \
        == [(f"s-{n}", NEW_YORK_MIDDAY + timedelta(minutes=n)) for n in range(3)]
    assert client.submissions("nobody").submissions == ()


# --- the SQL book keeps submissions -----------------------------------------------------


def test_submissions_survive_a_restart_on_a_sql_book(database_url: str,
                                                     clock: ManualClock) -> None:
    for _ in range(2):
        book = SqlBook(database_url)
        try:
            venue = build_venue(ScriptedPrices(), clock, book)
            venue.submit(BOT, market("kept"))
            venue.reject("other", market("no"), INJECTED_REJECT)
        finally:
            book.close()

    book = SqlBook(database_url)
    try:
        venue = build_venue(ScriptedPrices(), clock, book)
        assert venue.submission_counts() == {BOT: SubmissionCounts(2, 1, 0),
                                             "other": SubmissionCounts(2, 1, 1)}
        page, more = venue.submissions(BOT)
        assert [s.duplicate for s in page] == [False, True] and not more
        assert page[0].status is page[1].status is OrderStatus.FILLED
        everyone, _ = venue.submissions(None)
        assert [s.account for s in everyone] == [BOT, "other", BOT, "other"]
    finally:
        book.close()


def test_a_version_1_sandbox_book_is_upgraded_in_place(database_url: str,
                                                       clock: ManualClock) -> None:
    book = SqlBook(database_url)
    build_venue(ScriptedPrices(), clock, book).submit(BOT, market("before"))
    book.close()
    engine = make_engine(database_url)
    with engine.begin() as conn:  # what a version-1 book looked like
        conn.execute(text("DROP TABLE sandbox_submissions"))
        conn.execute(text("UPDATE sandbox_meta SET value = '1' WHERE key = 'schema_version'"))

    book = SqlBook(database_url)
    try:
        venue = build_venue(ScriptedPrices(), clock, book)
        assert venue.lookup(BOT, "before") is not None
        venue.submit(BOT, market("after"))
        assert venue.submission_counts() == {BOT: SubmissionCounts(1, 0, 0)}
    finally:
        book.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM sandbox_meta WHERE key = 'schema_version'")
                            ).scalar_one() == SCHEMA_VERSION
    engine.dispose()
