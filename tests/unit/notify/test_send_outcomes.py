"""Outcomes, redaction and how the senders read replies no real server sends in our tests
(proxies' HTML pages, garbled updates), driven through httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from fleetkit.notify import (
    Failure,
    OutcomeKind,
    SendOutcome,
    TelegramSender,
    WebhookSender,
    redact,
)
from fleetkit.notify.base import retry_after_header_s

TOKEN = "987654321:AAsecret-token_0123456789abcdefghij"

Handler = Callable[[httpx.Request], httpx.Response]


def telegram(handler: Handler) -> TelegramSender:
    return TelegramSender(TOKEN, api_base_url="https://telegram.test",
                          transport=httpx.MockTransport(handler))


def ok(result: object) -> httpx.Response:
    return httpx.Response(200, json={"ok": True, "result": result})


# --- outcomes and redaction ------------------------------------------------------------------


def test_a_delivered_outcome_has_every_part_delivered() -> None:
    outcome = SendOutcome.delivered(["7", "8"], total_parts=2)
    assert outcome.ok and outcome.delivered_parts == 2
    with pytest.raises(ValueError):
        SendOutcome(OutcomeKind.DELIVERED, delivered_parts=1, total_parts=2)


def test_a_failed_outcome_carries_its_failure_and_progress() -> None:
    outcome = SendOutcome.failed(Failure.retry("HTTP 429", 429, 3.0), delivered_parts=1,
                                 total_parts=3, message_ids=["5"])
    assert (outcome.kind, outcome.delivered_parts, outcome.retry_after_s, outcome.status) == (
        OutcomeKind.RETRY, 1, 3.0, 429)
    assert not outcome.ok
    with pytest.raises(ValueError):
        SendOutcome.failed(Failure.rejected("no"), delivered_parts=4, total_parts=3)


@pytest.mark.parametrize("retry_after_s", [-1.0, float("nan"), float("inf")])
def test_a_failure_refuses_an_impossible_wait(retry_after_s: float) -> None:
    with pytest.raises(ValueError):
        Failure.retry("x", retry_after_s=retry_after_s)


def test_redact_removes_a_secret_plain_and_url_encoded() -> None:
    text = f"GET /bot{TOKEN}/x and /bot{TOKEN.replace(':', '%3A')}/y"
    cleaned = redact(text, [TOKEN])
    assert TOKEN not in cleaned and "AAsecret" not in cleaned
    assert cleaned.count("<redacted>") == 2


def test_redact_leaves_short_values_alone() -> None:
    assert redact("a json body", ["a", "json"[:3]]) == "a json body"


def test_retry_after_header_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 1, 5, 12, 0, 40, tzinfo=UTC), usegmt=True)
    assert retry_after_header_s("12", now) == 12
    assert retry_after_header_s(later, now) == pytest.approx(40)
    for unreadable in (None, "", "soon", "inf", "nan"):
        assert retry_after_header_s(unreadable, now) is None
    assert retry_after_header_s("-5", now) == 0


# --- Telegram: the request it sends, and odd replies ---------------------------------------


def test_the_token_goes_in_the_path_only_below_the_client() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok({"message_id": 11})

    outcome = telegram(handler).send("-100123", "hi")
    assert outcome.message_ids == ("11",)
    assert seen[0].url.path == f"/bot{TOKEN}/sendMessage"
    assert json.loads(seen[0].content) == {"chat_id": "-100123", "text": "hi",
                                           "disable_web_page_preview": True}


def test_the_token_is_not_in_the_senders_repr_nor_in_a_malformed_token_error() -> None:
    assert TOKEN not in repr(telegram(lambda r: ok({})))
    with pytest.raises(ValueError) as raised:
        TelegramSender(f" {TOKEN}")
    assert "AAsecret" not in str(raised.value)


def test_a_200_that_is_not_a_bot_api_answer_is_retried() -> None:
    outcome = telegram(lambda r: httpx.Response(200, text="<html>captive portal</html>")).send(
        "1", "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.RETRY, 200)


def test_a_proxys_retry_after_header_is_used_when_the_body_has_none() -> None:
    outcome = telegram(lambda r: httpx.Response(503, text="busy", headers={
        "Retry-After": "30"})).send("1", "hi")
    assert (outcome.kind, outcome.status, outcome.retry_after_s) == (OutcomeKind.RETRY, 503, 30)


def test_telegrams_retry_after_in_the_body_wins() -> None:
    outcome = telegram(lambda r: httpx.Response(429, json={
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5}})).send("1", "hi")
    assert (outcome.kind, outcome.retry_after_s) == (OutcomeKind.RETRY, 5)


def test_a_description_that_echoes_the_token_is_redacted() -> None:
    outcome = telegram(lambda r: httpx.Response(400, json={
        "ok": False, "error_code": 400, "description": f"Bad Request: {r.url}"})).send("1", "x")
    assert outcome.kind is OutcomeKind.REJECTED
    assert TOKEN not in outcome.description and "<redacted>" in outcome.description


def test_a_transport_error_text_with_the_token_is_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    outcome = telegram(handler).send("1", "x")
    assert outcome.kind is OutcomeKind.RETRY
    assert "ConnectError" in outcome.description and TOKEN not in outcome.description


def test_a_blank_text_is_rejected_without_a_call() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    outcome = telegram(handler).send("1", "  \n")
    assert (outcome.kind, outcome.description) == (OutcomeKind.REJECTED, "message text is empty")


def test_updates_that_are_not_text_messages_are_skipped_but_confirmed() -> None:
    result = [{"update_id": 10, "edited_message": {"text": "x"}},
              {"update_id": 11, "message": {"chat": {"id": -5}, "text": "/halt alpha",
                                            "from": {"id": 77}}},
              {"update_id": 12, "message": {"chat": {"id": 5}, "photo": []}}]
    batch = telegram(lambda r: ok(result)).get_updates(offset=10)
    assert batch.ok and batch.next_offset == 13
    assert [(u.update_id, u.chat_id, u.text, u.from_user_id) for u in batch.updates] == [
        (11, "-5", "/halt alpha", "77")]


@pytest.mark.parametrize("result", [{"not": "a list"}, [{"message": {}}], [{"update_id": "1"}]])
def test_a_garbled_update_list_is_retried_and_the_offset_kept(result: object) -> None:
    batch = telegram(lambda r: ok(result)).get_updates(offset=99)
    assert batch.failure is not None and batch.failure.kind is OutcomeKind.RETRY
    assert (batch.updates, batch.next_offset) == ((), 99)


def test_get_updates_asks_for_messages_with_a_long_poll() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([])

    batch = telegram(handler).get_updates(offset=5, timeout_s=25)
    assert (batch.ok, batch.next_offset) == (True, 5)
    assert json.loads(seen[0].content) == {"offset": 5, "timeout": 25, "limit": 100,
                                           "allowed_updates": ["message"]}
    assert seen[0].extensions["timeout"]["read"] == 35  # the poll plus the sender's 10 s


# --- webhook: odd configurations ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://hooks.test/x", "/relative", "https://u:p@hooks.test/x"])
def test_a_webhook_url_it_cannot_use_safely_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookSender(url)


def test_the_webhook_path_and_query_reach_the_server_but_not_the_repr() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sender = WebhookSender("https://hooks.test/services/T0/B0/XsecretX?key=k3y-s3cret",
                           transport=httpx.MockTransport(handler))
    assert sender.send("ops", "hi").ok
    assert seen[0].url == "https://hooks.test/services/T0/B0/XsecretX?key=k3y-s3cret"
    assert "XsecretX" not in repr(sender) and "k3y" not in repr(sender)
