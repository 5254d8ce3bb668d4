"""A picture with a notification, sender by sender, on loopback: Telegram uploads it with
sendPhoto (multipart) as part 1 ahead of the text and never sends it twice across retries;
a webhook carries it base64 in its one JSON payload; the fake Bot API takes uploads like
Telegram does."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fleetkit.notify import OutcomeKind, SendOutcome, TelegramSender, WebhookSender
from fleetkit.testing.fake_telegram import FakeTelegram, FaultKind, png_bytes
from fleetkit.testing.loopback import LoopbackHandler, LoopbackServer, ServedInThread

CHAT = "4242"
CHART = png_bytes(40, 30)
REPORT = "📈 [demo] fleet · report.pnl\nday P&L +120.50 USDT\nalpha +100.00\nbeta +20.50"
LINE = "alpha BTC/USDT fill 0.01 @ 50000, fee 0.5, realized +12.00 " + "." * 40
THREE_PARTS = "\n".join(f"{n:03d} {LINE}" for n in range(100))  # ~10k characters


def kinds(telegram: FakeTelegram) -> list[str]:
    return ["photo" if m.photo else m.text[:6] for m in telegram.messages]


# --- Telegram -------------------------------------------------------------------------------


def test_the_photo_goes_first_with_a_caption_then_the_text(telegram: FakeTelegram,
                                                           sender: TelegramSender) -> None:
    outcome = sender.send(CHAT, REPORT, photo=CHART)
    assert outcome.ok and (outcome.delivered_parts, outcome.total_parts) == (2, 2)
    photo, text = telegram.messages
    assert (photo.photo, photo.chat_id, photo.photo_size, photo.caption) == (
        True, CHAT, len(CHART), "📈 [demo] fleet · report.pnl")
    assert (text.photo, text.text) == (False, REPORT)
    assert outcome.message_ids == (str(photo.message_id), str(text.message_id))
    assert [c.method for c in telegram.calls] == ["sendPhoto", "sendMessage"]
    assert telegram.texts() == [REPORT] and telegram.photos() == [photo]


def test_a_long_text_follows_the_photo_in_numbered_parts(telegram: FakeTelegram,
                                                         sender: TelegramSender) -> None:
    outcome = sender.send(CHAT, THREE_PARTS, photo=CHART)
    assert outcome.ok and outcome.total_parts == 4 and len(outcome.message_ids) == 4
    assert kinds(telegram) == ["photo", "(1/3) ", "(2/3) ", "(3/3) "]
    assert telegram.photos()[0].caption == f"000 {LINE}"  # the text's first line


@pytest.mark.parametrize("fault", ["server_error", "rate_limit"])
def test_a_text_part_failing_after_the_photo_resumes_without_resending_it(
        telegram: FakeTelegram, sender: TelegramSender, fault: FaultKind) -> None:
    telegram.fail_next(1, fault, method="sendMessage", retry_after_s=3)
    first = sender.send(CHAT, REPORT, photo=CHART)
    assert (first.kind, first.delivered_parts, first.total_parts) == (OutcomeKind.RETRY, 1, 2)
    assert len(first.message_ids) == 1  # the photo: what a rate limiter is told
    if fault == "rate_limit":
        assert first.retry_after_s == 3.0
    second = sender.send(CHAT, REPORT, skip_parts=first.delivered_parts, photo=CHART)
    assert second.ok and len(second.message_ids) == 1
    assert kinds(telegram) == ["photo", REPORT[:6]]
    assert [c.method for c in telegram.calls] == ["sendPhoto", "sendMessage", "sendMessage"]


def test_a_failed_photo_is_retried_before_any_text_goes(telegram: FakeTelegram,
                                                        sender: TelegramSender) -> None:
    telegram.fail_next(1, "rate_limit", method="sendPhoto", retry_after_s=5)
    first = sender.send(CHAT, REPORT, photo=CHART)
    assert (first.kind, first.delivered_parts, first.retry_after_s) == (OutcomeKind.RETRY, 0, 5)
    assert telegram.messages == []
    assert sender.send(CHAT, REPORT, skip_parts=0, photo=CHART).ok
    assert kinds(telegram) == ["photo", REPORT[:6]]


def test_a_lost_reply_to_the_photo_sends_it_again_rather_than_never(
        telegram: FakeTelegram, sender: TelegramSender) -> None:
    telegram.fail_next(1, "drop_after_accept", method="sendPhoto")
    first = sender.send(CHAT, REPORT, photo=CHART)
    assert (first.kind, first.delivered_parts) == (OutcomeKind.RETRY, 0)
    assert sender.send(CHAT, REPORT, skip_parts=first.delivered_parts, photo=CHART).ok
    assert kinds(telegram) == ["photo", "photo", REPORT[:6]]  # at least once


def test_a_refused_photo_is_rejected_like_a_refused_text(telegram: FakeTelegram,
                                                         sender: TelegramSender) -> None:
    telegram.fail_next(1, "blocked", method="sendPhoto")
    blocked = sender.send(CHAT, REPORT, photo=CHART)
    assert (blocked.kind, blocked.status, blocked.delivered_parts) == (
        OutcomeKind.REJECTED, 403, 0)
    not_png = sender.send(CHAT, REPORT, photo=b"GIF89a not a png")
    assert (not_png.kind, not_png.status) == (OutcomeKind.REJECTED, 400)
    assert not_png.description == "sendPhoto: HTTP 400: Bad Request: IMAGE_PROCESS_FAILED"
    assert telegram.messages == []


def test_skipping_the_photo_and_every_part_sends_nothing(telegram: FakeTelegram,
                                                         sender: TelegramSender) -> None:
    assert sender.send(CHAT, REPORT, skip_parts=2, photo=CHART) == SendOutcome.delivered([], 2)
    assert telegram.calls == []


def test_a_blank_text_with_a_photo_sends_the_photo_alone(telegram: FakeTelegram,
                                                         sender: TelegramSender) -> None:
    outcome = sender.send(CHAT, "  \n", photo=CHART)
    assert outcome.ok and outcome.total_parts == 1
    assert kinds(telegram) == ["photo"] and telegram.photos()[0].caption == ""


def test_a_long_first_line_is_cut_to_telegrams_caption_limit(telegram: FakeTelegram,
                                                             sender: TelegramSender) -> None:
    text = "😀" * 700 + "\nsecond line"  # 1400 UTF-16 units on the first line
    assert sender.send(CHAT, text, photo=CHART).ok
    caption = telegram.photos()[0].caption
    assert caption.endswith("…") and caption == "😀" * 511 + "…"
    assert telegram.texts() == [text]


def test_the_token_stays_out_of_photo_outcomes_and_logs(
        telegram: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes = []
    with TelegramSender(telegram.token, api_base_url=telegram.url, timeout_s=0.3) as sender:
        outcomes.append(sender.send(CHAT, "ok", photo=CHART))
        faults: tuple[FaultKind, ...] = ("rate_limit", "server_error", "blocked",
                                         "drop_after_accept", "slow")
        for fault in faults:
            telegram.fail_next(1, fault, method="sendPhoto")
            outcomes.append(sender.send(CHAT, f"after {fault}", photo=CHART))
    assert {o.kind for o in outcomes} == set(OutcomeKind)
    assert "/botREDACTED/sendPhoto" in caplog.text
    secret = telegram.token.split(":", 1)[1]
    for record in caplog.records:
        assert secret not in record.getMessage() and secret not in repr(record.__dict__)
    assert all(secret not in repr(o) for o in outcomes)


# --- the fake Bot API's uploads -------------------------------------------------------------


def upload(telegram: FakeTelegram, data: dict[str, str], photo: bytes | None,
           token: str | None = None) -> httpx.Response:
    files = {"photo": ("chart.png", photo, "image/png")} if photo is not None else None
    return httpx.post(f"{telegram.url}/bot{token or telegram.token}/sendPhoto", data=data,
                      files=files, timeout=5)


def test_the_fake_answers_an_upload_like_telegram(telegram: FakeTelegram) -> None:
    answer = upload(telegram, {"chat_id": "-100123", "caption": "P&L"}, CHART).json()
    assert answer["ok"] is True
    result = answer["result"]
    assert result["chat"] == {"id": -100123, "type": "group"} and result["caption"] == "P&L"
    assert (result["photo"][0]["width"], result["photo"][0]["height"],
            result["photo"][0]["file_size"]) == (40, 30, len(CHART))
    [photo] = telegram.messages
    assert (photo.photo, photo.photo_size, photo.caption, photo.text) == (
        True, len(CHART), "P&L", "")


@pytest.mark.parametrize("data, photo, status, description", [
    ({"chat_id": "1"}, None, 400, "Bad Request: there is no photo in the request"),
    ({"chat_id": "1"}, b"\x89PNG but not really", 400, "Bad Request: IMAGE_PROCESS_FAILED"),
    ({"chat_id": "1", "caption": "x" * 1025}, CHART, 400,
     "Bad Request: message caption is too long"),
    ({}, CHART, 400, "Bad Request: chat_id is empty"),
])
def test_the_fake_refuses_a_bad_upload(telegram: FakeTelegram, data: dict[str, str],
                                       photo: bytes | None, status: int,
                                       description: str) -> None:
    response = upload(telegram, data, photo)
    assert (response.status_code, response.json()["description"]) == (status, description)
    assert telegram.messages == []


def test_the_fake_checks_the_token_and_chat_on_uploads_too() -> None:
    with FakeTelegram(chats=["1"]) as telegram:
        assert upload(telegram, {"chat_id": "1"}, CHART, token="1:wrong").status_code == 401
        missing = upload(telegram, {"chat_id": "2"}, CHART)
        assert missing.json()["description"] == "Bad Request: chat not found"
        assert telegram.messages == [] and [c.method for c in telegram.calls] == ["sendPhoto"]


# --- a webhook ------------------------------------------------------------------------------


class _Recorder(LoopbackHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hook: Hook = self.server.owner
        with hook.lock:
            hook.received.append(json.loads(body))
        self.send_body(200, "text/plain", b"ok")


class Hook(ServedInThread):
    """A webhook endpoint that records every JSON payload."""

    def __init__(self) -> None:
        super().__init__(_Recorder, "photo-hook")
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []


@pytest.fixture
def hook() -> Iterator[Hook]:
    with Hook() as served:
        yield served


def test_a_webhook_payload_carries_the_photo_base64_in_its_one_part(hook: Hook) -> None:
    with WebhookSender(f"{hook.url}/hooks/s3cret", timeout_s=2.0) as sender:
        outcome = sender.send("ops", REPORT, photo=CHART)
        plain = sender.send("ops", "no picture")
        again = sender.send("ops", REPORT, skip_parts=1, photo=CHART)
    assert outcome.ok and (outcome.delivered_parts, outcome.total_parts) == (1, 1)
    assert plain.ok and again.ok
    with_photo, without = hook.received  # the skipped one posted nothing
    assert with_photo == {"destination": "ops", "text": REPORT, "source": "fleetkit",
                          "image_png_base64": base64.b64encode(CHART).decode("ascii")}
    assert base64.b64decode(with_photo["image_png_base64"]) == CHART
    assert "image_png_base64" not in without
