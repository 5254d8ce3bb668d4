"""The notifier end to end on a real database (SQLite and PostgreSQL) and fake Bot APIs on
loopback: events enqueue notifications in their own transaction, routing by concern and
severity, splitting, rate limits, retry with backoff and retry_after, dead letters, collapse
of repeats, dedup of scheduled reports, a route without a token, and a database outage."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fleetkit.config.loader import parse_config
from fleetkit.config.notify import NotifySettings
from fleetkit.core.alerts import Severity
from fleetkit.core.errors import DatabaseUnavailableError
from fleetkit.notify.base import OutcomeKind
from fleetkit.notify.ratelimit import Backoff
from fleetkit.notify.telegram import TelegramSender
from fleetkit.notify.webhook import WebhookSender
from fleetkit.runtime.notifier import Notifier, RouteLink, open_routes
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.fleet import FleetStore
from fleetkit.store.outbox import Outbox
from fleetkit.store.rows import insert_event
from fleetkit.store.schema import deliveries, events, outbox
from fleetkit.testing.fake_telegram import FakeTelegram

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Private chats (1 message/s each); a group would add its 20-a-minute bucket.
TRADING_CHAT, OPS_CHAT, BRIEF_CHAT = "1001", "1002", "1003"
OPS_TOKEN = "987654321:AAOps-token_for-tests-only-000000000"


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def ops() -> Iterator[FakeTelegram]:
    with FakeTelegram(OPS_TOKEN) as fake:
        yield fake


def settings(**overrides: Any) -> NotifySettings:
    """Trading on one bot, infrastructure and data on another, the brief on a third chat."""
    raw: dict[str, Any] = {"routes": [
        {"name": "trading", "type": "telegram", "concerns": ["trading"], "chat_id": TRADING_CHAT,
         "token_env": "T_TRADING"},
        {"name": "ops", "type": "telegram", "concerns": ["infrastructure", "data"],
         "chat_id": OPS_CHAT, "token_env": "T_OPS", "min_severity": "warning"},
        {"name": "brief", "type": "telegram", "concerns": ["brief"], "chat_id": BRIEF_CHAT,
         "token_env": "T_TRADING"},
    ], "max_attempts": 3, "collapse_window_s": 600, **overrides}
    return NotifySettings.model_validate(raw)


def links_to(telegram: FakeTelegram, ops: FakeTelegram, config: NotifySettings
             ) -> dict[str, RouteLink]:
    tokens = {"trading": telegram, "brief": telegram, "ops": ops}
    found = {}
    for route in config.routes:
        fake = tokens[route.name]
        sender = TelegramSender(fake.token, api_base_url=fake.url, timeout_s=2.0)
        found[route.name] = RouteLink(route.name, route.destination, sender)
    return found


def notifier(database: Any, telegram: FakeTelegram, ops: FakeTelegram, clock: Clock,
             config: NotifySettings | None = None) -> Notifier:
    config = config or settings()
    # No jitter, base 2 s: retry n waits exactly 2^n s (retry_after permitting).
    backoff = Backoff(2.0, 60.0, rng=_NoJitter())
    return Notifier(Outbox(database.engine), config, links_to(telegram, ops, config), "test",
                    backoff=backoff, now=clock)


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def event(database: Any, kind: str, message: str, *, severity: str = "info",
          bot_id: int | None = None, code: str | None = None, at: datetime = T0) -> None:
    with write_transaction(database.engine) as conn:
        insert_event(conn, bot_id=bot_id, kind=kind, severity=severity, code=code,
                     message=message, now=at)


def bot(database: Any, name: str = "alpha") -> int:
    return FleetStore(database.engine).register_bot(
        name=name, market="CRYPTO", currency="USDT", strategy="sma_cross", mode="sandbox",
        settings={}, now=T0)


def statuses(database: Any) -> list[tuple[str, str]]:
    with database.engine.connect() as conn:
        return [(r.route, r.status) for r in conn.execute(
            select(deliveries.c.route, deliveries.c.status).order_by(deliveries.c.id))]


# --- the outbox is written with the event -----------------------------------------------------


def test_a_notify_worthy_event_and_its_notification_commit_or_roll_back_together(
        fleet_db: Any) -> None:
    alpha = bot(fleet_db)
    event(fleet_db, "risk.denied", "order value 30000 over 25000", severity="warning",
          bot_id=alpha, code="max_order_value")
    event(fleet_db, "signal.generated", "not news")  # audit only
    with pytest.raises(RuntimeError), write_transaction(fleet_db.engine) as conn:
        insert_event(conn, bot_id=alpha, kind="control.halted", severity="critical",
                     message="never committed", now=T0)
        raise RuntimeError("the transaction fails after the event")
    with fleet_db.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.kind, outbox.c.concern, outbox.c.severity,
                                   outbox.c.bot_id, outbox.c.text)).all()
        event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
    assert [tuple(r) for r in rows] == [("risk.denied", "trading", "warning", alpha,
                                         "order value 30000 over 25000")]
    assert event_count == 2


# --- routing by concern and severity ---------------------------------------------------------


def test_each_concern_reaches_its_own_bot_and_chat_and_severity_filters_apply(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    alpha = bot(fleet_db)
    event(fleet_db, "order.fill", "buy 1 BTC/USDT @ 50000", bot_id=alpha)
    event(fleet_db, "job.failed", "job backup failed: exit 1", severity="warning")
    event(fleet_db, "broker.recovered", "broker back after 12 s")  # info: below ops' warning
    event(fleet_db, "calendar.coverage", "XNSE data ends 2026-12-31", severity="warning")
    runner = notifier(fleet_db, telegram, ops, Clock())
    assert runner.run_once().sent == 2  # one per chat: the second ops message waits its turn
    time.sleep(1.05)
    assert runner.run_once().sent == 1
    [fill] = telegram.texts(TRADING_CHAT)
    assert fill.startswith("ℹ️ [test] alpha · order.fill\n") and "50000" in fill
    assert [t.splitlines()[0] for t in ops.texts(OPS_CHAT)] == [
        "⚠️ [test] fleet · job.failed", "⚠️ [test] fleet · calendar.coverage"]
    assert telegram.texts(OPS_CHAT) == [] and ops.texts(TRADING_CHAT) == []
    assert statuses(fleet_db) == [("trading", "sent"), ("ops", "sent"), ("ops", "sent")]


def test_a_webhook_route_gets_the_same_notification_as_json(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    posted: list[dict[str, Any]] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    config = settings(routes=[*[r.model_dump() for r in settings().routes],
                              {"name": "hook", "type": "webhook", "concerns": ["trading"],
                               "url_env": "HOOK_URL"}])
    links = links_to(telegram, ops, settings())
    links["hook"] = RouteLink("hook", "hook", WebhookSender(
        "http://127.0.0.1:9/hooks/secret", transport=httpx.MockTransport(endpoint)))
    event(fleet_db, "control.halted", "daily loss limit hit", severity="critical")
    Notifier(Outbox(fleet_db.engine), config, links, "test", now=Clock()).run_once()

    assert [p["destination"] for p in posted] == ["hook"]
    assert posted[0]["text"].startswith("🚨 [test] fleet · control.halted")
    assert len(telegram.texts(TRADING_CHAT)) == 1


# --- splitting, rate limits, retries -----------------------------------------------------------


def test_a_long_text_is_split_and_a_failed_part_resumes_without_repeating_the_first(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    text = "\n".join(f"line {i:05d} " + "x" * 80 for i in range(120))  # ~11,000 characters
    event(fleet_db, "reconcile.mismatch", text, severity="critical")
    telegram.fail_next(1, "server_error", after=1, status=502)  # part 2 of 3 fails once
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)

    first = runner.run_once()
    assert (first.sent, first.retried) == (0, 1)
    assert len(telegram.texts()) == 1 and telegram.texts()[0].startswith("(1/3) ")
    clock.advance(2.0)  # backoff for retry 0: 2 s
    time.sleep(1.05)  # Telegram's 1 message/s per chat (the limiter's real clock)
    assert runner.run_once().sent == 1
    parts = telegram.texts()
    assert [p[:6] for p in parts] == ["(1/3) ", "(2/3) ", "(3/3) "]
    joined = "\n".join(p[6:] for p in parts)
    assert joined.count("line 00000") == 1 and "line 00119" in joined


def test_messages_to_one_chat_are_paced_at_one_a_second(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    for i in range(3):
        event(fleet_db, "order.fill", f"fill {i}")
    runner = notifier(fleet_db, telegram, ops, Clock())
    assert runner.run_once().sent == 1
    assert runner.run_once().sent == 0  # the chat's bucket is empty
    time.sleep(1.05)
    assert runner.run_once().sent == 1
    assert [t.splitlines()[1] for t in telegram.texts()] == ["fill 0", "fill 1"]


def test_retry_after_is_honoured_and_the_route_keeps_its_order(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    event(fleet_db, "order.fill", "first")
    event(fleet_db, "order.fill", "second")
    telegram.fail_next(1, "rate_limit", retry_after_s=30)
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    assert runner.run_once().retried == 1
    with fleet_db.engine.connect() as conn:
        next_at = conn.execute(select(func.max(deliveries.c.next_attempt_at))).scalar_one()
    assert next_at == T0 + timedelta(seconds=30)  # retry_after beats the 2 s backoff
    clock.advance(29)
    assert runner.run_once().sent == 0  # "second" does not overtake "first"
    clock.advance(1)
    runner.run_once()
    time.sleep(1.05)
    runner.run_once()
    assert [t.splitlines()[1] for t in telegram.texts()] == ["first", "second"]


def test_after_max_attempts_a_message_is_dead_lettered_and_told_on_another_route(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    event(fleet_db, "control.halted", "operator halt", severity="critical")
    telegram.fail_next(3, "server_error", status=503)
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    for wait in (0, 2, 4):
        clock.advance(wait)
        runner.run_once()
    assert statuses(fleet_db)[0] == ("trading", "dead")
    [dead] = Outbox(fleet_db.engine).dead_letters()
    assert dead.attempts == 3 and "HTTP 503" in dead.last_error
    runner.run_once()  # routes and sends the dead-letter alert
    [told] = ops.texts(OPS_CHAT)
    assert "notify.dead_letter" in told and "route trading gave up" in told
    assert telegram.texts() == []  # never told through the route that failed
    health = {h.route: h for h in Outbox(fleet_db.engine).health()}
    assert (health["trading"].dead, health["ops"].sent) == (1, 1)


def test_a_blocked_bot_is_dead_lettered_at_once_and_can_be_retried_later(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    event(fleet_db, "order.fill", "fill")
    telegram.fail_next(1, "blocked")
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    assert runner.run_once().dead == 1
    assert Outbox(fleet_db.engine).requeue_dead(clock(), route="trading") == 1
    time.sleep(1.05)
    assert runner.run_once().sent == 2  # the fill, and on ops the news of its dead letter
    assert len(telegram.texts(TRADING_CHAT)) == 1
    assert "gave up on a message (order.fill) after 1 attempt(s)" in ops.texts(OPS_CHAT)[0]
    assert "bot was blocked by the user" in ops.texts(OPS_CHAT)[0]


# --- collapse and dedup -----------------------------------------------------------------------


def test_repeats_within_the_window_collapse_into_one_message_and_a_count(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    alpha = bot(fleet_db)
    clock = Clock()
    runner = notifier(fleet_db, telegram, ops, clock)
    for minute in range(6):  # the same stale alert every minute
        event(fleet_db, "monitor.services", "bot:alpha has not heartbeaten for 17 min",
              severity="error", bot_id=alpha, code="heartbeat:bot:alpha",
              at=T0 + timedelta(minutes=minute))
    clock.advance(6 * 60)
    runner.run_once()
    assert len(ops.texts(OPS_CHAT)) == 1
    assert [s for _, s in statuses(fleet_db)].count("collapsed") == 5
    clock.advance(5 * 60)  # the first alert's 10 minute window has closed
    runner.run_once()
    time.sleep(1.05)
    runner.run_once()
    summary = ops.texts(OPS_CHAT)[-1]
    assert "alpha: bot:alpha has not heartbeaten for 17 min — 5 more times in 10 min" in summary
    runner.run_once()
    assert len(ops.texts(OPS_CHAT)) == 2  # the summary goes once


def test_a_report_enqueued_twice_under_one_dedup_key_is_sent_once(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    box = Outbox(fleet_db.engine)
    for _ in range(2):
        box.enqueue(kind="report.pnl", concern="brief", severity=Severity.INFO,
                    text="P&L 12:00", now=T0, dedup_key="report.pnl:2026-11-20T12:00")
    notifier(fleet_db, telegram, ops, Clock()).run_once()
    assert telegram.texts(BRIEF_CHAT) == ["P&L 12:00"]


# --- routes that cannot send, a database that is down -------------------------------------------


def test_a_route_without_its_token_keeps_its_messages_and_says_so_elsewhere(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_TRADING", raising=False)
    monkeypatch.setenv("T_OPS", OPS_TOKEN)
    config = settings()
    links = open_routes(config)
    assert links["trading"].sender is None and "$T_TRADING" in links["trading"].broken
    links["ops"] = RouteLink("ops", OPS_CHAT, TelegramSender(ops.token, api_base_url=ops.url))
    event(fleet_db, "order.fill", "fill while the token is missing")
    clock = Clock()
    runner = Notifier(Outbox(fleet_db.engine), config, links, "test", now=clock)
    runner.start()
    runner.run_once()
    assert statuses(fleet_db)[0] == ("trading", "pending")
    [told] = ops.texts(OPS_CHAT)
    assert "route trading cannot send" in told and "T_TRADING" in told
    assert OPS_TOKEN not in told
    # The token arrives; the restarted notifier sends what waited.
    fixed = links_to(telegram, ops, config)
    clock.advance(61)
    Notifier(Outbox(fleet_db.engine), config, fixed, "test", now=clock).run_once()
    assert telegram.texts(TRADING_CHAT)[0].endswith("fill while the token is missing")


class _DownOutbox(Outbox):
    def route(self, *args: Any, **kwargs: Any) -> int:
        raise DatabaseUnavailableError("database unreachable: connection refused")


def test_a_database_outage_is_told_directly_once_and_its_end_too(
        fleet_db: Any, telegram: FakeTelegram, ops: FakeTelegram) -> None:
    config = settings(db_outage_alert_after_s=60)
    clock = Clock()
    down = Notifier(_DownOutbox(fleet_db.engine), config, links_to(telegram, ops, config),
                    "test", now=clock)
    down.pass_safely()
    assert ops.texts() == []  # not yet: blips are not news
    clock.advance(61)
    down.pass_safely()
    clock.advance(30)
    down.pass_safely()
    [alert] = ops.texts(OPS_CHAT)
    assert "database unreachable since 12:00:00 UTC" in alert
    down._outbox = Outbox(fleet_db.engine)  # the database is back
    time.sleep(1.05)
    down.pass_safely()
    assert "database reachable again after" in ops.texts(OPS_CHAT)[-1]


def test_notify_settings_name_the_fix_for_bad_routes() -> None:
    with pytest.raises(ValueError, match="exactly one of token_env"):
        NotifySettings.model_validate({"routes": [
            {"name": "t", "type": "telegram", "concerns": ["trading"], "chat_id": 1}]})
    with pytest.raises(ValueError, match="not a telegram route"):
        NotifySettings.model_validate({"routes": [
            {"name": "h", "type": "webhook", "concerns": ["trading"], "url_env": "U"}],
            "commands": {"route": "h", "allowed_chat_ids": [1]}})
    config = parse_config("notify:\n  routes:\n    - {name: t, type: telegram, concerns: "
                          "[brief], chat_id: -100, token_file: tok}\n", "test")
    assert config.notify.routes[0].destination == "-100"


def test_outcome_kinds_are_what_the_notifier_switches_on() -> None:
    assert {k.value for k in OutcomeKind} == {"delivered", "retry", "rejected"}
