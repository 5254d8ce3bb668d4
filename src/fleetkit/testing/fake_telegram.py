"""A fake Telegram Bot API on loopback: sendMessage, sendPhoto and getUpdates, with faults
on demand.

    with FakeTelegram() as telegram:
        sender = TelegramSender(telegram.token, api_base_url=telegram.url)
        sender.send("42", "hello")
        assert [m.text for m in telegram.messages] == ["hello"]

It answers like Telegram where a sender can tell the difference: `{"ok": true, "result":
...}` on success, `{"ok": false, "error_code": N, "description": "..."}` otherwise, with
the same HTTP status. A wrong token gets 401 "Unauthorized"; an unknown method 404; a chat
outside `chats` (when given) 400 "Bad Request: chat not found"; a blank text 400 "Bad
Request: message text is empty"; a text over 4096 UTF-16 code units 400 "Bad Request:
message is too long" (the stricter reading of Telegram's limit: real Telegram has been seen
to accept 4096 astral characters, so a sender that passes here passes there).

sendPhoto takes multipart/form-data (chat_id, caption, and the file as `photo`), as a real
upload does; the picture must be a PNG (else 400 "Bad Request: IMAGE_PROCESS_FAILED"), at
most 10 MiB (else 400 "Bad Request: file is too big"), its caption at most 1024 UTF-16
units (else 400 "Bad Request: message caption is too long"). An accepted photo is recorded
among `messages` with `photo=True`, its byte size and its caption (`text` is "" for it).

Faults (`fail_next(count, kind, ...)`) fire on the next `count` matching calls, first armed
first fired, after the token check:

    rate_limit          429 "Too Many Requests: retry after N", parameters.retry_after N
    server_error        `status` (500, 502, 503 ...) with a Telegram-style body
    blocked             403 "Forbidden: bot was blocked by the user"
    drop_after_accept   the message is accepted and recorded, then the connection closes
                        without a reply: the reply is lost, the message is not
    slow                wait `delay_s`, then answer normally (a client timeout before then
                        leaves a recorded message the client never heard of)

getUpdates behaves like Telegram's: update ids rise by one; `offset` confirms (forgets)
every update below it and returns those from it on; `timeout` long-polls until an update is
injected (`inject_message`) or the time is up.

Tests only: it never talks to the real Telegram, and nothing else should talk to it.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import logging
import re
import struct
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args
from urllib.parse import parse_qsl

from fleetkit.testing.loopback import LoopbackHandler, LoopbackServer, ServedInThread

log = logging.getLogger(__name__)

FaultKind = Literal["rate_limit", "server_error", "blocked", "drop_after_accept", "slow"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
TEXT_LIMIT_UTF16 = 4096
DEFAULT_TOKEN = "123456789:AAFake-telegram-token_for-tests-only00"  # noqa: S105 - a fake
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
_ANY_TOKEN = re.compile(r"/bot[^/\s]+/")
_MAX_BODY = 1 << 20
PHOTO_LIMIT_BYTES = 10 << 20  # Telegram's limit for an uploaded photo
CAPTION_LIMIT_UTF16 = 1024
_MAX_UPLOAD = PHOTO_LIMIT_BYTES + (1 << 20)  # a too-big photo and its form, read whole
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FIRST_UPDATE_ID = 700_000_000  # far from 0, as Telegram's are: a client must not assume 0


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the fake accepted (what the chat's members would now see).

    A photo (sendPhoto) has `photo` True, `photo_size` its bytes, `caption` its caption and
    `text` ""; a text message has `photo` False, `photo_size` 0 and `caption` "".
    """

    message_id: int
    chat_id: str
    text: str
    at: datetime
    photo: bool = False
    photo_size: int = 0
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart/form-data call."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ApiCall:
    """A call that reached the fake with the right token, faulted or not."""

    method: str
    chat_id: str | None
    text: str | None
    fault: FaultKind | None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Mapping[str, object] | None  # None: close the connection without a reply


@dataclass(slots=True)
class _Fault:
    kind: FaultKind
    remaining: int
    passes: int  # matching calls still to let through before firing
    chat_id: str | None
    method: str | None
    retry_after_s: int
    status: int
    delay_s: float

    def matches(self, method: str, chat_id: str | None) -> bool:
        return (self.remaining > 0 and self.method in (None, method)
                and self.chat_id in (None, chat_id))


def _error(status: int, description: str, **parameters: object) -> Reply:
    body: dict[str, object] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(status, body)


def _json_chat_id(chat_id: str) -> object:
    """Telegram's JSON carries numeric chat ids as numbers."""
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class FakeTelegram(ServedInThread):
    """The fake Bot API for one bot `token`, served on `host:port` (port 0: any free one).

    `chats`: the chat ids that exist (None: every chat exists). Thread-safe: the server's
    request threads and the test share the state under one lock.
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, chats: Iterable[str] | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Handler, "fake-telegram", host, port)
        self.token = token
        self._chats = None if chats is None else {str(chat) for chat in chats}
        self._state = threading.Condition()
        self._messages: list[SentMessage] = []
        self._calls: list[ApiCall] = []
        self._faults: list[_Fault] = []
        self._updates: list[dict[str, object]] = []
        self._update_ids = itertools.count(_FIRST_UPDATE_ID)
        self._message_ids = itertools.count(1)

    # --- what tests read ------------------------------------------------------------------

    @property
    def messages(self) -> list[SentMessage]:
        """Every message accepted so far, oldest first."""
        with self._state:
            return list(self._messages)

    def texts(self, chat_id: str | None = None) -> list[str]:
        """The texts of the text messages (photos left out), oldest first."""
        return [m.text for m in self.messages
                if not m.photo and chat_id in (None, m.chat_id)]

    def photos(self, chat_id: str | None = None) -> list[SentMessage]:
        """The photos accepted so far, oldest first."""
        return [m for m in self.messages if m.photo and chat_id in (None, m.chat_id)]

    @property
    def calls(self) -> list[ApiCall]:
        """Every call that passed the token check, oldest first."""
        with self._state:
            return list(self._calls)

    # --- what tests arrange ---------------------------------------------------------------

    def fail_next(self, count: int, kind: FaultKind, *, after: int = 0,
                  chat_id: str | None = None, method: str | None = "sendMessage",
                  retry_after_s: int = 1, status: int = 500, delay_s: float = 2.0) -> None:
        """Misbehave on the next `count` calls of `method` (None: any) for `chat_id` (None:
        any chat; calls without one, like getUpdates, match only None), once `after`
        matching calls have gone through normally (to fail the second part of a text)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        if count < 1 or after < 0 or retry_after_s < 0 or delay_s < 0 \
                or not 500 <= status <= 599:
            raise ValueError("count >= 1; after, retry_after_s, delay_s >= 0; status 5xx")
        with self._state:
            self._faults.append(_Fault(kind, count, after,
                                       None if chat_id is None else str(chat_id),
                                       method, retry_after_s, status, delay_s))

    def inject_message(self, chat_id: str | int, text: str,
                       from_user_id: str | int | None = None) -> int:
        """Someone writes `text` to the bot in `chat_id`; returns the update's id."""
        chat = str(chat_id)
        message: dict[str, object] = {
            "message_id": next(self._message_ids), "date": _unix_now(), "text": text,
            "chat": {"id": _json_chat_id(chat),
                     "type": "group" if chat.startswith("-") else "private"}}
        if from_user_id is not None:
            message["from"] = {"id": _json_chat_id(str(from_user_id)), "is_bot": False,
                               "first_name": "Tester"}
        return self.inject_update({"message": message})

    def inject_update(self, update: Mapping[str, object]) -> int:
        """Queue any update (an edited message, a photo ...); returns its update_id."""
        with self._state:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
            self._state.notify_all()
        return update_id

    # --- the API --------------------------------------------------------------------------

    def handle(self, token: str, method: str, params: Mapping[str, object]) -> Reply:
        """Answer one call (the HTTP layer calls this; tests may too)."""
        if token != self.token:
            return _error(401, "Unauthorized")
        chat_id = str(params["chat_id"]) if params.get("chat_id") not in (None, "") else None
        text = params.get("text")
        with self._state:
            fault = self._take_fault(method, chat_id)
            self._calls.append(ApiCall(method, chat_id, text if isinstance(text, str) else None,
                                       None if fault is None else fault.kind))
        if fault is not None and fault.kind not in ("slow", "drop_after_accept"):
            return _fault_reply(fault)
        if fault is not None and fault.kind == "slow" and self.stopping.wait(fault.delay_s):
            return Reply(503, None)  # shutting down: nobody is waiting for this answer
        reply = self._dispatch(method, chat_id, params)
        if fault is not None and fault.kind == "drop_after_accept":
            return Reply(reply.status, None)
        return reply

    def _take_fault(self, method: str, chat_id: str | None) -> _Fault | None:
        """The fault that fires on this call, if any (caller holds the lock). Every armed
        fault that matches counts the call, so `after` counts calls, not other faults."""
        fired: _Fault | None = None
        for fault in self._faults:
            if not fault.matches(method, chat_id):
                continue
            if fault.passes > 0:
                fault.passes -= 1
            elif fired is None:
                fault.remaining -= 1
                fired = fault
        return fired

    def _dispatch(self, method: str, chat_id: str | None, params: Mapping[str, object]) -> Reply:
        if method == "sendMessage":
            return self._send_message(chat_id, params.get("text"))
        if method == "sendPhoto":
            return self._send_photo(chat_id, params.get("photo"), params.get("caption"))
        if method == "getUpdates":
            return self._get_updates(params)
        if method == "getMe":
            return Reply(200, {"ok": True, "result": {
                "id": int(self.token.split(":")[0]) if self.token[:1].isdigit() else 1,
                "is_bot": True, "first_name": "Fake", "username": "fake_bot"}})
        return _error(404, "Not Found")

    def _known_chat(self, chat_id: str | None) -> str | Reply:
        """The chat a send goes to, or Telegram's answer when there is none or it does not
        exist."""
        if chat_id is None:
            return _error(400, "Bad Request: chat_id is empty")
        if self._chats is not None and chat_id not in self._chats:
            return _error(400, "Bad Request: chat not found")
        return chat_id

    def _send_message(self, to: str | None, text: object) -> Reply:
        chat_id = self._known_chat(to)
        if isinstance(chat_id, Reply):
            return chat_id
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16_units(text) > TEXT_LIMIT_UTF16:
            return _error(400, "Bad Request: message is too long")
        with self._state:
            message = SentMessage(next(self._message_ids), chat_id, text, datetime.now(UTC))
            self._messages.append(message)
        return Reply(200, {"ok": True, "result": {
            "message_id": message.message_id, "date": _unix_now(), "text": text,
            "chat": _chat(chat_id)}})

    def _send_photo(self, to: str | None, photo: object, caption: object) -> Reply:
        chat_id = self._known_chat(to)
        if isinstance(chat_id, Reply):
            return chat_id
        if not isinstance(photo, Upload) or not photo.data:
            return _error(400, "Bad Request: there is no photo in the request")
        if len(photo.data) > PHOTO_LIMIT_BYTES:
            return _error(400, "Bad Request: file is too big")
        size = _png_size(photo.data)
        if size is None:
            return _error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = caption if isinstance(caption, str) else ""
        if utf16_units(caption) > CAPTION_LIMIT_UTF16:
            return _error(400, "Bad Request: message caption is too long")
        with self._state:
            message = SentMessage(next(self._message_ids), chat_id, "", datetime.now(UTC),
                                  photo=True, photo_size=len(photo.data), caption=caption)
            self._messages.append(message)
        width, height = size
        result: dict[str, object] = {
            "message_id": message.message_id, "date": _unix_now(), "chat": _chat(chat_id),
            "photo": [{"file_id": f"photo-{message.message_id}",
                       "file_unique_id": f"p{message.message_id}", "width": width,
                       "height": height, "file_size": len(photo.data)}]}
        if caption:
            result["caption"] = caption
        return Reply(200, {"ok": True, "result": result})

    def _get_updates(self, params: Mapping[str, object]) -> Reply:
        try:
            offset = _optional_int(params.get("offset"))
            limit = min(100, max(1, _optional_int(params.get("limit")) or 100))
            timeout_s = max(0, _optional_int(params.get("timeout")) or 0)
        except ValueError as exc:
            return _error(400, f"Bad Request: {exc}")
        with self._state:
            if offset is not None and offset >= 0:  # confirmed: Telegram forgets them
                self._updates = [u for u in self._updates if _update_id(u) >= offset]
            self._state.wait_for(lambda: bool(self._updates) or self.stopping.is_set(),
                                 timeout=timeout_s)
            pending = self._updates[offset:] if offset is not None and offset < 0 \
                else list(self._updates)
        return Reply(200, {"ok": True, "result": pending[:limit]})

    # --- lifecycle ------------------------------------------------------------------------

    def _wake_waiters(self) -> None:
        """Cut short any long poll still holding a request."""
        with self._state:
            self._state.notify_all()


def _fault_reply(fault: _Fault) -> Reply:
    if fault.kind == "rate_limit":
        return _error(429, f"Too Many Requests: retry after {fault.retry_after_s}",
                      retry_after=fault.retry_after_s)
    if fault.kind == "blocked":
        return _error(403, "Forbidden: bot was blocked by the user")
    return _error(fault.status, "Internal Server Error")


def _chat(chat_id: str) -> dict[str, object]:
    """A sent message's `chat` object."""
    return {"id": _json_chat_id(chat_id),
            "type": "group" if chat_id.startswith("-") else "private"}


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid grey PNG of `width` x `height` pixels: something for tests to send."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))  # filter 0, grey
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (_PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) from its IHDR chunk; None when `data` is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width and height else None


def _multipart(content_type: str, body: bytes) -> dict[str, object]:
    """A multipart/form-data body's fields: str for plain ones, Upload for files."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("can't parse the multipart/form-data body")
    fields: dict[str, object] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            fields[name] = Upload(filename, part.get_content_type(), data)
    return fields


def _update_id(update: Mapping[str, object]) -> int:
    value = update["update_id"]
    return value if isinstance(value, int) else 0


def _optional_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _unix_now() -> int:
    return int(datetime.now(UTC).timestamp())


class _Handler(LoopbackHandler):
    """One HTTP request in, one Reply out (or a closed connection)."""

    server: LoopbackServer

    def log_message(self, format: str, *args: object) -> None:
        # The request line holds a token (right or wrong): keep it out of the test's logs too.
        log.debug("fake telegram: %s", _ANY_TOKEN.sub("/bot<token>/", format % args))

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        match = _PATH.match(path)
        if match is None:
            self._send(_error(404, "Not Found"))
            return
        try:
            params = self._params(query)
        except ValueError as exc:
            self._send(_error(400, f"Bad Request: {exc}"))
            return
        fake: FakeTelegram = self.server.owner
        self._send(fake.handle(match["token"], match["method"], params))

    def _params(self, query: str) -> dict[str, object]:
        """Parameters as Telegram takes them: query string, then a JSON, form or
        multipart/form-data body (a file upload)."""
        params: dict[str, object] = dict(parse_qsl(query))
        multipart = self.headers.get_content_type() == "multipart/form-data"
        length = min(int(self.headers.get("Content-Length") or 0),
                     _MAX_UPLOAD if multipart else _MAX_BODY)
        body = self.rfile.read(length) if length else b""
        if not body:
            return params
        if multipart:
            params.update(_multipart(self.headers.get("Content-Type", ""), body))
        elif self.headers.get_content_type() == "application/json":
            try:
                data = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"can't parse JSON: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError("the JSON body is not an object")
            params.update(data)
        else:
            params.update(parse_qsl(body.decode("utf-8", "replace")))
        return params

    def _send(self, reply: Reply) -> None:
        if reply.body is None:
            self.drop()
            return
        self.send_body(reply.status, "application/json", json.dumps(reply.body).encode())
