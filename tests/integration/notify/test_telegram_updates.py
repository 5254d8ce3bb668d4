"""Reading the bot's incoming messages (getUpdates) from the fake Bot API: offsets confirm
updates like Telegram's, a long poll wakes for a new message, failures are classified."""

from __future__ import annotations

import threading
import time

from fleetkit.notify import OutcomeKind, TelegramSender
from fleetkit.testing.fake_telegram import FakeTelegram


def test_messages_to_the_bot_come_back_with_chat_user_and_text(telegram: FakeTelegram,
                                                               sender: TelegramSender) -> None:
    first = telegram.inject_message(4242, "/status", from_user_id=7)
    second = telegram.inject_message(-100555, "/halt alpha", from_user_id=8)
    batch = sender.get_updates()
    assert batch.ok
    assert [(u.update_id, u.chat_id, u.from_user_id, u.text) for u in batch.updates] == [
        (first, "4242", "7", "/status"), (second, "-100555", "8", "/halt alpha")]
    assert batch.next_offset == second + 1


def test_the_next_offset_confirms_what_was_read(telegram: FakeTelegram,
                                                sender: TelegramSender) -> None:
    telegram.inject_message(1, "one")
    telegram.inject_message(1, "two")
    unconfirmed = sender.get_updates()
    assert [u.text for u in sender.get_updates().updates] == ["one", "two"]  # asked again
    confirmed = sender.get_updates(offset=unconfirmed.next_offset)
    assert (confirmed.updates, confirmed.next_offset) == ((), unconfirmed.next_offset)
    telegram.inject_message(1, "three")
    assert [u.text for u in sender.get_updates().updates] == ["three"]  # 1 and 2 forgotten


def test_an_offset_in_the_middle_returns_from_there_on(telegram: FakeTelegram,
                                                       sender: TelegramSender) -> None:
    ids = [telegram.inject_message(1, text) for text in ("a", "b", "c")]
    batch = sender.get_updates(offset=ids[1])
    assert [u.text for u in batch.updates] == ["b", "c"]


def test_updates_other_than_text_messages_advance_the_offset(telegram: FakeTelegram,
                                                             sender: TelegramSender) -> None:
    edited = telegram.inject_update({"edited_message": {"chat": {"id": 1}, "text": "x"}})
    batch = sender.get_updates()
    assert (batch.updates, batch.next_offset) == ((), edited + 1)
    assert sender.get_updates(offset=batch.next_offset).updates == ()


def test_a_long_poll_wakes_as_soon_as_a_message_arrives(telegram: FakeTelegram,
                                                        sender: TelegramSender) -> None:
    timer = threading.Timer(0.3, telegram.inject_message, args=(1, "/status"))
    started = time.monotonic()
    timer.start()
    try:
        batch = sender.get_updates(timeout_s=10)
    finally:
        timer.cancel()
    assert [u.text for u in batch.updates] == ["/status"]
    assert time.monotonic() - started < 5


def test_a_quiet_long_poll_outlasting_the_http_timeout_is_not_an_error(
        telegram: FakeTelegram) -> None:
    with TelegramSender(telegram.token, api_base_url=telegram.url, timeout_s=0.5) as sender:
        batch = sender.get_updates(offset=3, timeout_s=1)
    assert (batch.ok, batch.updates, batch.next_offset) == (True, (), 3)


def test_a_rate_limited_poll_is_retried_and_keeps_the_offset(telegram: FakeTelegram,
                                                             sender: TelegramSender) -> None:
    telegram.inject_message(1, "unread")
    telegram.fail_next(1, "rate_limit", method="getUpdates", retry_after_s=4)
    batch = sender.get_updates(offset=5)
    assert batch.failure is not None
    assert (batch.failure.kind, batch.failure.retry_after_s, batch.next_offset) == (
        OutcomeKind.RETRY, 4, 5)
    assert [u.text for u in sender.get_updates(offset=5).updates] == ["unread"]


def test_polling_with_a_wrong_token_is_rejected(telegram: FakeTelegram) -> None:
    with TelegramSender("1:not-the-token", api_base_url=telegram.url) as wrong:
        batch = wrong.get_updates()
    assert batch.failure is not None
    assert (batch.failure.kind, batch.failure.status) == (OutcomeKind.REJECTED, 401)
