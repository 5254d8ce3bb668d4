"""WebhookSender: delivers a notification as one JSON POST to an HTTP endpoint of the user's.

    {"destination": "ops", "text": "bot alpha halted: ...", "source": "fleetkit"}

A notification with a picture (`photo=`, PNG bytes) adds `"image_png_base64": "<base64>"`
to that same payload: still one POST, one part.

2xx is delivered; 408, 429, 5xx, timeouts and network errors are retry (a Retry-After header
is honoured, in seconds or as an HTTP-date); any other status is rejected (the endpoint's
URL or credentials are wrong, which no retry fixes). The whole text is one part.

The URL (a Slack-style webhook URL is a secret in itself) and the header values never
appear in outcomes, reprs or logs, httpx's own included: only the URL's scheme, host and
port do.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping

import httpx

from .base import (
    Failure,
    HiddenPathTransport,
    HttpSender,
    OutcomeKind,
    SendOutcome,
    is_retry_status,
    post_json,
    redact,
    retry_after_header_s,
)

log = logging.getLogger("fleetkit.notify.webhook")

_PATH_SLOT = "/REDACTED"
_BODY_EXCERPT = 200


class WebhookSender(HttpSender):
    """A Sender that POSTs each notification to `url` with `headers` (e.g. Authorization)."""

    def __init__(self, url: str, timeout_s: float = 10.0,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("webhook url must be an absolute http(s) URL")
        if parsed.userinfo:
            raise ValueError("webhook url: put credentials in headers, not in the URL")
        self._where = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"  # fit to show
        # httpx is given (and logs) only scheme and host; the secret-bearing path and query
        # go in below it.
        self._url = f"{self._where}{_PATH_SLOT}"
        self._secrets = _secrets_of(parsed, headers or {})
        inner = transport if transport is not None else httpx.HTTPTransport()
        secret_path = parsed.raw_path.decode("ascii")
        self._http = httpx.Client(timeout=timeout_s, headers=dict(headers or {}),
                                  transport=HiddenPathTransport(inner, _PATH_SLOT, secret_path))

    def __repr__(self) -> str:
        return f"WebhookSender({self._where!r})"

    def send(self, destination: str, text: str, *, skip_parts: int = 0,
             photo: bytes | None = None) -> SendOutcome:
        """POST `text` (and `photo`, base64 in the same payload) as one part."""
        if skip_parts < 0:
            raise ValueError("skip_parts cannot be negative")
        if skip_parts >= 1:  # its one part went out on an earlier attempt
            return SendOutcome.delivered((), 1)
        payload = {"destination": destination, "text": text, "source": "fleetkit"}
        if photo is not None:
            payload["image_png_base64"] = base64.b64encode(photo).decode("ascii")
        response = post_json(self._http, self._url, payload, self._where, self._redact)
        if isinstance(response, Failure):
            return self._failed(response, destination)
        status = response.status_code
        if 200 <= status < 300:
            return SendOutcome.delivered((), 1)
        description = self._redact(f"{self._where}: HTTP {status}: "
                                   f"{response.text[:_BODY_EXCERPT].strip()}")
        if is_retry_status(status):
            retry_after_s = retry_after_header_s(response.headers.get("Retry-After"),
                                                 time.time())
            return self._failed(Failure.retry(description, status, retry_after_s), destination)
        return self._failed(Failure.rejected(description, status), destination)

    def _failed(self, failure: Failure, destination: str) -> SendOutcome:
        level = logging.INFO if failure.kind is OutcomeKind.RETRY else logging.WARNING
        log.log(level, "webhook %s: %s", failure.kind, failure.description,
                extra={"action": f"notify.webhook.{failure.kind}", "destination": destination,
                       "retry_after_s": failure.retry_after_s})
        return SendOutcome.failed(failure, 0, 1)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)


def _secrets_of(url: httpx.URL, headers: Mapping[str, str]) -> list[str]:
    """Everything in the URL past the host, and every header value, longest first (so a
    secret that contains another is redacted whole)."""
    parts = [url.path.strip("/"), url.query.decode("ascii", "replace"),
             *(segment for segment in url.path.split("/") if segment),
             *(value for _name, value in url.params.multi_items()), *headers.values()]
    return sorted({part for part in parts if part}, key=len, reverse=True)
