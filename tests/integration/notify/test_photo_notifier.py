"""A notification with a picture (outbox.attachment: the end-of-day P&L chart) through the
notifier, on a real database (SQLite and PostgreSQL) and fake Bot API and webhook endpoints
on loopback: the photo goes ahead of the text on every route, a retry never sends it twice,
and a chart file that is missing, unreadable or not a PNG never costs the text."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.config.notify import NotifySettings
from fleetkit.core.alerts import Severity
from fleetkit.notify.ratelimit import Backoff
from fleetkit.notify.telegram import TelegramSender
from fleetkit.notify.webhook import WebhookSender
from fleetkit.runtime.notifier import Notifier, RouteLink
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.outbox import Outbox
from fleetkit.store.rows import enqueue_notification
from fleetkit.store.schema import deliveries, outbox
from fleetkit.testing.fake_telegram import FakeTelegram, png_bytes
from tests.integration.notify.test_photo_senders import Hook

T0 = datetime(2026, 11, 20, 22, 5, tzinfo=UTC)
BRIEF_CHAT, OPS_CHAT = "2001", "2002"
OPS_TOKEN = "987654321:AAOps-token_for-photo-tests-000000000"
CHART = png_bytes(64, 48)
REPORT = "📊 P&L 2026-11-20: +120.50 USDT\nalpha +100.00\nbeta +20.50"


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def ops() -> Iterator[FakeTelegram]:
    with FakeTelegram(OPS_TOKEN) as fake:
        yield fake


@pytest.fixture
def hook() -> Iterator[Hook]:
    with Hook() as served:
        yield served


def settings(with_hook: bool = False) -> NotifySettings:
    routes: list[dict[str, Any]] = [
        {"name": "brief", "type": "telegram", "concerns": ["brief"], "chat_id": BRIEF_CHAT,
         "token_env": "T_BRIEF"},
        {"name": "ops", "type": "telegram", "concerns": ["infrastructure"],
         "chat_id": OPS_CHAT, "token_env": "T_OPS"},
    ]
    if with_hook:
        routes.append({"name": "hook", "type": "webhook", "concerns": ["brief"],
                       "url_env": "HOOK_URL"})
    return NotifySettings.model_validate({"routes": routes, "max_attempts": 3})


def notifier(database: Any, telegram: FakeTelegram, ops: FakeTelegram, clock: Clock,
             hook: Hook | None = None, attachment_dir: Path | None = None) -> Notifier:
    config = settings(with_hook=hook is not None)
    links = {
        "brief": RouteLink("brief", BRIEF_CHAT, TelegramSender(
            telegram.token, api_base_url=telegram.url, timeout_s=2.0)),
        "ops": RouteLink("ops", OPS_CHAT, TelegramSender(
            ops.token, api_base_url=ops.url, timeout_s=2.0)),
    }
    if hook is not None:
        links["hook"] = RouteLink("hook", "hook", WebhookSender(
            f"{hook.url}/hooks/s3cret", timeout_s=2.0))
    return Notifier(Outbox(database.engine), config, links, "test", now=clock,
                    backoff=Backoff(2.0, 60.0, rng=_NoJitter()),
                    attachment_dir=attachment_dir)


def enqueue_chart(database: Any, attachment: str | None, text: str = REPORT) -> None:
    Outbox(database.engine).enqueue(kind="report.pnl", concern="brief",
                                    severity=Severity.INFO, text=text, now=T0,
                                    dedup_key="report.pnl:2026-11-20", attachment=attachment)


def chart_file(tmp_path: Path, data: bytes = CHART) -> Path:
    path = tmp_path / "charts" / "pnl-2026-11-20.png"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def delivery_rows(database: Any) -> list[tuple[str, str, int]]:
    with database.engine.connect() as conn:
        return [(r.route, r.status, r.delivered_parts) for r in conn.execute(
            select(deliveries.c.route, deliveries.c.status, deliveries.c.delivered_parts)
            .order_by(deliveries.c.id))]


def sequence(telegram: FakeTelegram) -> list[str]:
    return [f"photo {m.photo_size} {m.caption}" if m.photo else m.text
            for m in telegram.messages]


# --- the photo goes with the text -------------------------------------------------------------


def test_a_notification_with_a_chart_reaches_telegram_as_a_photo_then_the_text(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    path = chart_file(tmp_path)
    enqueue_chart(fleet_db, str(path))
    runner = notifier(fleet_db, telegram, ops, Clock())
    runner.run_once()  # routes it; the first pass also delivers it
    assert sequence(telegram) == [f"photo {len(CHART)} 📊 P&L 2026-11-20: +120.50 USDT",
                                  REPORT]
    assert [m.chat_id for m in telegram.messages] == [BRIEF_CHAT, BRIEF_CHAT]
    assert delivery_rows(fleet_db) == [("brief", "sent", 2)]


def test_the_attachment_is_stored_and_read_back_for_each_due_delivery(
        fleet_db: Any, tmp_path: Path) -> None:
    with write_transaction(fleet_db.engine) as conn:
        enqueue_notification(conn, bot_id=None, kind="report.pnl", concern="brief",
                             severity="info", text="P&L", now=T0, collapse_key="k",
                             attachment="charts/pnl.png")
        enqueue_notification(conn, bot_id=None, kind="report.daily", concern="brief",
                             severity="info", text="daily", now=T0, collapse_key="k2")
    with fleet_db.engine.connect() as conn:
        assert [r.attachment for r in conn.execute(
            select(outbox.c.attachment).order_by(outbox.c.id))] == ["charts/pnl.png", None]
    box = Outbox(fleet_db.engine)
    box.route(lambda concern, severity: ["brief"], 0, T0)
    assert [(d.kind, d.attachment) for d in box.due(T0)] == [
        ("report.pnl", "charts/pnl.png"), ("report.daily", None)]


def test_a_relative_path_is_found_in_the_fleets_data_directory(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    chart_file(tmp_path)
    enqueue_chart(fleet_db, "charts/pnl-2026-11-20.png")
    notifier(fleet_db, telegram, ops, Clock(), attachment_dir=tmp_path).run_once()
    assert [m.photo for m in telegram.messages] == [True, False]
    assert telegram.photos()[0].photo_size == len(CHART)


def test_every_route_gets_the_chart_the_webhook_as_base64(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, hook: Hook,
        tmp_path: Path) -> None:
    enqueue_chart(fleet_db, str(chart_file(tmp_path)))
    assert notifier(fleet_db, telegram, ops, Clock(), hook=hook).run_once().sent == 2
    [payload] = hook.received
    assert payload["text"] == REPORT and payload["destination"] == "hook"
    assert base64.b64decode(payload["image_png_base64"]) == CHART
    assert [m.photo for m in telegram.messages] == [True, False]
    assert sorted(delivery_rows(fleet_db)) == [("brief", "sent", 2), ("hook", "sent", 1)]


# --- retries never send the photo twice -------------------------------------------------------


def test_a_retry_after_the_photo_went_out_sends_only_the_text(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    enqueue_chart(fleet_db, str(chart_file(tmp_path)))
    telegram.fail_next(1, "server_error", method="sendMessage", status=502)
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    first = runner.run_once()
    assert (first.sent, first.retried) == (0, 1)
    assert delivery_rows(fleet_db) == [("brief", "pending", 1)]  # the photo is out
    assert len(telegram.photos()) == 1 and telegram.texts() == []
    clock.advance(2.0)  # the backoff
    time.sleep(1.05)  # one message a second to the chat (the limiter's real clock)
    assert runner.run_once().sent == 1
    assert sequence(telegram) == [f"photo {len(CHART)} 📊 P&L 2026-11-20: +120.50 USDT",
                                  REPORT]
    assert [c.method for c in telegram.calls] == ["sendPhoto", "sendMessage", "sendMessage"]
    assert delivery_rows(fleet_db) == [("brief", "sent", 2)]


def test_a_failed_photo_upload_is_retried_then_the_text_follows(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    enqueue_chart(fleet_db, str(chart_file(tmp_path)))
    telegram.fail_next(1, "rate_limit", method="sendPhoto", retry_after_s=5)
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    assert runner.run_once().retried == 1
    assert telegram.messages == [] and delivery_rows(fleet_db) == [("brief", "pending", 0)]
    clock.advance(5.0)  # Telegram's retry_after beats the 2 s backoff
    assert runner.run_once().sent == 1
    assert [m.photo for m in telegram.messages] == [True, False]


def test_a_chart_deleted_after_its_photo_went_out_still_lets_the_whole_text_through(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    path = chart_file(tmp_path)
    enqueue_chart(fleet_db, str(path))
    telegram.fail_next(1, "server_error", method="sendMessage")
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    runner.run_once()
    path.unlink()  # e.g. cleaned up before a later retry
    clock.advance(2.0)
    time.sleep(1.05)
    assert runner.run_once().sent == 1
    assert len(telegram.photos()) == 1
    assert telegram.texts() == [f"{REPORT}\n(chart not attached: {path} is missing)"]


def test_a_chart_that_appears_midway_does_not_repeat_a_part_already_sent(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    text = "\n".join(f"line {i:05d} " + "x" * 80 for i in range(100))  # 3 parts
    path = tmp_path / "late.png"
    enqueue_chart(fleet_db, str(path), text=text)
    telegram.fail_next(1, "server_error", method="sendMessage", after=1)  # part 2 fails
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    runner.run_once()
    assert [t[:6] for t in telegram.texts()] == ["(1/3) "]
    assert delivery_rows(fleet_db) == [("brief", "pending", 2)]  # the photo's place + 1
    path.write_bytes(CHART)  # written late
    clock.advance(2.0)
    time.sleep(1.05)
    assert runner.run_once().sent == 1
    assert [t[:6] for t in telegram.texts()] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert telegram.photos() == []  # its place was taken: the text went on without it
    joined = "\n".join(t[6:] for t in telegram.texts())
    assert joined.count("line 00000") == 1 and "line 00099" in joined


# --- a chart that cannot be sent never costs the text -----------------------------------------


def test_a_missing_chart_still_delivers_the_text_with_a_note(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path) -> None:
    missing = tmp_path / "charts" / "never-written.png"
    enqueue_chart(fleet_db, str(missing))
    stats = notifier(fleet_db, telegram, ops, Clock()).run_once()
    assert (stats.sent, stats.retried, stats.dead) == (1, 0, 0)
    assert telegram.photos() == []
    assert telegram.texts(BRIEF_CHAT) == [
        f"{REPORT}\n(chart not attached: {missing} is missing)"]
    assert delivery_rows(fleet_db) == [("brief", "sent", 2)]
    assert ops.messages == []  # not a dead letter, nothing to tell


@pytest.mark.parametrize("make, why", [
    (lambda p: p.mkdir(), "could not be read"),
    (lambda p: p.write_bytes(b"GIF89a\x01\x00"), "is not a PNG"),
])
def test_an_unreadable_or_foreign_chart_still_delivers_the_text_with_a_note(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, tmp_path: Path,
        make: Any, why: str) -> None:
    path = tmp_path / "chart.png"
    make(path)
    enqueue_chart(fleet_db, str(path))
    assert notifier(fleet_db, telegram, ops, Clock()).run_once().sent == 1
    [text] = telegram.texts()
    assert text.startswith(REPORT) and f"(chart not attached: {path} {why}" in text
    assert telegram.photos() == []


def test_a_missing_chart_on_a_webhook_route_sends_the_text_with_the_note(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram, hook: Hook,
        tmp_path: Path) -> None:
    enqueue_chart(fleet_db, str(tmp_path / "gone.png"))
    assert notifier(fleet_db, telegram, ops, Clock(), hook=hook).run_once().sent == 2
    [payload] = hook.received
    assert "image_png_base64" not in payload
    gone = tmp_path / "gone.png"
    assert payload["text"].endswith(f"(chart not attached: {gone} is missing)")
