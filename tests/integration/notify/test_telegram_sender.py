"""TelegramSender against the fake Bot API on loopback: delivery, splitting, every failure
class, resuming a half-sent text without repeating a part, and no token anywhere."""

from __future__ import annotations

import logging

import pytest

from fleetkit.notify import OutcomeKind, SendOutcome, TelegramSender
from fleetkit.testing.fake_telegram import FakeTelegram, FaultKind
from fleetkit.testing.loopback import free_port

CHAT = "4242"
LINE = "position drift on BTC/USDT: ledger 0.5, broker 0.4; bot halted " + "." * 36
THREE_PARTS = "\n".join(f"{n:03d} {LINE}" for n in range(100))  # ~10k characters


def test_a_short_text_is_delivered_as_one_message(telegram: FakeTelegram,
                                                  sender: TelegramSender) -> None:
    outcome = sender.send(CHAT, "bot alpha: entered BTC/USDT long")
    assert outcome == SendOutcome.delivered([str(telegram.messages[0].message_id)], 1)
    assert [(m.chat_id, m.text) for m in telegram.messages] == [
        (CHAT, "bot alpha: entered BTC/USDT long")]


def test_a_long_text_arrives_as_numbered_parts_in_order(telegram: FakeTelegram,
                                                        sender: TelegramSender) -> None:
    outcome = sender.send(CHAT, THREE_PARTS)
    assert (outcome.kind, outcome.total_parts, len(outcome.message_ids)) == (
        OutcomeKind.DELIVERED, 3, 3)
    texts = telegram.texts(CHAT)
    assert [text[:6] for text in texts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert "\n".join(text[6:] for text in texts) == THREE_PARTS
    assert list(outcome.message_ids) == [str(m.message_id) for m in telegram.messages]


def test_a_wrong_token_is_rejected(telegram: FakeTelegram) -> None:
    with TelegramSender("1:wrong-token", api_base_url=telegram.url) as wrong:
        outcome = wrong.send(CHAT, "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.REJECTED, 401)
    assert "Unauthorized" in outcome.description
    assert telegram.messages == []


def test_an_unknown_chat_is_rejected_with_telegrams_description() -> None:
    with FakeTelegram(chats=[CHAT]) as fake, \
            TelegramSender(fake.token, api_base_url=fake.url) as sender:
        outcome = sender.send("999", "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.REJECTED, 400)
    assert outcome.description.endswith("Bad Request: chat not found")


def test_a_bot_blocked_by_the_user_is_rejected(telegram: FakeTelegram,
                                               sender: TelegramSender) -> None:
    telegram.fail_next(1, "blocked", chat_id=CHAT)
    outcome = sender.send(CHAT, "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.REJECTED, 403)
    assert "bot was blocked by the user" in outcome.description
    assert sender.send("777", "another chat still works").ok


def test_a_429_is_retried_after_telegrams_retry_after(telegram: FakeTelegram,
                                                      sender: TelegramSender) -> None:
    telegram.fail_next(1, "rate_limit", retry_after_s=17)
    outcome = sender.send(CHAT, "hi")
    assert (outcome.kind, outcome.status, outcome.retry_after_s) == (OutcomeKind.RETRY, 429, 17)
    assert telegram.messages == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_retried(telegram: FakeTelegram, sender: TelegramSender,
                                   status: int) -> None:
    telegram.fail_next(1, "server_error", status=status)
    outcome = sender.send(CHAT, "hi")
    assert (outcome.kind, outcome.status, outcome.retry_after_s) == (
        OutcomeKind.RETRY, status, None)


def test_a_timeout_is_retried(telegram: FakeTelegram) -> None:
    telegram.fail_next(1, "slow", delay_s=3.0)
    with TelegramSender(telegram.token, api_base_url=telegram.url, timeout_s=0.3) as sender:
        outcome = sender.send(CHAT, "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.RETRY, None)
    assert "timed out" in outcome.description


def test_a_refused_connection_is_retried() -> None:
    with TelegramSender("1:token-nobody-listens", timeout_s=2.0,
                        api_base_url=f"http://127.0.0.1:{free_port()}") as sender:
        outcome = sender.send(CHAT, "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.RETRY, None)
    assert "ConnectError" in outcome.description


def test_a_lost_reply_is_retried_though_the_message_arrived(telegram: FakeTelegram,
                                                            sender: TelegramSender) -> None:
    telegram.fail_next(1, "drop_after_accept")
    outcome = sender.send(CHAT, "hi")
    assert (outcome.kind, outcome.delivered_parts) == (OutcomeKind.RETRY, 0)
    assert telegram.texts() == ["hi"]  # at least once: the retry will repeat it


@pytest.mark.parametrize("fault", ["server_error", "rate_limit"])
@pytest.mark.parametrize("failing_part", [1, 2, 3])
def test_resuming_after_a_failed_part_sends_each_part_exactly_once(
        telegram: FakeTelegram, sender: TelegramSender, fault: FaultKind,
        failing_part: int) -> None:
    telegram.fail_next(1, fault, after=failing_part - 1)
    first = sender.send(CHAT, THREE_PARTS)
    assert (first.kind, first.delivered_parts, len(first.message_ids)) == (
        OutcomeKind.RETRY, failing_part - 1, failing_part - 1)

    second = sender.send(CHAT, THREE_PARTS, skip_parts=first.delivered_parts)
    assert second.ok and len(second.message_ids) == 3 - first.delivered_parts
    texts = telegram.texts(CHAT)
    assert [text[:6] for text in texts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert "\n".join(text[6:] for text in texts) == THREE_PARTS


def test_a_part_rejected_midway_reports_the_parts_already_out(telegram: FakeTelegram,
                                                              sender: TelegramSender) -> None:
    telegram.fail_next(1, "blocked", after=1)
    outcome = sender.send(CHAT, THREE_PARTS)
    assert (outcome.kind, outcome.delivered_parts, outcome.total_parts) == (
        OutcomeKind.REJECTED, 1, 3)
    assert len(telegram.texts()) == 1


def test_a_lost_reply_midway_repeats_only_that_part(telegram: FakeTelegram,
                                                    sender: TelegramSender) -> None:
    telegram.fail_next(1, "drop_after_accept", after=1)
    first = sender.send(CHAT, THREE_PARTS)
    assert (first.kind, first.delivered_parts) == (OutcomeKind.RETRY, 1)
    assert sender.send(CHAT, THREE_PARTS, skip_parts=first.delivered_parts).ok
    assert [text[:6] for text in telegram.texts()] == ["(1/3) ", "(2/3) ", "(2/3) ", "(3/3) "]


def test_skipping_every_part_sends_nothing(telegram: FakeTelegram,
                                           sender: TelegramSender) -> None:
    outcome = sender.send(CHAT, THREE_PARTS, skip_parts=3)
    assert outcome == SendOutcome.delivered([], 3)
    assert telegram.calls == []


def test_the_token_appears_in_no_outcome_and_no_log_line(
        telegram: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    faults: tuple[FaultKind, ...] = ("rate_limit", "server_error", "blocked",
                                     "drop_after_accept", "slow")
    outcomes: list[object] = []
    with TelegramSender(telegram.token, api_base_url=telegram.url, timeout_s=0.3) as sender:
        outcomes.append(sender.send(CHAT, "delivered"))
        for fault in faults:
            telegram.fail_next(1, fault)
            outcomes.append(sender.send(CHAT, f"after {fault}"))
        telegram.fail_next(1, "rate_limit", method="getUpdates")
        outcomes.append(sender.get_updates())
        outcomes.append(sender)
    with TelegramSender(telegram.token, api_base_url=f"http://127.0.0.1:{free_port()}",
                        timeout_s=1.0) as sender:
        outcomes.append(sender.send(CHAT, "refused"))
    assert {o.kind for o in outcomes if isinstance(o, SendOutcome)} == set(OutcomeKind)
    # the log did capture the HTTP traffic, with the path redacted
    assert "/botREDACTED/sendMessage" in caplog.text
    assert "telegram retry" in caplog.text and "telegram rejected" in caplog.text
    secret = telegram.token.split(":", 1)[1]
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in repr(record.__dict__)
    for outcome in outcomes:
        assert secret not in repr(outcome) and secret not in str(outcome)


def test_the_fakes_length_limit_backs_up_the_splitter(telegram: FakeTelegram) -> None:
    """With splitting turned off (limit raised), an emoji text over 4096 UTF-16 units comes
    back rejected "message is too long": the split tests above are against a real limit."""
    with TelegramSender(telegram.token, api_base_url=telegram.url, text_limit=10_000) as loose:
        outcome = loose.send(CHAT, "😀" * 2049)
    assert (outcome.kind, outcome.status) == (OutcomeKind.REJECTED, 400)
    assert outcome.description.endswith("message is too long")
    with TelegramSender(telegram.token, api_base_url=telegram.url) as strict:
        assert strict.send(CHAT, "😀" * 2049).total_parts == 2
