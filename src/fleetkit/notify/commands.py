"""Two-way Telegram commands as pure decisions: who may ask, what needs a confirm code, what to do.

    desk = CommandDesk(CommandPolicy(frozenset({"-100999"})), random.Random())
    decision = desk.handle(update, now)   # Ignored | Reply | Ask | Execute

The desk does no I/O. The caller sends Reply/Ask texts back to their chat, performs Execute
(status, P&L, halt, resume) and logs every decision's `as_log()`. Strangers get no answer at
all: a reply would confirm to anyone who finds the bot that it listens.

Commands that are hard to undo in a hurry (`/halt all`, `/resume BOT`, `/resume all`) are
asked back with a 4-digit code, one open question per chat (a new one replaces the old);
`/confirm CODE` from the same chat, by any allowed user, before the question expires, runs
it once. The open questions are plain data (`export_state` / `import_state`) so the caller
can keep them in the database across restarts.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias, cast, get_args

from fleetkit.core.durations import format_duration
from fleetkit.notify.telegram import Update

CommandName = Literal["status", "pnl", "halt", "resume", "confirm", "help"]
COMMAND_NAMES: tuple[CommandName, ...] = get_args(CommandName)
ALL_BOTS = "all"
CODE_DIGITS = 4
# Wrong codes are typos far more often than guesses, so a few are forgiven; past that the
# question is dropped and must be asked again.
MAX_WRONG_CODES = 3
STATE_VERSION = 1

_BOT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CODE = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")
_COMMAND_WORD = re.compile(r"/([A-Za-z0-9_]*)(?:@([A-Za-z0-9_]+))?")
_ALIASES: Mapping[str, CommandName] = {"start": "help"}  # Telegram's "Start" button sends /start
_NO_ARGUMENT: frozenset[str] = frozenset({"status", "pnl", "help"})


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A well-formed command. `target` is a bot name, "all", a confirm code, or None."""

    name: CommandName
    target: str | None
    raw: str

    @property
    def needs_confirmation(self) -> bool:
        return (self.name == "halt" and self.target == ALL_BOTS) or self.name == "resume"

    def as_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "target": self.target, "raw": self.raw}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Command:
        name, target, raw = data.get("name"), data.get("target"), data.get("raw")
        if name not in COMMAND_NAMES or not isinstance(raw, str) \
                or not (target is None or isinstance(target, str)):
            raise ValueError(f"not a stored command: {dict(data)!r}")
        return cls(name, target, raw)


@dataclass(frozen=True, slots=True)
class CommandError:
    """A text that is a command but a malformed one; `message` is the reply to send."""

    message: str


def parse_command(text: str, bot_username: str | None = None) -> Command | CommandError | None:
    """The command in a message, a CommandError saying what is wrong with it, or None when
    the text is not a command (or, given `bot_username`, is one addressed to another bot,
    as in `/status@OtherBot`)."""
    raw = text.strip()
    if not raw.startswith("/"):
        return None
    head, *args = raw.split()
    word = _COMMAND_WORD.fullmatch(head)
    if word is None:
        return CommandError(f"unknown command {head[:40]}; {_known_commands()}")
    if word[2] is not None and bot_username is not None \
            and word[2].lower() != bot_username.lstrip("@").lower():
        return None
    lowered = word[1].lower()
    name = _ALIASES.get(lowered, lowered)
    if name not in COMMAND_NAMES:
        return CommandError(f"unknown command /{word[1][:40]}; {_known_commands()}")
    return _with_arguments(cast(CommandName, name), args, raw)


def _with_arguments(name: CommandName, args: list[str], raw: str) -> Command | CommandError:
    if name in _NO_ARGUMENT:
        if args and name != "help":
            return CommandError(f"/{name} takes no arguments")
        return Command(name, None, raw)
    if len(args) != 1:
        return CommandError(_usage(name))
    target = args[0]
    if name == "confirm":
        return Command(name, target, raw) if _CODE.fullmatch(target) else CommandError(
            _usage(name))
    if target.lower() == ALL_BOTS:
        return Command(name, ALL_BOTS, raw)
    if _BOT_NAME.fullmatch(target) is None:
        return CommandError(f"{target[:70]!r} is not a bot name (letters, digits, _ . -; "
                            f"at most 64)")
    return Command(name, target, raw)


def _usage(name: CommandName) -> str:
    if name == "halt":
        return "/halt needs a bot name or all: /halt alpha, /halt all"
    if name == "resume":
        return "/resume needs a bot name or all: /resume alpha, /resume all"
    return f"/confirm needs the {CODE_DIGITS}-digit code from the question: /confirm 4821"


def _known_commands() -> str:
    return "known: " + " ".join(f"/{name}" for name in COMMAND_NAMES)


def help_text() -> str:
    """The reply to /help (and /start)."""
    return "\n".join([
        "Commands:",
        "/status — every bot's state",
        "/pnl — today's P&L",
        "/halt BOT — halt one bot now",
        "/halt all — halt every bot (asks to confirm)",
        "/resume BOT — resume one bot (asks to confirm)",
        "/resume all — lift the fleet-wide halt (asks to confirm)",
        "/confirm CODE — answer the last question",
        "/help — this list",
    ])


# --- decisions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ignored:
    """No answer goes out; the caller only logs it."""

    reason: str
    chat_id: str | None = None
    from_user_id: str | None = None

    def as_log(self) -> dict[str, object]:
        return {"action": "notify.command.ignored", "reason": self.reason,
                "chat_id": self.chat_id, "from_user_id": self.from_user_id}


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `text` to `chat_id`; nothing else happens."""

    chat_id: str
    text: str
    actor: str | None = None

    def as_log(self) -> dict[str, object]:
        return {"action": "notify.command.reply", "chat_id": self.chat_id, "actor": self.actor,
                "text": self.text}


@dataclass(frozen=True, slots=True)
class Ask:
    """Send the question `text` to `chat_id`; `command` runs once /confirm `code` comes."""

    chat_id: str
    text: str
    code: str
    command: Command
    actor: str

    def as_log(self) -> dict[str, object]:
        # The code stays out of the log: reading the log should not be a way to confirm.
        return {"action": "notify.command.ask", "chat_id": self.chat_id, "actor": self.actor,
                "command": self.command.name, "target": self.command.target}


@dataclass(frozen=True, slots=True)
class Execute:
    """Perform `command` now. `actor` did it (for the audit log); `asked_by` is who asked
    the question when `actor` confirmed someone else's command."""

    chat_id: str
    command: Command
    actor: str
    asked_by: str | None = None

    def as_log(self) -> dict[str, object]:
        return {"action": "notify.command.execute", "chat_id": self.chat_id,
                "command": self.command.name, "target": self.command.target,
                "actor": self.actor, "asked_by": self.asked_by}


Decision: TypeAlias = Ignored | Reply | Ask | Execute


# --- the desk -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """Who may command the fleet. `allowed_user_ids` None: anyone in an allowed chat."""

    allowed_chat_ids: frozenset[str]
    allowed_user_ids: frozenset[str] | None = None
    confirm_ttl_s: float = 120
    bot_username: str | None = None  # set it to ignore `/cmd@OtherBot` in shared groups

    def __post_init__(self) -> None:
        if not 0 < self.confirm_ttl_s < 86_400:
            raise ValueError("confirm_ttl_s must be positive and under a day")

    def admits(self, update: Update) -> bool:
        if update.chat_id not in self.allowed_chat_ids:
            return False
        return self.allowed_user_ids is None or update.from_user_id in self.allowed_user_ids


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """An open question in one chat."""

    chat_id: str
    code: str
    command: Command
    expires_at: datetime
    asked_by: str
    wrong_codes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "code": self.code, "command": self.command.as_dict(),
                "expires_at": self.expires_at.isoformat(), "asked_by": self.asked_by,
                "wrong_codes": self.wrong_codes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingConfirmation:
        try:
            expires_at = datetime.fromisoformat(data["expires_at"])
            pending = cls(str(data["chat_id"]), str(data["code"]),
                          Command.from_dict(data["command"]), expires_at,
                          str(data["asked_by"]), int(data.get("wrong_codes", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stored confirmation: {exc}") from exc
        if expires_at.tzinfo is None or _CODE.fullmatch(pending.code) is None:
            raise ValueError("not a stored confirmation: naive expires_at or malformed code")
        return pending


class CommandDesk:
    """Turns incoming updates into decisions; holds the open confirmation questions."""

    def __init__(self, policy: CommandPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng
        self._pending: dict[str, PendingConfirmation] = {}

    def handle(self, update: Update, now: datetime) -> Decision:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if not self._policy.admits(update):
            return Ignored("chat or user not allowed", update.chat_id, update.from_user_id)
        self._forget_expired(now, keep_chat=update.chat_id)
        parsed = parse_command(update.text, self._policy.bot_username)
        if parsed is None:
            return Ignored("not a command", update.chat_id, update.from_user_id)
        actor = actor_of(update)
        if isinstance(parsed, CommandError):
            return Reply(update.chat_id, parsed.message, actor)
        if parsed.name == "help":
            return Reply(update.chat_id, help_text(), actor)
        if parsed.name == "confirm":
            return self._confirm(update.chat_id, parsed, actor, now)
        if parsed.needs_confirmation:
            return self._ask(update.chat_id, parsed, actor, now)
        return Execute(update.chat_id, parsed, actor)

    def pending(self, chat_id: str) -> PendingConfirmation | None:
        return self._pending.get(chat_id)

    def export_state(self) -> dict[str, Any]:
        """The open questions as JSON-ready data, for `import_state` after a restart."""
        return {"version": STATE_VERSION,
                "pending": [p.as_dict() for p in self._pending.values()]}

    def import_state(self, state: Mapping[str, Any]) -> None:
        """Replace the open questions with exported ones; ValueError if `state` is not an
        export (nothing is replaced then)."""
        if state.get("version") != STATE_VERSION or not isinstance(state.get("pending"), list):
            raise ValueError(f"not a command desk state (version {STATE_VERSION} expected)")
        loaded = [PendingConfirmation.from_dict(item) for item in state["pending"]]
        self._pending = {p.chat_id: p for p in loaded}

    # --- internals ------------------------------------------------------------------------

    def _ask(self, chat_id: str, command: Command, actor: str, now: datetime) -> Ask:
        code = f"{self._rng.randrange(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        ttl_s = self._policy.confirm_ttl_s
        self._pending[chat_id] = PendingConfirmation(
            chat_id, code, command, now + timedelta(seconds=ttl_s), actor)
        text = f"{_question(command)} Reply /confirm {code} within {format_duration(ttl_s)}."
        return Ask(chat_id, text, code, command, actor)

    def _confirm(self, chat_id: str, confirm: Command, actor: str, now: datetime) -> Decision:
        pending = self._pending.get(chat_id)
        if pending is None:
            return Reply(chat_id, "nothing to confirm: no open question in this chat", actor)
        if now > pending.expires_at:
            del self._pending[chat_id]
            return Reply(chat_id, f"that confirmation expired; send {pending.command.raw} "
                                  "again", actor)
        if confirm.target != pending.code:
            return self._wrong_code(pending, actor)
        del self._pending[chat_id]  # single use: a second /confirm finds nothing
        return Execute(chat_id, pending.command, actor, asked_by=pending.asked_by)

    def _wrong_code(self, pending: PendingConfirmation, actor: str) -> Reply:
        wrong = pending.wrong_codes + 1
        if wrong >= MAX_WRONG_CODES:
            del self._pending[pending.chat_id]
            return Reply(pending.chat_id, f"that code does not match; {wrong} wrong codes, "
                         f"question dropped: send {pending.command.raw} again", actor)
        self._pending[pending.chat_id] = replace(pending, wrong_codes=wrong)
        return Reply(pending.chat_id, "that code does not match the open question "
                                      f"({pending.command.raw})", actor)

    def _forget_expired(self, now: datetime, keep_chat: str) -> None:
        # The asking chat's own expired question stays, so /confirm can say "expired"
        # rather than "nothing to confirm".
        self._pending = {chat: p for chat, p in self._pending.items()
                         if chat == keep_chat or now <= p.expires_at}


def actor_of(update: Update) -> str:
    """Who sent an update, as the audit log names them."""
    if update.from_user_id is None:
        return f"telegram:chat:{update.chat_id}"
    return f"telegram:user:{update.from_user_id}@chat:{update.chat_id}"


def _question(command: Command) -> str:
    if command.name == "halt":
        return "Halt ALL bots?"
    if command.target == ALL_BOTS:
        return "Lift the fleet-wide halt?"
    return f"Resume bot {command.target}?"

