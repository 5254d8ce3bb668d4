"""The fake Bot API itself, spoken to with plain httpx: it must answer like Telegram, or the
sender tests prove nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from fleetkit.testing.fake_telegram import FakeTelegram
from tests.support import eventually


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def call(telegram: FakeTelegram, method: str, token: str | None = None,
         **kwargs: object) -> httpx.Response:
    url = f"{telegram.url}/bot{token or telegram.token}/{method}"
    return httpx.post(url, timeout=5, **kwargs)  # type: ignore[arg-type]


def test_a_wrong_token_gets_telegrams_401(telegram: FakeTelegram) -> None:
    response = call(telegram, "sendMessage", token="1:wrong", json={"chat_id": 1, "text": "x"})
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert telegram.messages == [] and telegram.calls == []


def test_an_unknown_method_or_path_is_404(telegram: FakeTelegram) -> None:
    assert call(telegram, "sendTelepathy", json={}).status_code == 404
    assert httpx.post(f"{telegram.url}/nope", timeout=5).json()["error_code"] == 404


def test_a_message_is_accepted_and_recorded(telegram: FakeTelegram) -> None:
    response = call(telegram, "sendMessage", json={"chat_id": -100123, "text": "hello"})
    assert response.status_code == 200
    result = response.json()["result"]
    assert (result["chat"]["id"], result["text"]) == (-100123, "hello")
    [message] = telegram.messages
    assert (message.message_id, message.chat_id, message.text) == (
        result["message_id"], "-100123", "hello")
    assert message.at.tzinfo is not None


def test_form_and_query_parameters_work_as_on_telegram(telegram: FakeTelegram) -> None:
    assert call(telegram, "sendMessage", data={"chat_id": "5", "text": "form"}).is_success
    assert call(telegram, "sendMessage", params={"chat_id": "5", "text": "query"}).is_success
    assert telegram.texts("5") == ["form", "query"]


@pytest.mark.parametrize("text, accepted", [
    ("a" * 4096, True), ("a" * 4097, False), ("😀" * 2048, True), ("😀" * 2049, False)])
def test_the_length_limit_counts_utf16_units(telegram: FakeTelegram, text: str,
                                             accepted: bool) -> None:
    response = call(telegram, "sendMessage", json={"chat_id": 1, "text": text})
    assert response.is_success is accepted
    if not accepted:
        assert (response.status_code, response.json()["description"]) == (
            400, "Bad Request: message is too long")


@pytest.mark.parametrize("payload, description", [
    ({"chat_id": 1, "text": "  "}, "Bad Request: message text is empty"),
    ({"text": "x"}, "Bad Request: chat_id is empty")])
def test_bad_requests_get_telegrams_400(telegram: FakeTelegram, payload: dict[str, object],
                                        description: str) -> None:
    response = call(telegram, "sendMessage", json=payload)
    assert (response.status_code, response.json()["description"]) == (400, description)


def test_faults_fire_the_given_number_of_times_then_stop(telegram: FakeTelegram) -> None:
    telegram.fail_next(2, "server_error", status=502)
    statuses = [call(telegram, "sendMessage", json={"chat_id": 1, "text": str(n)}).status_code
                for n in range(3)]
    assert statuses == [502, 502, 200]
    assert [c.fault for c in telegram.calls] == ["server_error", "server_error", None]
    assert telegram.texts() == ["2"]


def test_a_fault_for_one_chat_leaves_the_others_alone(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "blocked", chat_id="7")
    assert call(telegram, "sendMessage", json={"chat_id": 8, "text": "x"}).is_success
    blocked = call(telegram, "sendMessage", json={"chat_id": 7, "text": "x"})
    assert (blocked.status_code, blocked.json()["description"]) == (
        403, "Forbidden: bot was blocked by the user")


def test_a_fault_can_wait_for_some_calls_to_pass_first(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "rate_limit", after=2, retry_after_s=9)
    answers = [call(telegram, "sendMessage", json={"chat_id": 1, "text": "x"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 429, 200]
    assert answers[2].json()["parameters"] == {"retry_after": 9}


def test_a_dropped_reply_closes_the_connection_after_recording(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "drop_after_accept")
    with pytest.raises(httpx.RemoteProtocolError):
        call(telegram, "sendMessage", json={"chat_id": 1, "text": "lost reply"})
    assert telegram.texts() == ["lost reply"]


def test_get_me_answers_for_the_bot(telegram: FakeTelegram) -> None:
    result = call(telegram, "getMe").json()["result"]
    assert result["is_bot"] is True and result["id"] == int(telegram.token.split(":")[0])


def test_stopping_cuts_a_long_poll_short() -> None:
    fake = FakeTelegram().start()
    answers: list[object] = []

    def poll() -> None:
        try:
            answers.append(call(fake, "getUpdates", json={"timeout": 30}))
        except httpx.HTTPError as exc:
            answers.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    eventually(lambda: [c.method for c in fake.calls] == ["getUpdates"], timeout_s=5,
               what="the long poll to reach the fake", interval_s=0.02)
    started = time.monotonic()
    fake.stop()
    poller.join(timeout=10)
    assert not poller.is_alive()
    assert time.monotonic() - started < 5
    assert len(answers) == 1
