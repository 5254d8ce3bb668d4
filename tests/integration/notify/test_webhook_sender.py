"""WebhookSender against a recording HTTP endpoint on loopback: what it posts, how each
answer is classified, and that the URL's secret parts stay out of outcomes and logs."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fleetkit.notify import OutcomeKind, WebhookSender

SECRET_PATH = "/hooks/T000/B000/s3cr3t-webhook-key"


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, object]


class Endpoint:
    """A webhook receiver: records every POST, answers with the queued Answers (then 200)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[Answer] = []
        self.stopping = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                endpoint.received.append(Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()},
                    json.loads(self.rfile.read(length))))
                answer = endpoint.answers.pop(0) if endpoint.answers else Answer()
                if answer.delay_s and endpoint.stopping.wait(answer.delay_s):
                    return
                payload = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client timed out and left
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}?token=q-s3cret"

    def __enter__(self) -> Endpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with Endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def sender(endpoint: Endpoint) -> Iterator[WebhookSender]:
    with WebhookSender(endpoint.url, timeout_s=2.0,
                       headers={"Authorization": "Bearer hdr-s3cret-value"}) as sender:
        yield sender


def test_a_notification_is_posted_as_json_with_the_headers(endpoint: Endpoint,
                                                           sender: WebhookSender) -> None:
    outcome = sender.send("ops", "bot alpha halted")
    assert outcome.ok and (outcome.delivered_parts, outcome.total_parts) == (1, 1)
    [request] = endpoint.received
    assert request.path == f"{SECRET_PATH}?token=q-s3cret"
    assert request.headers["authorization"] == "Bearer hdr-s3cret-value"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"destination": "ops", "text": "bot alpha halted",
                            "source": "fleetkit"}


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_delivered(endpoint: Endpoint, sender: WebhookSender, status: int) -> None:
    endpoint.answers.append(Answer(status, ""))
    assert sender.send("ops", "hi").ok


@pytest.mark.parametrize("status, retry_after, expected_s", [
    (429, "7", 7.0), (503, "2", 2.0), (500, None, None), (502, None, None), (408, None, None)])
def test_rate_limits_and_server_errors_are_retried(
        endpoint: Endpoint, sender: WebhookSender, status: int, retry_after: str | None,
        expected_s: float | None) -> None:
    endpoint.answers.append(Answer(status, "slow down",
                                   {"Retry-After": retry_after} if retry_after else {}))
    outcome = sender.send("ops", "hi")
    assert (outcome.kind, outcome.status, outcome.retry_after_s) == (
        OutcomeKind.RETRY, status, expected_s)
    assert outcome.delivered_parts == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 301])
def test_other_statuses_are_rejected(endpoint: Endpoint, sender: WebhookSender,
                                     status: int) -> None:
    endpoint.answers.append(Answer(status, "no such hook"))
    outcome = sender.send("ops", "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.REJECTED, status)
    assert "no such hook" in outcome.description


def test_a_timeout_is_retried(endpoint: Endpoint) -> None:
    endpoint.answers.append(Answer(delay_s=3.0))
    with WebhookSender(endpoint.url, timeout_s=0.3) as sender:
        started = time.monotonic()
        outcome = sender.send("ops", "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.RETRY, None)
    assert time.monotonic() - started < 2


def test_a_refused_connection_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with WebhookSender(f"http://127.0.0.1:{port}/hook", timeout_s=2.0) as sender:
        outcome = sender.send("ops", "hi")
    assert (outcome.kind, outcome.status) == (OutcomeKind.RETRY, None)
    assert "ConnectError" in outcome.description


def test_a_notification_already_delivered_is_not_posted_again(endpoint: Endpoint,
                                                              sender: WebhookSender) -> None:
    assert sender.send("ops", "hi", skip_parts=1).ok
    assert endpoint.received == []


def test_the_urls_secrets_and_header_values_stay_out_of_outcomes_and_logs(
        endpoint: Endpoint, sender: WebhookSender, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # an endpoint that echoes what it was sent, as error pages sometimes do
    endpoint.answers += [Answer(404, f"no hook at {SECRET_PATH}?token=q-s3cret"),
                         Answer(500, "Bearer hdr-s3cret-value rejected")]
    outcomes = [sender.send("ops", "one"), sender.send("ops", "two"), sender.send("ops", "ok")]
    assert [o.kind for o in outcomes] == [OutcomeKind.REJECTED, OutcomeKind.RETRY,
                                          OutcomeKind.DELIVERED]
    assert "HTTP Request: POST http://127.0.0.1" in caplog.text  # httpx's line was captured
    assert "webhook rejected" in caplog.text and "webhook retry" in caplog.text
    seen = caplog.text + repr([r.__dict__ for r in caplog.records]) + repr(outcomes) \
        + repr(sender)
    for secret in ("s3cr3t-webhook-key", "q-s3cret", "hdr-s3cret-value"):
        assert secret not in seen
