"""The notifier: drains the outbox into Telegram and webhooks, never in a bot's way.

One pass (`Notifier.run_once`):

    route      unrouted outbox rows -> one delivery per route (collapsing repeats)
    summarize  "... — N more times in 10 min" once a collapse window closes
    deliver    due deliveries, oldest first, within each route's rate limits; a failure
               is retried with jittered exponential backoff (a provider's retry_after is
               a floor), then dead-lettered after `max_attempts`, or at once when the
               provider refused it for good (bad token, blocked bot); a dead letter is
               itself news, told on every *other* route
    tasks      reports, monitors (runtime.notify_tasks), each when it is due

Delivery is at least once: the outbox row is marked sent after the provider said so, and a
split text's delivered parts are recorded on every failure, so a retry resends nothing that
is known to have gone out. Only a crash between the provider's answer and our commit can
repeat a message.

A notification with an attachment (a PNG chart: outbox.attachment, a path under the fleet's
data directory unless absolute) goes out with it as a photo on every route, read afresh on
each attempt. A file that is missing, unreadable, not a PNG or too big never holds up or
dead-letters the text: the text goes alone, with a line saying why the chart is not there.
For such a row part 1 is the photo's place whether or not the file could be read, so a
retry resumes at the right part even when the file appeared or vanished in between.

A route whose secret cannot be read keeps its messages pending (checked again every
minute) and says so in status and on the other routes. When the database is down the
notifier cannot read the outbox; after `db_outage_alert_after_s` it tells the
infrastructure routes directly, and again when the database is back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from fleetkit.config.notify import NotifySettings, TelegramRoute, WebhookRoute
from fleetkit.config.secrets import read_secret
from fleetkit.core.alerts import Concern, Severity
from fleetkit.core.durations import format_duration
from fleetkit.core.errors import ConfigError, DatabaseUnavailableError, FleetError
from fleetkit.notify.base import OutcomeKind, Sender, SendOutcome
from fleetkit.notify.ratelimit import Backoff, Bucket, RateLimiter, TelegramLimits
from fleetkit.notify.telegram import TELEGRAM_PHOTO_LIMIT_BYTES, TelegramSender
from fleetkit.notify.webhook import WebhookSender
from fleetkit.runtime.logs import get_logger
from fleetkit.store.outbox import Due, Outbox

log = get_logger("notifier")

COMPONENT = "notifier"
BROKEN_ROUTE_RECHECK_S = 60.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ICONS = {Severity.DEBUG: "·", Severity.INFO: "ℹ️", Severity.WARNING: "⚠️",
          Severity.ERROR: "❗", Severity.CRITICAL: "🚨"}
# A webhook endpoint has no published limits; this keeps a burst from hammering it.
_WEBHOOK_LIMITS = TelegramLimits(per_chat=Bucket(rate_per_s=5.0, burst=10),
                                 per_group=Bucket(rate_per_s=5.0, burst=10),
                                 overall=Bucket(rate_per_s=20.0, burst=20))


class ClosableSender(Sender, Protocol):
    def close(self) -> None: ...


@dataclass
class RouteLink:
    """A configured route with its sender, or why it has none."""

    name: str
    destination: str
    sender: ClosableSender | None
    broken: str = ""  # why there is no sender (a missing token ...)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    blocked_until: datetime | None = None


def open_routes(settings: NotifySettings, base: Path | None = None) -> dict[str, RouteLink]:
    """A link per enabled route. A route whose secret is missing is kept, broken, so its
    messages wait in the outbox rather than vanish. Routes on one Telegram token share one
    rate limiter (Telegram counts per bot)."""
    links: dict[str, RouteLink] = {}
    limiters: dict[str, RateLimiter] = {}
    for route in settings.routes:
        if not route.enabled:
            continue
        try:
            sender, key = _sender(route, base)
        except (ConfigError, ValueError) as exc:
            links[route.name] = RouteLink(route.name, route.destination, None, str(exc))
            log.error("route unusable", action="notify.route_broken", route=route.name,
                      error=str(exc))
            continue
        if isinstance(route, WebhookRoute):
            limiter = RateLimiter(_WEBHOOK_LIMITS)
        else:
            limiter = limiters.setdefault(key, RateLimiter())
        links[route.name] = RouteLink(route.name, route.destination, sender, limiter=limiter)
    return links


def _sender(route: TelegramRoute | WebhookRoute, base: Path | None
            ) -> tuple[ClosableSender, str]:
    if isinstance(route, TelegramRoute):
        token = read_secret(f"route {route.name}: the Telegram token", route.token_env,
                            route.token_file, base)
        return TelegramSender(token, route.api_base_url, route.timeout_s), token
    url = read_secret(f"route {route.name}: the webhook URL", route.url_env, route.url_file,
                      base)
    headers = {name: read_secret(f"route {route.name}: header {name}", env, None)
               for name, env in route.headers_env.items()}
    return WebhookSender(url, route.timeout_s, headers), route.name


def render(due: Due, fleet_name: str) -> str:
    """The text a person reads: what and where first, then the event's own words."""
    if due.concern == Concern.BRIEF.value:
        return due.text
    return _headed(due.severity, fleet_name, due.bot or "fleet", due.kind, due.text)


def _headed(severity: Severity, fleet_name: str, where: str, what: str, text: str) -> str:
    return f"{_ICONS[severity]} [{fleet_name}] {where} · {what}\n{text}"


def read_attachment(path: str, base: Path | None = None) -> bytes | str:
    """The PNG at `path` (relative to `base`, the fleet's data directory, unless absolute),
    or why it cannot be sent: "<path> is missing", "... could not be read: ...", "... is
    not a PNG", "... is too big ...". Never raises for the file."""
    file = Path(path).expanduser()
    if not file.is_absolute() and base is not None:
        file = base / file
    try:
        with file.open("rb") as stream:
            data = stream.read(TELEGRAM_PHOTO_LIMIT_BYTES + 1)
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as exc:  # a directory, no permission, an I/O error ...
        return f"{path} could not be read: {exc.strerror or exc.__class__.__name__}"
    if len(data) > TELEGRAM_PHOTO_LIMIT_BYTES:
        return f"{path} is too big (over {TELEGRAM_PHOTO_LIMIT_BYTES} bytes)"
    if not data.startswith(PNG_SIGNATURE):
        return f"{path} is not a PNG"
    return data


def send_due(sender: Sender, destination: str, text: str, due: Due,
             base: Path | None = None) -> SendOutcome:
    """Send one delivery's text, with its attachment as a photo when it has one.

    When the attachment cannot be read, the text goes alone with a line saying why, and the
    outcome is counted as if the photo's place (part 1) were there: taken once any part is
    out, so `delivered_parts` means the same whether or not the file is back next attempt.
    """
    skip = due.delivered_parts
    if due.attachment is None:
        return sender.send(destination, text, skip_parts=skip)
    photo = read_attachment(due.attachment, base)
    if isinstance(photo, bytes):
        return sender.send(destination, text, skip_parts=skip, photo=photo)
    log.warning("chart not attached", action="notify.attachment_missing",
                delivery=due.id, route=due.route, error=photo)
    slot = 1 if skip >= 1 else 0
    outcome = sender.send(destination, f"{text}\n(chart not attached: {photo})",
                          skip_parts=skip - slot)
    slot = 1 if slot or outcome.delivered_parts else 0
    return dataclasses.replace(outcome, delivered_parts=outcome.delivered_parts + slot,
                               total_parts=outcome.total_parts + 1)


def describe_repeats(text: str, bot: str | None, count: int, window_s: float) -> str:
    first_line = text.splitlines()[0] if text else ""
    times = "1 more time" if count == 1 else f"{count} more times"
    return f"{bot or 'fleet'}: {first_line[:200]} — {times} in {format_duration(window_s)}"


def daily_due(now: datetime, at: time, tz_name: str, done_day: str | None) -> str | None:
    """The local day (ISO) whose once-a-day report is due at `now`: at or after `at` in
    `tz_name`, unless `done_day` already had it; else None."""
    local = now.astimezone(ZoneInfo(tz_name))
    day = local.date().isoformat()
    return None if local.time() < at or day == done_day else day


class PeriodicTask(Protocol):
    """Work the notifier does on a schedule (reports, monitors)."""

    name: str

    def run_if_due(self, now: datetime) -> None: ...


@dataclass
class PassStats:
    routed: int = 0
    summaries: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0


class Notifier:
    def __init__(self, outbox: Outbox, settings: NotifySettings, links: Mapping[str, RouteLink],
                 fleet_name: str, *, tasks: Sequence[PeriodicTask] = (),
                 backoff: Backoff | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 attachment_dir: Path | None = None) -> None:
        """`attachment_dir`: where relative attachment paths start (the fleet's data
        directory); None: the working directory."""
        self._outbox = outbox
        self._settings = settings
        self._links = dict(links)
        self._fleet = fleet_name
        self._tasks = list(tasks)
        self._backoff = backoff or Backoff(settings.backoff_base_s, settings.backoff_cap_s)
        self._now = now
        self._attachment_dir = attachment_dir
        self._db_down_since: datetime | None = None
        self._db_down_told: list[str] = []  # the routes told of the outage: told of its end
        self.passes = 0

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Tell the other routes about any route that cannot send (once a day)."""
        self._tell_broken_routes()

    def pass_safely(self) -> PassStats:
        try:
            stats = self.run_once()
        except DatabaseUnavailableError as exc:
            self._database_down(str(exc))
            return PassStats()
        self._database_up()
        return stats

    def run_once(self) -> PassStats:
        now = self._now()
        stats = PassStats()
        self.passes += 1
        stats.routed = self._outbox.route(self._routes_for, self._settings.collapse_window_s,
                                          now)
        stats.summaries = self._outbox.summarize_collapsed(self._settings.collapse_window_s,
                                                           now, describe_repeats)
        self._deliver(now, stats)
        for task in self._tasks:
            try:
                task.run_if_due(now)
            except DatabaseUnavailableError:
                raise
            except Exception as exc:  # one task's bug must not stop delivery
                log.exception("notifier task failed", action="notify.task_failed",
                              task=task.name, error=str(exc))
        return stats

    def close(self) -> None:
        for link in self._links.values():
            if link.sender is not None:
                link.sender.close()

    # --- routing and delivery -------------------------------------------------------------

    def _routes_for(self, concern: str, severity: Severity) -> list[str]:
        return [name for name in self._settings.routes_for(concern, severity)
                if name in self._links]

    def _deliver(self, now: datetime, stats: PassStats) -> None:
        for due in self._outbox.due(now):
            link = self._links.get(due.route)
            if link is None:
                self._outbox.dead(due.id, due.delivered_parts, f"route {due.route} is no "
                                  "longer configured", now)
                stats.dead += 1
                continue
            if link.blocked_until is not None and link.blocked_until > now:
                continue  # keep the route's order: nothing overtakes a message waiting
            if link.sender is None:
                self._outbox.postpone(due.id, link.broken,
                                      now + timedelta(seconds=BROKEN_ROUTE_RECHECK_S), now)
                continue
            if link.limiter.wait_s(link.destination) > 0:
                continue
            self._attempt(link, link.sender, due, now, stats)

    def _attempt(self, link: RouteLink, sender: Sender, due: Due, now: datetime,
                 stats: PassStats) -> None:
        outcome = send_due(sender, link.destination, render(due, self._fleet), due,
                           self._attachment_dir)
        link.limiter.sent(link.destination, len(outcome.message_ids))
        if outcome.ok:
            self._outbox.sent(due.id, outcome.delivered_parts, now)
            link.blocked_until = None
            stats.sent += 1
            return
        attempt = due.attempts + 1
        error = outcome.description or outcome.kind.value
        if outcome.kind is OutcomeKind.REJECTED or attempt >= self._settings.max_attempts:
            self._outbox.dead(due.id, outcome.delivered_parts, error, now)
            stats.dead += 1
            log.error("notification dead-lettered", action="notify.dead_letter",
                      route=link.name, delivery=due.id, attempts=attempt, error=error)
            self._tell_dead_letter(link.name, due, attempt, error, now)
            return
        delay = self._backoff.delay_s(due.attempts, outcome.retry_after_s)
        retry_at = now + timedelta(seconds=delay)
        self._outbox.retry(due.id, outcome.delivered_parts, error, retry_at, now)
        link.blocked_until = retry_at
        stats.retried += 1
        log.info("notification will be retried", action="notify.retry", route=link.name,
                 delivery=due.id, attempt=attempt, retry_in_s=round(delay, 1), error=error)

    def _tell_dead_letter(self, route: str, due: Due, attempts: int, error: str,
                          now: datetime) -> None:
        if due.kind.startswith("notify."):
            return  # news of a failure that failed itself: status shows it, no loop
        self._outbox.enqueue(
            kind="notify.dead_letter", concern=Concern.INFRASTRUCTURE.value,
            severity=Severity.ERROR, now=now, skip_route=route,
            collapse_key=f"notify.dead_letter|{route}",
            text=f"route {route} gave up on a message ({due.kind}) after {attempts} "
                 f"attempt(s): {error[:300]} — see `fleet notify dead`, then "
                 f"`fleet notify retry --route {route}`")

    def _tell_broken_routes(self) -> None:
        broken = {name: link.broken for name, link in self._links.items() if link.sender is None}
        if not broken:
            return
        now = self._now()
        try:
            for name, why in broken.items():
                self._outbox.enqueue(
                    kind="notify.route_broken", concern=Concern.INFRASTRUCTURE.value,
                    severity=Severity.ERROR, now=now, skip_route=name,
                    collapse_key=f"notify.route_broken|{name}",
                    dedup_key=f"route-broken:{name}:{now:%Y-%m-%d}",
                    text=f"route {name} cannot send: {why} — its messages wait in the outbox")
        except FleetError as exc:
            log.warning("could not enqueue route problem", action="notify.enqueue_failed",
                        error=str(exc))

    # --- the database going away ----------------------------------------------------------

    def _database_down(self, error: str) -> None:
        now = self._now()
        if self._db_down_since is None:
            self._db_down_since = now
            log.error("database unavailable: notifications wait", action="db.unavailable",
                      error=error)
        waited = (now - self._db_down_since).total_seconds()
        if not self._db_down_told and waited >= self._settings.db_outage_alert_after_s:
            routes = self._routes_for(Concern.INFRASTRUCTURE.value, Severity.CRITICAL)
            self._db_down_told = self._tell_directly(
                routes, Severity.CRITICAL, f"database unreachable since "
                f"{self._db_down_since:%H:%M:%S} UTC: {error[:300]} — bots pause trading "
                "until it is back")

    def _database_up(self) -> None:
        if self._db_down_since is None:
            return
        waited = (self._now() - self._db_down_since).total_seconds()
        if self._db_down_told:
            self._tell_directly(self._db_down_told, Severity.INFO,
                                f"database reachable again after {format_duration(waited)}")
        log.info("database reachable again", action="db.recovered", down_s=round(waited, 1))
        self._db_down_since, self._db_down_told = None, []

    def _tell_directly(self, routes: Sequence[str], severity: Severity, text: str
                       ) -> list[str]:
        """Past the outbox (it lives in the database that is down): best effort, once.
        The routes that took it."""
        message = _headed(severity, self._fleet, "notifier", "database", text)
        told = []
        for name in routes:
            link = self._links[name]
            if link.sender is None:
                continue
            outcome = link.sender.send(link.destination, message)
            link.limiter.sent(link.destination, len(outcome.message_ids))
            if outcome.ok:
                told.append(name)
            else:
                log.warning("direct alert not delivered", action="notify.direct_failed",
                            route=name, error=outcome.description)
        return told
