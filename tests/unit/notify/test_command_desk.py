"""Telegram commands: only allowlisted chats are answered, fleet-wide and resume commands wait
for a single-use code from the same chat, and open questions survive a restart."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from fleetkit.notify.commands import (
    Ask,
    Command,
    CommandDesk,
    CommandError,
    CommandName,
    CommandPolicy,
    Execute,
    Ignored,
    Reply,
    help_text,
    parse_command,
)
from fleetkit.notify.telegram import Update

OPS_CHAT = "-100999"
OTHER_OPS_CHAT = "-100777"
OPERATOR = "12345"
T0 = datetime(2024, 5, 3, 14, 0, tzinfo=UTC)


def desk(allowed_user_ids: frozenset[str] | None = None, confirm_ttl_s: float = 120,
         bot_username: str | None = None) -> CommandDesk:
    policy = CommandPolicy(frozenset({OPS_CHAT, OTHER_OPS_CHAT}), allowed_user_ids,
                           confirm_ttl_s, bot_username)
    return CommandDesk(policy, random.Random(7))


def said(text: str, chat: str = OPS_CHAT, user: str | None = OPERATOR) -> Update:
    return Update(update_id=1, chat_id=chat, text=text, from_user_id=user)


def ask(d: CommandDesk, text: str, now: datetime = T0, chat: str = OPS_CHAT) -> Ask:
    decision = d.handle(said(text, chat), now)
    assert isinstance(decision, Ask), decision
    return decision


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "name", "target"), [
    ("/status", "status", None),
    ("  /PnL  ", "pnl", None),
    ("/halt alpha", "halt", "alpha"),
    ("/halt   ALL", "halt", "all"),
    ("/halt@MyFleetBot all", "halt", "all"),
    ("/HALT@myfleetbot\tbot_2.eu-1", "halt", "bot_2.eu-1"),
    ("/resume alpha", "resume", "alpha"),
    ("/resume all", "resume", "all"),
    ("/confirm 0042", "confirm", "0042"),
    ("/help", "help", None),
    ("/start", "help", None),
])
def test_commands_parse_whatever_the_case_spacing_or_group_mention(
        text: str, name: CommandName, target: str | None) -> None:
    parsed = parse_command(text, bot_username="MyFleetBot")
    assert parsed == Command(name, target, text.strip())


@pytest.mark.parametrize("text", ["hello", "", "   ", "status /halt all"])
def test_text_that_does_not_start_with_a_slash_is_not_a_command(text: str) -> None:
    assert parse_command(text) is None


def test_a_command_addressed_to_another_bot_is_not_ours() -> None:
    assert parse_command("/halt@OtherBot all", bot_username="@MyFleetBot") is None
    assert parse_command("/halt@OtherBot all") == Command("halt", "all", "/halt@OtherBot all")


@pytest.mark.parametrize(("text", "message"), [
    ("/halt", "/halt needs a bot name or all: /halt alpha"),
    ("/halt alpha beta", "/halt needs a bot name or all: /halt alpha"),
    ("/resume", "/resume needs a bot name or all"),
    ("/confirm", "/confirm needs the 4-digit code"),
    ("/confirm 12", "/confirm needs the 4-digit code"),
    ("/status alpha", "/status takes no arguments"),
    ("/halt alpha!", "'alpha!' is not a bot name"),
    ("/halt " + "a" * 65, "is not a bot name"),
    ("/launch", "unknown command /launch; known: /status /pnl /halt /resume /confirm /help"),
    ("/", "unknown command /; known:"),
])
def test_malformed_commands_say_what_is_wrong(text: str, message: str) -> None:
    parsed = parse_command(text)
    assert isinstance(parsed, CommandError)
    assert message in parsed.message


def test_help_lists_every_command() -> None:
    for command in ("/status", "/pnl", "/halt BOT", "/halt all", "/resume BOT", "/resume all",
                    "/confirm CODE", "/help"):
        assert command in help_text()


# --- who is answered ------------------------------------------------------------------------


def test_a_stranger_chat_is_ignored_without_a_reply() -> None:
    decision = desk().handle(said("/halt all", chat="-100666"), T0)
    assert decision == Ignored("chat or user not allowed", "-100666", OPERATOR)
    assert decision.as_log()["action"] == "notify.command.ignored"


def test_a_user_not_on_the_user_allowlist_is_ignored_even_in_an_allowed_chat() -> None:
    d = desk(allowed_user_ids=frozenset({"1"}))
    assert isinstance(d.handle(said("/status", user="2"), T0), Ignored)
    assert isinstance(d.handle(said("/status", user=None), T0), Ignored)
    assert isinstance(d.handle(said("/status", user="1"), T0), Execute)


def test_chatter_in_an_allowed_group_is_ignored() -> None:
    assert desk().handle(said("lunch?"), T0) == Ignored("not a command", OPS_CHAT, OPERATOR)


def test_a_malformed_command_from_an_allowed_chat_gets_the_error_as_reply() -> None:
    decision = desk().handle(said("/halt"), T0)
    assert isinstance(decision, Reply)
    assert decision.chat_id == OPS_CHAT
    assert decision.text.startswith("/halt needs a bot name or all")


def test_help_is_a_reply() -> None:
    assert desk().handle(said("/help"), T0) == Reply(
        OPS_CHAT, help_text(), f"telegram:user:{OPERATOR}@chat:{OPS_CHAT}")


def test_group_form_for_another_bot_is_ignored_when_our_name_is_known() -> None:
    d = desk(bot_username="MyFleetBot")
    assert isinstance(d.handle(said("/status@OtherBot"), T0), Ignored)
    assert isinstance(d.handle(said("/status@myfleetbot"), T0), Execute)


# --- immediate commands ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["/status", "/pnl", "/halt alpha", "/halt@MyFleetBot alpha"])
def test_status_pnl_and_halting_one_bot_execute_at_once(text: str) -> None:
    decision = desk().handle(said(text), T0)
    assert isinstance(decision, Execute)
    assert decision.command == parse_command(text)
    assert decision.actor == f"telegram:user:{OPERATOR}@chat:{OPS_CHAT}"
    assert decision.as_log() == {
        "action": "notify.command.execute", "chat_id": OPS_CHAT,
        "command": decision.command.name, "target": decision.command.target,
        "actor": decision.actor, "asked_by": None}


def test_a_channel_post_without_sender_is_attributed_to_the_chat() -> None:
    decision = desk().handle(said("/halt alpha", user=None), T0)
    assert isinstance(decision, Execute)
    assert decision.actor == f"telegram:chat:{OPS_CHAT}"


# --- confirmation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "question"), [
    ("/halt all", "Halt ALL bots?"),
    ("/halt@MyFleetBot ALL", "Halt ALL bots?"),
    ("/resume alpha", "Resume bot alpha?"),
    ("/resume all", "Lift the fleet-wide halt?"),
])
def test_halting_everything_and_resuming_ask_for_a_code_first(text: str, question: str) -> None:
    question_asked = ask(desk(), text)
    assert question_asked.code.isdigit() and len(question_asked.code) == 4
    assert question_asked.text == (
        f"{question} Reply /confirm {question_asked.code} within 2 min.")
    assert "code" not in question_asked.as_log()
    assert question_asked.code not in json.dumps(question_asked.as_log())


def test_the_code_comes_from_the_injected_random_source() -> None:
    codes = [ask(CommandDesk(CommandPolicy(frozenset({OPS_CHAT})), random.Random(1)),
                 "/halt all").code for _ in range(2)]
    assert codes[0] == codes[1] == f"{random.Random(1).randrange(10_000):04d}"


def test_the_right_code_before_expiry_executes_the_asked_command() -> None:
    d = desk()
    question = ask(d, "/halt all")
    colleague = said(f"/confirm {question.code}", user="67890")
    decision = d.handle(colleague, T0 + timedelta(seconds=119))
    assert decision == Execute(OPS_CHAT, Command("halt", "all", "/halt all"),
                               actor=f"telegram:user:67890@chat:{OPS_CHAT}",
                               asked_by=f"telegram:user:{OPERATOR}@chat:{OPS_CHAT}")


def test_a_code_works_only_once() -> None:
    d = desk()
    question = ask(d, "/resume alpha")
    assert isinstance(d.handle(said(f"/confirm {question.code}"), T0), Execute)
    again = d.handle(said(f"/confirm {question.code}"), T0)
    assert isinstance(again, Reply)
    assert again.text.startswith("nothing to confirm")


def test_a_wrong_code_does_not_execute_and_the_right_one_still_works() -> None:
    d = desk()
    question = ask(d, "/halt all")
    wrong = "0000" if question.code != "0000" else "1111"
    decision = d.handle(said(f"/confirm {wrong}"), T0)
    assert isinstance(decision, Reply)
    assert decision.text.startswith("that code does not match")
    assert isinstance(d.handle(said(f"/confirm {question.code}"), T0), Execute)


def test_three_wrong_codes_drop_the_question() -> None:
    d = desk()
    question = ask(d, "/halt all")
    wrong = "0000" if question.code != "0000" else "1111"
    for _ in range(3):
        assert isinstance(d.handle(said(f"/confirm {wrong}"), T0), Reply)
    late = d.handle(said(f"/confirm {question.code}"), T0)
    assert isinstance(late, Reply)
    assert late.text.startswith("nothing to confirm")


def test_an_expired_code_is_refused_and_forgotten() -> None:
    d = desk()
    question = ask(d, "/halt all")
    expired = d.handle(said(f"/confirm {question.code}"), T0 + timedelta(seconds=121))
    assert isinstance(expired, Reply)
    assert expired.text == "that confirmation expired; send /halt all again"
    after = d.handle(said(f"/confirm {question.code}"), T0 + timedelta(seconds=122))
    assert isinstance(after, Reply)
    assert after.text.startswith("nothing to confirm")


def test_the_ttl_comes_from_the_policy() -> None:
    question = ask(desk(confirm_ttl_s=45), "/resume all")
    assert question.text.endswith("within 45 s.")


def test_a_code_confirmed_from_another_allowed_chat_does_nothing() -> None:
    d = desk()
    question = ask(d, "/halt all")
    elsewhere = d.handle(said(f"/confirm {question.code}", chat=OTHER_OPS_CHAT), T0)
    assert isinstance(elsewhere, Reply)
    assert elsewhere.chat_id == OTHER_OPS_CHAT
    assert elsewhere.text.startswith("nothing to confirm")
    assert isinstance(d.handle(said(f"/confirm {question.code}"), T0), Execute)


def test_a_code_confirmed_from_a_stranger_chat_is_ignored() -> None:
    d = desk()
    question = ask(d, "/halt all")
    assert isinstance(d.handle(said(f"/confirm {question.code}", chat="-100666"), T0), Ignored)
    assert isinstance(d.handle(said(f"/confirm {question.code}"), T0), Execute)


def test_a_new_question_replaces_the_chats_open_one() -> None:
    d = desk()
    first = ask(d, "/halt all")
    second = ask(d, "/resume alpha")
    decision = d.handle(said(f"/confirm {second.code}"), T0)
    assert isinstance(decision, Execute)
    assert decision.command.name == "resume"
    if first.code != second.code:
        assert isinstance(d.handle(said(f"/confirm {first.code}"), T0), Reply)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        desk().handle(said("/status"), datetime(2024, 5, 3, 14, 0))  # noqa: DTZ001


# --- state ----------------------------------------------------------------------------------


def test_open_questions_survive_an_export_and_import_through_json() -> None:
    before = desk()
    halt = ask(before, "/halt all")
    resume = ask(before, "/resume beta", chat=OTHER_OPS_CHAT)
    state = json.loads(json.dumps(before.export_state()))

    after = desk()
    after.import_state(state)
    assert after.export_state() == before.export_state()
    assert isinstance(after.handle(said(f"/confirm {halt.code}"), T0), Execute)
    confirmed = after.handle(said(f"/confirm {resume.code}", chat=OTHER_OPS_CHAT), T0)
    assert isinstance(confirmed, Execute)
    assert confirmed.command == Command("resume", "beta", "/resume beta")


def test_expired_questions_of_other_chats_are_not_exported_forever() -> None:
    d = desk()
    ask(d, "/halt all")
    d.handle(said("/status", chat=OTHER_OPS_CHAT), T0 + timedelta(minutes=5))
    assert d.export_state()["pending"] == []


@pytest.mark.parametrize("state", [
    {},
    {"version": 99, "pending": []},
    {"version": 1, "pending": [{"chat_id": OPS_CHAT}]},
    {"version": 1, "pending": [{"chat_id": OPS_CHAT, "code": "1234", "asked_by": "x",
                                "expires_at": "2024-05-03T14:00:00",
                                "command": {"name": "halt", "target": "all", "raw": "/h"}}]},
    {"version": 1, "pending": [{"chat_id": OPS_CHAT, "code": "1234", "asked_by": "x",
                                "expires_at": "2024-05-03T14:00:00+00:00",
                                "command": {"name": "launch", "target": None, "raw": "/l"}}]},
])
def test_importing_something_that_is_not_an_export_fails_and_keeps_the_state(
        state: dict[str, object]) -> None:
    d = desk()
    question = ask(d, "/halt all")
    with pytest.raises(ValueError, match="not a"):
        d.import_state(state)
    assert isinstance(d.handle(said(f"/confirm {question.code}"), T0), Execute)
