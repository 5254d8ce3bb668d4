"""TelegramSender: sends texts through the Telegram Bot API and reads the bot's incoming messages.

    with TelegramSender(token) as telegram:
        outcome = telegram.send("-1001234567890", text, skip_parts=row.delivered_parts)

Texts go as plain text (no parse_mode: a cut can never break Markdown or HTML), split into
numbered parts when longer than Telegram's limit (see `split_message`). A picture (`photo=`,
PNG bytes) goes first, by sendPhoto as multipart/form-data with the text's first line as its
caption (`photo_caption`), and counts as part 1: the text's parts follow it.

Every failure, of sendMessage and sendPhoto alike, comes back as a Failure/SendOutcome,
classified by HTTP status: 429 and 5xx (and timeouts, refused connections) are retry, with
Telegram's `parameters.retry_after`; any other 4xx (401 bad token, 400 chat not found, 403
bot blocked) is rejected.

The token never leaves this module: it is put into the URL by a transport below httpx's
client (HiddenPathTransport), so httpx's own "HTTP Request: POST ..." log line, its Request
objects and its error texts only ever see `/botREDACTED/`; every text we build is redacted
as well.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from .base import (
    Failure,
    FormFile,
    HiddenPathTransport,
    HttpSender,
    OutcomeKind,
    SendOutcome,
    is_retry_status,
    post_json,
    post_multipart,
    redact,
    retry_after_header_s,
)

log = logging.getLogger("fleetkit.notify.telegram")

DEFAULT_API_BASE_URL = "https://api.telegram.org"
# What httpx sees (and logs) in place of the token; HiddenPathTransport swaps it back.
_BOT_PATH_SLOT = "/botREDACTED/"
# Telegram documents 4096 "characters". Clients disagree whether that means code points or
# UTF-16 code units (the unit of Telegram's entity offsets); we count UTF-16 units, never
# fewer than code points, so a part within it fits under either reading.
TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024  # a photo's caption, counted like a text
TELEGRAM_PHOTO_LIMIT_BYTES = 10_000_000  # "10 MB max" for a photo sent by upload
_MIN_LIMIT = 32  # room for a "(12/34) " label and some text
_MAX_CLUSTER = 32  # how far back a hard cut looks for a grapheme boundary before giving up
_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class Update:
    """One text message someone sent the bot (the raw material of two-way commands)."""

    update_id: int
    chat_id: str  # usable as a send destination as is
    text: str
    from_user_id: str | None  # None for posts without a sender (channels)


@dataclass(frozen=True, slots=True)
class UpdateBatch:
    """The answer to one getUpdates call.

    `next_offset` is what to pass as `offset` next time: one past the last update seen
    (including updates that are not text messages and so are not in `updates`), or the
    offset asked with when nothing came. Passing it confirms everything before it to
    Telegram, which then never sends those again.
    """

    updates: tuple[Update, ...] = ()
    next_offset: int | None = None
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class TelegramSender(HttpSender):
    """A Sender for one bot token; also polls the bot's updates.

    `transport` lets tests plug in httpx.MockTransport or any other httpx transport; the
    default is a plain httpx.HTTPTransport (no proxy from the environment).
    """

    def __init__(self, token: str, api_base_url: str = DEFAULT_API_BASE_URL,
                 timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None,
                 text_limit: int = TELEGRAM_TEXT_LIMIT) -> None:
        # The message names the problem, never the value: it may be a pasted secret.
        if not token or token != token.strip() or "/" in token:
            raise ValueError("Telegram bot token is empty or malformed")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if text_limit < _MIN_LIMIT:
            raise ValueError(f"text_limit must be at least {_MIN_LIMIT}")
        self._token = token
        self._base_url = api_base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._text_limit = text_limit
        inner = transport if transport is not None else httpx.HTTPTransport()
        secret_path = f"/bot{quote(token, safe=':')}/"
        self._http = httpx.Client(transport=HiddenPathTransport(inner, _BOT_PATH_SLOT, secret_path),
                                  timeout=timeout_s)

    def __repr__(self) -> str:
        return f"TelegramSender(api_base_url={self._base_url!r})"

    # --- sending --------------------------------------------------------------------------

    def send(self, destination: str, text: str, *, skip_parts: int = 0,
             photo: bytes | None = None) -> SendOutcome:
        """Send `text` to chat `destination` (a chat id, or @channelname), part by part,
        skipping the first `skip_parts` parts (delivered by an earlier attempt).

        With `photo` (PNG bytes), part 1 is the photo (sendPhoto, captioned with the text's
        first line) and the text's parts follow; a blank text then sends the photo alone.
        """
        if skip_parts < 0:
            raise ValueError("skip_parts cannot be negative")
        parts = split_message(text, self._text_limit)
        if not parts and photo is None:  # Telegram answers 400 "message text is empty"
            return SendOutcome.failed(Failure.rejected("message text is empty"), 0, 1)
        first = 0 if photo is None else 1  # the text's first part's index among all parts
        total = first + len(parts)
        ids: list[str] = []
        for index in range(min(skip_parts, total), total):
            if index < first and photo is not None:
                answer = self._call_multipart(
                    "sendPhoto", {"chat_id": destination, "caption": photo_caption(text)},
                    {"photo": ("chart.png", photo, "image/png")})
            else:
                answer = self._call("sendMessage", {
                    "chat_id": destination, "text": parts[index - first],
                    "disable_web_page_preview": True})
            if isinstance(answer, Failure):
                self._log_failure(answer, destination, part=index + 1, of=total)
                return SendOutcome.failed(answer, index, total, ids)
            ids.append(_message_id(answer))
        return SendOutcome.delivered(ids, total)

    # --- receiving ------------------------------------------------------------------------

    def get_updates(self, offset: int | None = None, timeout_s: int = 0,
                    limit: int = 100) -> UpdateBatch:
        """New text messages to the bot, long-polling up to `timeout_s` seconds for one.

        Only one poller per bot may run (Telegram answers a second one 409, rejected here).
        """
        if timeout_s < 0 or not 1 <= limit <= 100:
            raise ValueError("timeout_s must be >= 0 and limit between 1 and 100")
        payload: dict[str, object] = {"timeout": timeout_s, "limit": limit,
                                      "allowed_updates": ["message"]}
        if offset is not None:
            payload["offset"] = offset
        # The HTTP read must outlast the long poll, or every quiet poll would time out.
        answer = self._call("getUpdates", payload, timeout_s=timeout_s + self._timeout_s)
        if isinstance(answer, Failure):
            self._log_failure(answer, None)
            return UpdateBatch(next_offset=offset, failure=answer)
        batch = _update_batch(answer, offset)
        if batch.failure is not None:
            self._log_failure(batch.failure, None)
        return batch

    # --- lifecycle ------------------------------------------------------------------------

    # --- internals ------------------------------------------------------------------------

    def _call(self, method: str, payload: Mapping[str, object],
              timeout_s: float | None = None) -> object:
        """The `result` of one Bot API call, or the Failure it came to. Never raises for
        the network or the provider."""
        response = post_json(self._http, f"{self._base_url}{_BOT_PATH_SLOT}{method}",
                             payload, method, self._redact, timeout_s)
        if isinstance(response, Failure):
            return response
        return self._classify(method, response)

    def _call_multipart(self, method: str, fields: Mapping[str, str],
                        files: Mapping[str, FormFile]) -> object:
        """`_call` for a method that uploads a file (multipart/form-data)."""
        response = post_multipart(self._http, f"{self._base_url}{_BOT_PATH_SLOT}{method}",
                                  fields, files, method, self._redact)
        if isinstance(response, Failure):
            return response
        return self._classify(method, response)

    def _classify(self, method: str, response: httpx.Response) -> object:
        status = response.status_code
        body = _json_object(response)
        if body is not None and body.get("ok") is True and 200 <= status < 300:
            return body.get("result")
        description = self._redact(f"{method}: HTTP {status}: {_description(body)}")
        if is_retry_status(status):
            return Failure.retry(description, status, _retry_after_s(body, response))
        if 200 <= status < 300:
            # Not Telegram talking (a captive portal, a broken proxy): the message probably
            # did not go out, and resending risks a duplicate, never a loss.
            return Failure.retry(description, status)
        return Failure.rejected(description, status)

    def _redact(self, text: str) -> str:
        return redact(text, [self._token])

    def _log_failure(self, failure: Failure, destination: str | None, part: int = 1,
                     of: int = 1) -> None:
        level = logging.INFO if failure.kind is OutcomeKind.RETRY else logging.WARNING
        log.log(level, "telegram %s: %s", failure.kind, failure.description,
                extra={"action": f"notify.telegram.{failure.kind}", "destination": destination,
                       "part": part, "parts": of, "retry_after_s": failure.retry_after_s})


def _json_object(response: httpx.Response) -> dict[str, object] | None:
    try:
        body = response.json()
    except ValueError:  # not JSON (or not UTF-8): an HTML error page, a truncated body
        return None
    return body if isinstance(body, dict) else None


def _description(body: Mapping[str, object] | None) -> str:
    description = body.get("description") if body is not None else None
    if isinstance(description, str) and description:
        return description[:500]
    return "no description (the reply was not a Bot API answer)"


def _retry_after_s(body: Mapping[str, object] | None, response: httpx.Response) -> float | None:
    """Telegram's `parameters.retry_after` (seconds); an HTTP Retry-After header if a proxy in
    between answered instead."""
    parameters = body.get("parameters") if body is not None else None
    if isinstance(parameters, dict):
        value = parameters.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return retry_after_header_s(response.headers.get("Retry-After"), time.time())


def _message_id(result: object) -> str:
    # ok: true means Telegram took the message; an id we cannot read must not make us
    # send it again, so it is recorded as "" rather than treated as a failure.
    value = result.get("message_id") if isinstance(result, dict) else None
    return str(value) if isinstance(value, int) else ""


def _update_batch(result: object, offset: int | None) -> UpdateBatch:
    ids = _update_ids(result)
    if not isinstance(result, list) or ids is None:
        return UpdateBatch(next_offset=offset, failure=Failure.retry(
            "getUpdates: HTTP 200: the reply is not a list of updates"))
    updates = tuple(update for update_id, item in zip(ids, result, strict=True)
                    if (update := _text_update(update_id, item)) is not None)
    return UpdateBatch(updates, max(ids) + 1 if ids else offset)


def _update_ids(result: object) -> list[int] | None:
    """Every update's id, or None when the reply is not a list of updates with ids."""
    if not isinstance(result, list):
        return None
    ids: list[int] = []
    for item in result:
        value = item.get("update_id") if isinstance(item, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        ids.append(value)
    return ids


def _text_update(update_id: int, item: Mapping[str, object]) -> Update | None:
    """The text message in an update, or None for anything else (photos, edits, joins)."""
    message = item.get("message")
    if not isinstance(message, dict):
        return None
    text, chat, sender = message.get("text"), message.get("chat"), message.get("from")
    if not isinstance(text, str) or not isinstance(chat, dict) or "id" not in chat:
        return None
    user = str(sender["id"]) if isinstance(sender, dict) and "id" in sender else None
    return Update(update_id, str(chat["id"]), text, user)


# --- splitting a long text into messages ----------------------------------------------------


def split_message(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """The messages that carry `text`: itself when it fits in `limit` UTF-16 units, else
    parts labelled "(1/3) ", "(2/3) " ..., each within `limit` label included.

    A part ends at the last line break in its second half, else the last space there (the
    separator is dropped), else at a hard cut between grapheme clusters: never inside a
    surrogate pair, an emoji sequence, a flag or a letter and its accents (unless a single
    cluster runs past `_MAX_CLUSTER` code points). Whitespace-only parts are dropped, and a
    blank text has no parts. Deterministic, which resuming with `skip_parts` relies on.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT}")
    if not text.strip():
        return []
    if utf16_len(text) <= limit:
        return [text]
    digits = 1
    while True:  # labels widen when the part count gains a digit; settle on a width that fits
        chunks = _chunks(text, limit - (2 * digits + 4))  # "(" k "/" n ") "
        if len(str(len(chunks))) <= digits:
            return [f"({k}/{len(chunks)}) {chunk}" for k, chunk in enumerate(chunks, 1)]
        digits += 1


def photo_caption(text: str, limit: int = TELEGRAM_CAPTION_LIMIT) -> str:
    """A photo's caption: the text's first non-blank line, cut to `limit` UTF-16 units
    (ending "…" when cut, never inside a character); "" for a blank text. The whole text
    follows the photo anyway: the caption only says what the picture is."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if utf16_len(line) <= limit:
        return line
    end = _fit(line, 0, limit - 1)  # room for the ellipsis
    for cut in range(end, max(0, end - _MAX_CLUSTER), -1):
        if not _inside_cluster(line, cut):
            end = cut
            break
    return line[:end].rstrip() + "…"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _chunks(text: str, budget: int) -> list[str]:
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = _fit(text, start, budget)
        if end == len(text):
            part, start = text[start:], end
        else:
            cut, skip = _cut(text, start, end)
            part, start = text[start:cut], cut + skip
        if part.strip():
            chunks.append(part)
    return chunks


def _fit(text: str, start: int, budget: int) -> int:
    """The furthest `end` with text[start:end] within `budget` UTF-16 units."""
    used, end = 0, start
    while end < len(text):
        used += 2 if ord(text[end]) > 0xFFFF else 1
        if used > budget:
            break
        end += 1
    return end


def _cut(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the part starting at `start` ends (it may run up to `end`), and how many
    separator characters to drop there."""
    half = start + (end - start) // 2
    newline = text.rfind("\n", half, end + 1)  # text[end] itself may be the separator
    if newline > start:
        if text[newline - 1] == "\r":
            return newline - 1, 2
        return newline, 1
    space = text.rfind(" ", half, end + 1)
    if space > start:
        return space, 1
    for cut in range(end, max(start, end - _MAX_CLUSTER), -1):
        if not _inside_cluster(text, cut):
            return cut, 0
    return end, 0


def _inside_cluster(text: str, at: int) -> bool:
    """Whether a cut between text[at-1] and text[at] splits a user-perceived character.

    An approximation of Unicode's grapheme rules that covers what alerts carry: accents,
    emoji with skin tones or variation selectors, ZWJ sequences, tag flags, flag pairs, CRLF.
    """
    before, after = text[at - 1], text[at]
    if (before, after) == ("\r", "\n") or _ZWJ in (before, after) or _extends(after):
        return True
    if _regional_indicator(before) and _regional_indicator(after):
        run = 0
        while at - 1 - run >= 0 and _regional_indicator(text[at - 1 - run]):
            run += 1
        return run % 2 == 1  # flags pair up from the start of the run
    return False


def _extends(char: str) -> bool:
    """Whether `char` belongs to the character before it."""
    code = ord(char)
    return (unicodedata.category(char) in ("Mn", "Me", "Mc")  # accents, VS, keycaps
            or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
            or 0xE0020 <= code <= 0xE007F)  # tag characters (subdivision flags)


def _regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
