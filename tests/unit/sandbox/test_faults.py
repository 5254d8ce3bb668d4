"""Fault injection decisions: settings, seeded determinism, each fault kind and its counter,
and the venue's submission counters that chaos tests check invariants with."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from fleetkit.brokers.sandbox import book as book_module
from fleetkit.brokers.sandbox.api import NO_ANSWER, ApiRequest, ApiResponse
from fleetkit.brokers.sandbox.book import MemoryBook, SubmissionCounts
from fleetkit.brokers.sandbox.faults import (
    COUNTER_NAMES,
    GARBAGE_KINDS,
    INJECTED_REJECT,
    FaultConfig,
    FaultInjector,
    Route,
    account_route,
    fault_injecting_api,
)
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.brokers.sandbox.wire import (
    Reader,
    balances_from_dict,
    dumps,
    fill_page_from_dict,
    list_from,
    loads,
    order_report_from_dict,
    order_request_to_dict,
    position_from_dict,
)
from fleetkit.config.models import FleetConfig, SandboxFaultSettings
from fleetkit.core.errors import BadBrokerReplyError, ConfigError
from fleetkit.core.orders import OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderRequest

D = Decimal
BOT = "bot-1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NEW_YORK_MIDDAY)


@pytest.fixture
def venue(clock: ManualClock) -> SandboxVenue:
    return build_venue(ScriptedPrices(), clock)


def injector(venue: SandboxVenue, **settings: Any) -> FaultInjector:
    return fault_injecting_api(venue, FaultConfig(**settings))


def submit(cid: str, quantity: str = "1", *, limit: str | None = None,
           account: str = BOT) -> ApiRequest:
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    order = OrderRequest(cid, "NYSE:AAA", Side.BUY, kind, D(quantity),
                         None if limit is None else D(limit))
    return ApiRequest("POST", ("v1", "accounts", account, "orders"), {},
                      dumps(order_request_to_dict(order)))


def get(*segments: str, **query: str) -> ApiRequest:
    return ApiRequest("GET", ("v1", *segments), query)


def fills(after: str | None = None, account: str = BOT) -> ApiRequest:
    return get("accounts", account, "fills", **({} if after is None else {"after": after}))


def cancel(cid: str) -> ApiRequest:
    return ApiRequest("DELETE", ("v1", "accounts", BOT, "orders", cid))


def fill_ids(response: ApiResponse) -> list[str]:
    return [fill["broker_fill_id"] for fill in response.payload["fills"]]


# --- settings ---------------------------------------------------------------------------


def test_every_fault_is_off_by_default() -> None:
    config = FaultConfig()

    assert not config.active
    assert config.garbage_kinds == GARBAGE_KINDS


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, math.inf, True, "0.5", None])
def test_a_probability_outside_zero_to_one_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="reject_probability"):
        FaultConfig(reject_probability=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"latency_spike_ms": -1}, "latency_spike_ms must be between 0 and 60000"),
    ({"latency_spike_ms": 1.5}, "latency_spike_ms must be a whole number"),
    ({"delay_fills_s": -3}, "delay_fills_s must be between 0 and 86400"),
    ({"seed": "7"}, "seed must be a whole number"),
    ({"garbage_kinds": ["nan_price", "confetti"]}, "garbage_kinds must list some of"),
    ({"garbage_kinds": []}, "garbage_kinds must list some of"),
    ({"garbage_kinds": "nan_price"}, "garbage_kinds must be a list"),
])
def test_bad_settings_are_refused_naming_the_setting(settings: dict[str, Any],
                                                      fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        FaultConfig.from_mapping(settings)


def test_unknown_settings_are_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown fault setting.*drop_acks.*known: seed"):
        FaultConfig.from_mapping({"drop_acks": 0.5})


def test_settings_round_trip_through_json() -> None:
    config = FaultConfig(seed=5, drop_ack_probability=0.25, latency_spike_ms=40,
                         delay_fills_s=1.5, garbage_kinds=("nan_price",))

    assert FaultConfig.from_mapping(loads(dumps(config.to_dict()))) == config
    assert config.active


def test_settings_from_text_change_only_what_is_named() -> None:
    base = FaultConfig(reject_probability=0.5)

    changed = base.with_text({"seed": "9", "drop_ack_probability": "0.1",
                              "garbage_kinds": "nan_price, missing_field"})

    assert changed == FaultConfig(seed=9, reject_probability=0.5, drop_ack_probability=0.1,
                                  garbage_kinds=("nan_price", "missing_field"))


@pytest.mark.parametrize(("assignment", "fragment"), [
    ({"seed": "x"}, "seed='x': expected a whole number"),
    ({"refuse_probability": "lots"}, "expected a number"),
    ({"refuse_probability": "2"}, "between 0 and 1"),
    ({"nope": "1"}, "unknown fault setting 'nope'"),
])
def test_settings_from_bad_text_are_refused(assignment: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        FaultConfig().with_text(assignment)


def test_the_config_file_section_mirrors_the_fault_config_field_for_field() -> None:
    assert list(SandboxFaultSettings.model_fields) == [f.name for f in fields(FaultConfig)]
    assert FaultConfig.from_mapping(SandboxFaultSettings().model_dump()) == FaultConfig()
    assert set(SandboxFaultSettings.model_fields["garbage_kinds"].default_factory()  # type: ignore[misc, call-arg]
               ) == set(GARBAGE_KINDS)


def test_the_config_files_faults_become_the_services_fault_config() -> None:
    from fleetkit.runtime.sandbox_service import fault_config

    config = FleetConfig.model_validate(
        {"sandbox": {"faults": {"seed": 3, "drop_ack_probability": 0.2,
                                "garbage_kinds": ["nan_price"]}}})
    duplicated = FleetConfig.model_validate(
        {"sandbox": {"faults": {"garbage_kinds": ["nan_price", "nan_price"]}}})

    assert fault_config(config) == FaultConfig(seed=3, drop_ack_probability=0.2,
                                               garbage_kinds=("nan_price",))
    assert fault_config(FleetConfig()) == FaultConfig()
    with pytest.raises(ConfigError, match=r"sandbox\.faults: garbage_kinds"):
        fault_config(duplicated)


# --- which requests are touched ---------------------------------------------------------


def test_only_account_routes_are_subject_to_faults() -> None:
    assert account_route(submit("c")) == (BOT, Route.SUBMIT)
    assert account_route(cancel("c")) == (BOT, Route.CANCEL)
    assert account_route(fills()) == (BOT, Route.FILLS)
    assert account_route(get("health")) is None
    assert account_route(get("quote", instrument="NYSE:AAA")) is None
    assert account_route(get("admin", "stats")) is None


def test_health_market_data_and_admin_answer_cleanly_with_every_fault_certain(
        venue: SandboxVenue) -> None:
    everything = {name: 1.0 for name in ("refuse_probability", "error_5xx_probability",
                                         "garbage_probability", "drop_ack_probability")}
    handler = injector(venue, **everything)

    for request in (get("health"), get("quote", instrument="NYSE:AAA"), get("instruments"),
                    get("clock", market="NYSE"), get("admin", "faults"),
                    get("admin", "stats")):
        assert handler(request).status == 200, request

    assert handler.state.counters()["requests"] == 0


def test_with_faults_off_requests_pass_through_uncounted(venue: SandboxVenue) -> None:
    handler = injector(venue)

    assert handler(submit("plain")).payload["status"] == "filled"
    assert handler(fills()).status == 200
    assert set(handler.state.counters().values()) == {0}
    assert set(handler.state.counters()) == set(COUNTER_NAMES)


# --- determinism ------------------------------------------------------------------------

CHAOS = {"seed": 11, "refuse_probability": 0.2, "error_5xx_probability": 0.2,
         "drop_ack_probability": 0.2, "reject_probability": 0.2,
         "duplicate_fill_probability": 0.3, "garbage_probability": 0.2}


def run_requests(handler: FaultInjector, count: int = 60) -> list[tuple[int, bytes]]:
    answers = []
    for n in range(count):
        request = (submit(f"o-{n}"), fills(), get("accounts", BOT, "positions"))[n % 3]
        response = handler(request)
        answers.append((response.status, dumps(response.payload)))
    return answers


def test_the_same_seed_and_requests_give_the_same_faults(clock: ManualClock) -> None:
    first = run_requests(injector(build_venue(ScriptedPrices(), clock), **CHAOS))
    again = run_requests(injector(build_venue(ScriptedPrices(), clock), **CHAOS))
    other = run_requests(injector(build_venue(ScriptedPrices(), clock), **{**CHAOS, "seed": 12}))

    assert first == again
    assert first != other
    assert {status for status, _ in first} >= {NO_ANSWER, 200, 503}


def test_switching_another_fault_on_does_not_move_the_refusals(clock: ManualClock) -> None:
    def refused(**more: float) -> list[int]:
        handler = injector(build_venue(ScriptedPrices(), clock), refuse_probability=0.3,
                           **more)
        return [n for n, (status, _) in enumerate(run_requests(handler)) if status == NO_ANSWER]

    alone = refused()

    assert alone == refused(garbage_probability=0.5, duplicate_fill_probability=0.5)
    assert 5 < len(alone) < 35


def test_setting_a_config_again_replays_its_faults(venue: SandboxVenue) -> None:
    handler = injector(venue, seed=4, refuse_probability=0.5)
    first = [handler(get("accounts", BOT, "positions")).status for _ in range(30)]

    handler.state.replace_settings({"seed": 4, "refuse_probability": 0.5})

    assert [handler(get("accounts", BOT, "positions")).status for _ in range(30)] == first


# --- each fault -------------------------------------------------------------------------


def test_a_refused_request_is_never_processed(venue: SandboxVenue) -> None:
    handler = injector(venue, refuse_probability=1.0)

    assert handler(submit("lost")).status == NO_ANSWER
    assert venue.lookup(BOT, "lost") is None
    assert venue.submission_counts() == {}
    assert handler.state.counters()["refuse"] == 1


def test_an_injected_5xx_is_answered_without_processing(venue: SandboxVenue) -> None:
    handler = injector(venue, error_5xx_probability=1.0)

    response = handler(submit("lost"))

    assert (response.status, response.payload["error"]) == (503, "unavailable")
    assert venue.lookup(BOT, "lost") is None
    assert handler.state.counters()["error_5xx"] == 1


def test_a_dropped_ack_leaves_the_order_at_the_venue(venue: SandboxVenue) -> None:
    handler = injector(venue, drop_ack_probability=1.0)

    assert handler(submit("sent")).status == NO_ANSWER

    found = venue.lookup(BOT, "sent")
    assert found is not None and found.status is OrderStatus.FILLED
    assert venue.submission_counts() == {BOT: SubmissionCounts(1, 0, 0)}
    assert handler.state.counters()["drop_ack"] == 1


def test_a_dropped_ack_applies_to_submits_only(venue: SandboxVenue) -> None:
    handler = injector(venue, drop_ack_probability=1.0)

    assert handler(fills()).status == 200
    assert handler(get("accounts", BOT, "orders", "nothing")).status == 404


def test_an_injected_reject_is_stored_as_rejected(venue: SandboxVenue) -> None:
    handler = injector(venue, reject_probability=1.0)

    answer = handler(submit("no"))

    assert (answer.payload["status"], answer.payload["reason"]) == ("rejected", INJECTED_REJECT)
    found = venue.lookup(BOT, "no")
    assert found is not None and found.status is OrderStatus.REJECTED
    assert found.reason == INJECTED_REJECT
    assert venue.fills_since(BOT, None).fills == ()
    assert venue.submission_counts() == {BOT: SubmissionCounts(1, 0, 1)}
    assert handler.state.counters()["reject"] == 1


def test_an_injected_reject_of_a_known_order_changes_nothing_and_counts_a_resend(
        venue: SandboxVenue) -> None:
    first = injector(venue)(submit("known"))

    handler = injector(venue, reject_probability=1.0)
    again = handler(submit("known"))

    assert again.payload["status"] == first.payload["status"] == "filled"
    assert venue.submission_counts() == {BOT: SubmissionCounts(2, 1, 0)}
    assert handler.state.counters()["reject"] == 0


def test_an_unreadable_order_is_a_bad_request_even_when_rejects_are_on(
        venue: SandboxVenue) -> None:
    handler = injector(venue, reject_probability=1.0)
    garbage = ApiRequest("POST", ("v1", "accounts", BOT, "orders"), {}, b"{nope")

    assert handler(garbage).status == 400


def test_fills_are_withheld_until_they_are_old_enough(venue: SandboxVenue,
                                                      clock: ManualClock) -> None:
    handler = injector(venue, delay_fills_s=30.0)
    early = handler(submit("early"))
    clock.advance(timedelta(seconds=20))
    handler(submit("late"))

    assert early.payload["fills"] == [] and early.payload["status"] == "filled"
    nothing = handler(fills())
    assert nothing.payload == {"fills": [], "cursor": None, "more": False}

    clock.advance(timedelta(seconds=11))
    first = handler(fills())
    assert [f["client_order_id"] for f in first.payload["fills"]] == ["early"]
    assert (first.payload["cursor"], first.payload["more"]) == (fill_ids(first)[0], False)
    assert handler(fills(after=first.payload["cursor"])).payload["fills"] == []

    clock.advance(timedelta(seconds=20))
    rest = handler(fills(after=first.payload["cursor"]))
    assert [f["client_order_id"] for f in rest.payload["fills"]] == ["late"]
    assert handler.state.counters()["delay_fills"] == 5  # answers that held a fill back


def test_a_fill_page_repeats_its_own_fills_and_ones_delivered_before(
        venue: SandboxVenue) -> None:
    handler = injector(venue, duplicate_fill_probability=1.0)
    handler(submit("a"))
    handler(submit("b"))

    page = handler(fills())
    ids = fill_ids(page)
    assert sorted(set(ids)) == ["1", "2"] and len(ids) == 3
    assert page.payload["cursor"] == "2"

    handler(submit("c"))
    later = fill_ids(handler(fills(after="2")))
    assert later.count("3") == 2 and len(later) == 3 and set(later) - {"3"} <= {"1", "2"}
    assert handler.state.counters()["duplicate_fill"] == 3  # one copy, then two


def test_a_cancel_that_arrives_too_late_finds_the_order_filled(venue: SandboxVenue) -> None:
    handler = injector(venue, fill_after_cancel_probability=1.0)
    handler(submit("resting", "3", limit="90.00"))

    answer = handler(cancel("resting"))

    assert (answer.payload["status"], answer.payload["filled_quantity"]) == ("filled", "3")
    [fill] = venue.fills_since(BOT, None).fills
    assert (fill.quantity, fill.price) == (D(3), D("90.00"))  # never worse than the limit
    assert handler.state.counters()["fill_after_cancel"] == 1


def test_a_late_cancel_of_a_finished_order_is_an_ordinary_cancel(venue: SandboxVenue) -> None:
    handler = injector(venue, fill_after_cancel_probability=1.0)
    handler(submit("done"))

    assert handler(cancel("done")).payload["status"] == "filled"
    assert handler(cancel("never")).status == 404
    assert handler.state.counters()["fill_after_cancel"] == 0


def test_a_fill_races_a_cancel_only_while_the_market_is_open(venue: SandboxVenue,
                                                             clock: ManualClock) -> None:
    handler = injector(venue, fill_after_cancel_probability=1.0)
    handler(submit("resting", limit="90.00"))
    clock.advance(timedelta(hours=8))  # New York has closed

    assert handler(cancel("resting")).payload["status"] == "cancelled"


def test_a_latency_spike_sleeps_before_answering(venue: SandboxVenue,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("fleetkit.brokers.sandbox.faults.time.sleep", slept.append)
    handler = injector(venue, latency_spike_probability=1.0, latency_spike_ms=250)

    assert handler(get("accounts", BOT, "positions")).status == 200
    assert handler(get("health")).status == 200

    assert slept == [0.25]
    assert handler.state.counters()["latency_spike"] == 1


# --- garbage ----------------------------------------------------------------------------

Parser = Callable[[object], object]


def parse_orders(data: object) -> object:
    return list_from(data, "orders", order_report_from_dict)


def parse_positions(data: object) -> object:
    return list_from(data, "positions", position_from_dict)


def parse_balances(data: object) -> object:
    return balances_from_dict(Reader(data, "body").raw("balances"), "body.balances")


ROUTES: dict[str, tuple[Callable[[], ApiRequest], Parser]] = {
    "submit": (lambda: submit("g", limit="99.00"), order_report_from_dict),
    "lookup": (lambda: get("accounts", BOT, "orders", "resting"), order_report_from_dict),
    "open orders": (lambda: get("accounts", BOT, "orders"), parse_orders),
    "fills": (fills, fill_page_from_dict),
    "positions": (lambda: get("accounts", BOT, "positions"), parse_positions),
    "balances": (lambda: get("accounts", BOT, "balances"), parse_balances),
}
# The garbage a parser can see; the rest fits only some answers or parses fine (below).
REFUSED_BY_THE_PARSER = [
    (route, kind) for route in ROUTES for kind in ("missing_field", "nan_price", "negative_price")
    if not (route == "balances" and kind == "negative_price")
] + [("submit", "unknown_order_fill"), ("lookup", "unknown_order_fill")]


@pytest.fixture
def trading_venue(venue: SandboxVenue) -> SandboxVenue:
    """A venue where the account has a fill, a position and a resting order."""
    injector(venue)(submit("bought", "2"))
    injector(venue)(submit("resting", limit="90.00"))
    return venue


@pytest.mark.parametrize(("route", "kind"), REFUSED_BY_THE_PARSER)
def test_garbage_is_refused_by_the_clients_parser(trading_venue: SandboxVenue, route: str,
                                                   kind: str) -> None:
    request, parse = ROUTES[route]
    clean = injector(trading_venue)(request())
    parse(loads(dumps(clean.payload)))  # the same answer without garbage parses
    handler = injector(trading_venue, garbage_probability=1.0, garbage_kinds=(kind,))

    garbled = handler(request())

    with pytest.raises(BadBrokerReplyError):
        parse(loads(dumps(garbled.payload)))
    assert handler.state.counters()[f"garbage_{kind}"] == 1
    assert handler.state.counters()["garbage"] == 1


@pytest.mark.parametrize("kind", ["unknown_order_fill", "unknown_instrument_fill"])
def test_fills_for_unknown_orders_or_instruments_parse_and_are_left_to_the_ledger(
        trading_venue: SandboxVenue, kind: str) -> None:
    handler = injector(trading_venue, garbage_probability=1.0, garbage_kinds=(kind,))

    page = fill_page_from_dict(loads(dumps(handler(fills()).payload)))

    made_up = page.fills[-1]
    assert made_up.broker_fill_id.startswith("injected-")
    if kind == "unknown_order_fill":
        assert made_up.client_order_id.startswith("injected-unknown-order-")
    else:
        assert (made_up.client_order_id, made_up.instrument) == ("bought", "GARBAGE:NEVER-TRADED")


def test_a_fill_for_an_unknown_instrument_in_an_order_answer_parses_too(
        trading_venue: SandboxVenue) -> None:
    handler = injector(trading_venue, garbage_probability=1.0,
                       garbage_kinds=("unknown_instrument_fill",))

    report = order_report_from_dict(loads(dumps(handler(submit("more")).payload)))

    assert [f.instrument for f in report.fills] == ["NYSE:AAA", "GARBAGE:NEVER-TRADED"]


def test_garbage_that_fits_nothing_in_an_answer_leaves_it_alone(venue: SandboxVenue) -> None:
    handler = injector(venue, garbage_probability=1.0, garbage_kinds=("negative_price",))

    assert handler(get("accounts", BOT, "positions")).payload == {"positions": []}
    assert handler.state.counters()["garbage"] == 0


def test_error_answers_are_never_garbled(venue: SandboxVenue) -> None:
    handler = injector(venue, garbage_probability=1.0)

    assert handler(get("accounts", BOT, "orders", "missing")).payload["error"] == \
        "order_not_found"


# --- the venue's invariant counters -----------------------------------------------------


def test_the_venue_counts_submissions_and_resends_per_account(venue: SandboxVenue,
                                                              clock: ManualClock) -> None:
    for cid in ("a", "b", "a"):
        venue.submit(BOT, OrderRequest(cid, "NYSE:AAA", Side.BUY, OrderType.MARKET, D(1)))
        clock.advance(timedelta(seconds=1))
    venue.submit("other", OrderRequest("x", "NYSE:BBB", Side.BUY, OrderType.MARKET, D(1)))

    assert venue.submission_counts() == {BOT: SubmissionCounts(3, 1, 0),
                                         "other": SubmissionCounts(1, 0, 1)}
    page, more = venue.submissions(BOT)
    assert [(s.client_order_id, s.duplicate, s.received_at - NEW_YORK_MIDDAY)
            for s in page] == [("a", False, timedelta(0)), ("b", False, timedelta(seconds=1)),
                               ("a", True, timedelta(seconds=2))]
    assert not more
    second, more = venue.submissions(None, after=page[1].sequence, limit=1)
    assert [s.client_order_id for s in second] == ["a"] and more


def test_the_memory_book_keeps_exact_counts_but_only_the_latest_submissions(
        clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book_module, "MEMORY_SUBMISSIONS_KEPT", 3)
    venue = build_venue(ScriptedPrices(), clock, MemoryBook())
    for n in range(5):
        venue.submit(BOT, OrderRequest(f"o-{n}", "NYSE:AAA", Side.BUY, OrderType.MARKET, D(1)))

    assert venue.submission_counts()[BOT].submissions == 5
    assert [s.client_order_id for s in venue.submissions(BOT)[0]] == ["o-2", "o-3", "o-4"]


def test_a_failed_submission_is_not_counted(venue: SandboxVenue) -> None:
    with pytest.raises(ValueError, match="client_order_id"):
        venue.submit(BOT, OrderRequest(" ", "NYSE:AAA", Side.BUY, OrderType.MARKET, D(1)))

    assert venue.submission_counts() == {}


def test_a_submission_page_limit_is_bounded(venue: SandboxVenue) -> None:
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        venue.submissions(None, limit=0)
