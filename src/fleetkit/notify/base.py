"""The sender port: what delivering one notification can come to, and nothing raised for it.

A sender answers every send with a SendOutcome sorted by what the caller must do next:

    delivered   every part reached the provider: mark the notification sent
    retry       nothing is wrong with the message (network error, timeout, 5xx, 429): try
                again later, after `retry_after_s` when the provider named a wait
    rejected    the provider refused it for good (bad token, unknown chat, bot blocked):
                retrying cannot help; dead-letter it and tell the operator `description`

A long text may go out as several parts. A failed send reports `delivered_parts`, the parts
already out (counting any skipped), and the next attempt passes it back as `skip_parts`, so
no part is ever sent twice because a later one failed. A reply lost on the wire is the one
exception: the provider may have accepted a part we never heard about, and that part is sent
again (at least once, never silently dropped).

A send may carry one picture (`photo`, PNG bytes: a chart). A sender that posts it as a
message of its own (Telegram) makes it part 1, ahead of the text's parts, so a photo that
went out is skipped like any other part and never sent twice; a sender that posts
everything in one request (a webhook) carries it inside its single part.

Outcomes, reprs and log lines never carry a credential: senders pass every provider or
network text through `redact` with their secrets before it leaves them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote

import httpx

REDACTED = "<redacted>"
# A secret shorter than this would blank out ordinary words in error texts; real tokens and
# webhook keys are far longer.
_MIN_SECRET_LEN = 4


class OutcomeKind(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one request to a provider did not succeed, sorted into retry or rejected."""

    kind: OutcomeKind
    description: str
    status: int | None = None  # the HTTP status; None when no reply came (network, timeout)
    retry_after_s: float | None = None  # the provider's own "wait this long", if it said

    def __post_init__(self) -> None:
        if self.kind is OutcomeKind.DELIVERED:
            raise ValueError("a Failure is either retry or rejected")
        if self.retry_after_s is not None and not 0 <= self.retry_after_s < math.inf:
            raise ValueError("retry_after_s must be a finite number of seconds, >= 0")

    @classmethod
    def retry(cls, description: str, status: int | None = None,
              retry_after_s: float | None = None) -> Failure:
        return cls(OutcomeKind.RETRY, description, status, retry_after_s)

    @classmethod
    def rejected(cls, description: str, status: int | None = None) -> Failure:
        return cls(OutcomeKind.REJECTED, description, status)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What became of one send call.

    `message_ids`: the provider's ids of the parts this call delivered (not the skipped
    ones), in order; `len(message_ids)` is how many messages this call put out, which is what
    a rate limiter must be told. `delivered_parts` of `total_parts` are out after this call;
    pass `delivered_parts` as `skip_parts` on the next attempt.
    """

    kind: OutcomeKind
    delivered_parts: int
    total_parts: int
    message_ids: tuple[str, ...] = ()
    description: str = ""
    status: int | None = None
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.delivered_parts <= self.total_parts:
            raise ValueError("delivered_parts must be between 0 and total_parts")
        if self.kind is OutcomeKind.DELIVERED and self.delivered_parts != self.total_parts:
            raise ValueError("a delivered outcome has every part delivered")
        if len(self.message_ids) > self.delivered_parts:
            raise ValueError("more message ids than delivered parts")

    @classmethod
    def delivered(cls, message_ids: Iterable[str], total_parts: int) -> SendOutcome:
        return cls(OutcomeKind.DELIVERED, total_parts, total_parts, tuple(message_ids))

    @classmethod
    def failed(cls, failure: Failure, delivered_parts: int, total_parts: int,
               message_ids: Iterable[str] = ()) -> SendOutcome:
        return cls(failure.kind, delivered_parts, total_parts, tuple(message_ids),
                   failure.description, failure.status, failure.retry_after_s)

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.DELIVERED


class Sender(Protocol):
    """Delivers a text, and optionally one picture, to a destination (a chat id, a channel,
    a webhook's routing key).

    Never raises for provider or network problems: they come back as a retry or rejected
    outcome. `skip_parts`: parts a previous attempt already delivered (its
    `delivered_parts`); they are not sent again. Splitting is deterministic, so the same
    text (and the same photo or none) splits into the same parts on every attempt.

    `photo`: PNG bytes sent with the text. Where the sender sends it as a message of its
    own, it is part 1 and the text's parts follow (`total_parts` = 1 + the text's parts),
    so `skip_parts` >= 1 means the photo is out and it is not sent again; where the sender
    posts one request per notification, the photo rides in that one part.
    """

    def send(self, destination: str, text: str, *, skip_parts: int = 0,
             photo: bytes | None = None) -> SendOutcome: ...


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and its URL-encoded form) replaced by <redacted>."""
    for secret in secrets:
        if len(secret) < _MIN_SECRET_LEN:
            continue
        for form in {secret, quote(secret, safe=""), quote(secret, safe=":")}:
            text = text.replace(form, REDACTED)
    return text


def retry_after_header_s(value: str | None, now_epoch_s: float) -> float | None:
    """An HTTP Retry-After header in seconds: delta-seconds or an HTTP-date; None if absent
    or unreadable (then the caller's own backoff decides)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        return None
    return max(0.0, when.timestamp() - now_epoch_s)


RETRY_STATUSES = frozenset({408, 429})  # and every 5xx


def is_retry_status(status: int) -> bool:
    """A refusal that may pass later (timeout, rate limit, the provider's own failure)."""
    return status in RETRY_STATUSES or status >= 500


def post_json(http: httpx.Client, url: str, payload: Mapping[str, object], what: str,
              hide: Callable[[str], str], timeout_s: float | None = None
              ) -> httpx.Response | Failure:
    """One POST, or the retry Failure a timeout or network error comes to (its text passed
    through `hide`, so no secret in an exception's message leaves): never raises for them."""
    return _post(http, url, what, hide, timeout_s, json=payload)


# A file in a multipart form: (file name, content, content type).
FormFile = tuple[str, bytes, str]


def post_multipart(http: httpx.Client, url: str, fields: Mapping[str, str],
                   files: Mapping[str, FormFile], what: str, hide: Callable[[str], str],
                   timeout_s: float | None = None) -> httpx.Response | Failure:
    """One multipart/form-data POST of `fields` and `files` (name -> (file name, bytes,
    content type)); like `post_json`, a timeout or network error comes back as a retry
    Failure, never raised."""
    return _post(http, url, what, hide, timeout_s, data=dict(fields), files=dict(files))


def _post(http: httpx.Client, url: str, what: str, hide: Callable[[str], str],
          timeout_s: float | None, **body: Any) -> httpx.Response | Failure:
    try:
        if timeout_s is None:
            return http.post(url, **body)
        return http.post(url, timeout=timeout_s, **body)
    except httpx.TimeoutException as exc:
        return Failure.retry(hide(f"{what}: timed out ({exc.__class__.__name__})"))
    except httpx.HTTPError as exc:  # refused, reset, reply lost, protocol garbage ...
        return Failure.retry(hide(f"{what}: {exc.__class__.__name__}: {exc}"))


class HttpSender:
    """A sender that owns an httpx client: closed by `close()` or at the end of a `with`."""

    _http: httpx.Client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class HiddenPathTransport(httpx.BaseTransport):
    """Puts the secret part of a URL's path in at the last moment, below httpx's client.

    The client builds, logs ("HTTP Request: POST ...") and keeps a Request whose path holds
    `slot`; this transport sends a copy with `slot` replaced by `secret_path`, a copy that
    lives only inside this call. So no httpx log line, Request object or error text seen
    above the transport ever holds the secret.
    """

    def __init__(self, inner: httpx.BaseTransport, slot: str, secret_path: str) -> None:
        self._inner = inner
        self._slot = slot.encode("ascii")
        self._secret_path = secret_path.encode("ascii")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw_path = request.url.raw_path.replace(self._slot, self._secret_path, 1)
        real = httpx.Request(request.method, request.url.copy_with(raw_path=raw_path),
                             headers=request.headers, stream=request.stream,
                             extensions=request.extensions)
        return self._inner.handle_request(real)

    def close(self) -> None:
        self._inner.close()
