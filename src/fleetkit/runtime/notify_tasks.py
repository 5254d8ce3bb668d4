"""What the notifier does on a schedule besides delivering: P&L reports, the daily summary,
the monitors; and the Telegram command listener that runs beside it.

Each report is enqueued with a dedup_key naming its period, so a restarted notifier, or
a second one, never sends one twice. A period the notifier was down for is not caught up
(a stale P&L report is noise); the daily summary is, within its day.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig
from fleetkit.config.notify import TelegramRoute
from fleetkit.config.secrets import read_secret
from fleetkit.core.alerts import Concern, Severity
from fleetkit.core.controls import TradingState
from fleetkit.core.errors import FleetError
from fleetkit.core.instruments import MARKETS
from fleetkit.notify.commands import (
    ALL_BOTS,
    Ask,
    CommandDesk,
    CommandPolicy,
    Execute,
    Ignored,
    Reply,
)
from fleetkit.notify.reports import BotLine, daily_summary, pnl_update, signed
from fleetkit.notify.telegram import TelegramSender
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.monitoring import STATE_PREFIX, MonitorTask
from fleetkit.runtime.notifier import PeriodicTask, daily_due
from fleetkit.sqlutil.engine import read_transaction
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.outbox import NotifyState, Outbox
from fleetkit.store.schema import events, fills
from fleetkit.store.status import FleetView, fleet_view

log = get_logger("notifier")

LATE_REPORT_S = 120.0  # a P&L report this late is skipped, not sent stale
_STATE_BY_VIEW = {"HALTED": TradingState.HALTED, "REDUCING": TradingState.REDUCING}


def default_tasks(loaded: LoadedConfig, database: Database, outbox: Outbox
                  ) -> list[PeriodicTask]:
    from fleetkit.runtime.calendar_watch import market_calendars

    calendars = market_calendars(loaded)
    tasks: list[PeriodicTask] = []
    if loaded.config.notify.reports.pnl_every_minutes:
        tasks.append(PnlReports(loaded, database, outbox, calendars))
    if loaded.config.notify.reports.daily_time() is not None:
        tasks.append(DailySummary(loaded, database, outbox))
    tasks.append(MonitorTask(loaded, database))
    return tasks


# --- reading the fleet for a report ---------------------------------------------------------


def open_markets(calendars: MarketCalendars, now: datetime) -> set[str]:
    """Markets in session now (between open and close; Tokyo's lunch counts as open)."""
    found: set[str] = set()
    for code, market in MARKETS.items():
        if market.always_open:
            found.add(code)
            continue
        try:
            sessions = calendars.sessions(market.calendar, (now - timedelta(days=1)).date(),
                                          now.date())
        except (ValueError, FleetError) as exc:
            log.warning("calendar unavailable", action="notify.calendar", market=code,
                        error=str(exc))
            continue
        if any(s.open <= now < s.close for s in sessions):
            found.add(code)
    return found


def bot_lines(view: FleetView, open_now: set[str] | None) -> list[BotLine]:
    """The fleet's bots as report lines; `open_now` None counts every market as open."""
    return [BotLine(name=b.name, market=b.market, mode=b.mode,
                    state=_STATE_BY_VIEW.get(b.state, TradingState.ACTIVE),
                    currency=b.currency, realized=b.realized_today, unrealized=b.unrealized,
                    net=b.daily_pnl, net_usd=b.daily_pnl_usd, positions=len(b.positions),
                    fills_today=b.fills_today,
                    open=open_now is None or b.market in open_now) for b in view.bots]


def status_text(view: FleetView) -> str:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(view.counts().items()))
    lines = [f"Fleet {view.fleet_state.upper()}"
             + (f" ({view.fleet_reason})" if view.fleet_reason else "")
             + f" · {len(view.bots)} bots ({counts or 'none'}) · today "
             f"{signed(view.daily_pnl_usd)} USD"]
    for bot in view.bots:
        if bot.state in ("HALTED", "STALE", "REDUCING"):
            age = "" if bot.heartbeat_age_s is None else \
                f", heartbeat {bot.heartbeat_age_s:.0f} s ago"
            lines.append(f"{bot.state} {bot.name}: {bot.reason or bot.detail}{age}")
    for name, component in sorted(view.components.items()):
        lines.append(f"{name}: {component['status']} ({component['age_s']:.0f} s ago)")
    return "\n".join(lines)


# --- P&L every N minutes while a market is open ----------------------------------------------


class PnlReports:
    name = "pnl-report"

    def __init__(self, loaded: LoadedConfig, database: Database, outbox: Outbox,
                 calendars: MarketCalendars) -> None:
        self._config = loaded.config
        self._engine = database.engine
        self._outbox = outbox
        self._calendars = calendars
        self._every = timedelta(minutes=loaded.config.notify.reports.pnl_every_minutes)
        self._done: datetime | None = None

    def run_if_due(self, now: datetime) -> None:
        period = _floor(now, self._every)
        if period == self._done:
            return
        if (now - period).total_seconds() <= LATE_REPORT_S:
            view = fleet_view(self._engine, now, self._config.runtime.stale_after_s)
            text = pnl_update(bot_lines(view, open_markets(self._calendars, now)), period,
                              self._config.notify.reports.timezone)
            if text is not None:  # None: every market closed, nothing moved, nothing to say
                self._outbox.enqueue(kind="report.pnl", concern=Concern.BRIEF.value,
                                     severity=Severity.INFO, text=text, now=now,
                                     dedup_key=f"report.pnl:{period:%Y-%m-%dT%H:%M}")
        # Done only once written: a database blip is retried on the next pass while fresh.
        self._done = period


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


# --- the daily summary ----------------------------------------------------------------------


class DailySummary:
    name = "daily-summary"

    def __init__(self, loaded: LoadedConfig, database: Database, outbox: Outbox) -> None:
        self._config = loaded.config
        self._engine = database.engine
        self._outbox = outbox
        self._state = NotifyState(database.engine)
        self._done_day: str | None = None

    def run_if_due(self, now: datetime) -> None:
        reports = self._config.notify.reports
        at = reports.daily_time()
        day = None if at is None else daily_due(now, at, reports.timezone, self._done_day)
        if day is None:
            return
        self._outbox.enqueue(kind="report.daily", concern=Concern.BRIEF.value,
                             severity=Severity.INFO, text=self.text(now), now=now,
                             dedup_key=f"report.daily:{day}")
        self._done_day = day  # only once written: a database blip is retried within the day

    def text(self, now: datetime) -> str:
        since = now - timedelta(days=1)
        view = fleet_view(self._engine, now, self._config.runtime.stale_after_s)
        with read_transaction(self._engine) as conn:
            trades = conn.execute(select(func.count()).select_from(fills)
                                  .where(fills.c.ts >= since)).scalar_one()
            halts = conn.execute(select(events.c.bot_id, events.c.message, events.c.created_at)
                                 .where(events.c.kind == "control.halted",
                                        events.c.created_at >= since)
                                 .order_by(events.c.created_at)).all()
            denials = conn.execute(select(events.c.code, func.count())
                                   .where(events.c.kind == "risk.denied",
                                          events.c.created_at >= since)
                                   .group_by(events.c.code)).all()
        names = {bot.id: bot.name for bot in FleetStore(self._engine).bots()}
        zone = ZoneInfo(self._config.notify.reports.timezone)  # as the header: not UTC
        halt_lines = [f"{h.created_at.astimezone(zone):%H:%M} "
                      f"{names.get(h.bot_id, 'fleet')}: {h.message}" for h in halts]
        findings = [f"{value.get('severity', '?')}: {value.get('message', '')}"
                    for value in self._state.prefixed(STATE_PREFIX).values()
                    if isinstance(value, dict) and value.get("alerting")]
        return daily_summary(bot_lines(view, None), now, trades=int(trades), halts=halt_lines,
                             denials={str(code or "other"): int(n) for code, n in denials},
                             findings=findings, tz_name=self._config.notify.reports.timezone)


# --- two-way commands -----------------------------------------------------------------------


DESK_KEY = "commands.desk"


def command_listener(loaded: LoadedConfig, database: Database,
                     sender: TelegramSender | None = None
                     ) -> Callable[[threading.Event], None] | None:
    """The loop that answers Telegram commands, or None when no commands are configured."""
    settings = loaded.config.notify.commands
    if settings is None:
        return None
    route = loaded.config.notify.route(settings.route)
    if not isinstance(route, TelegramRoute):  # the config validates this; say so if not
        raise FleetError(f"commands.route {settings.route!r} is not a telegram route")
    if sender is None:
        try:
            token = read_secret(f"route {route.name}: the Telegram token", route.token_env,
                                route.token_file, loaded.config_dir)
        except FleetError as exc:
            log.error("commands off: no token", action="notify.commands_off", error=str(exc))
            return None
        sender = TelegramSender(token, route.api_base_url, route.timeout_s)
    policy = CommandPolicy(frozenset(settings.allowed_chat_ids),
                           None if settings.allowed_user_ids is None
                           else frozenset(settings.allowed_user_ids), settings.confirm_ttl_s)
    commands = Commands(loaded, database, CommandDesk(policy, random.SystemRandom()), sender,
                        f"commands.offset:{route.name}")
    return commands.listen


class Commands:
    def __init__(self, loaded: LoadedConfig, database: Database, desk: CommandDesk,
                 sender: TelegramSender, offset_key: str, poll_timeout_s: int | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._loaded = loaded
        self._engine = database.engine
        self._desk = desk
        self._sender = sender
        self._state = NotifyState(database.engine)
        self._offset_key = offset_key
        settings = loaded.config.notify.commands
        self._poll_s = poll_timeout_s if poll_timeout_s is not None else \
            (settings.poll_timeout_s if settings is not None else 20)
        self._now = now

    def listen(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                handled = self.poll_once()
                failures = 0 if handled is not None else failures + 1
            except FleetError as exc:  # the database: wait and try again
                log.warning("commands paused", action="notify.commands_paused", error=str(exc))
                failures += 1
            if failures:
                stop.wait(min(60.0, 2.0 ** min(failures, 6)))

    def poll_once(self) -> int | None:
        """Read and answer one batch of updates; how many, or None if Telegram failed."""
        offset = self._state.get(self._offset_key)
        desk_state = self._state.get(DESK_KEY)
        if isinstance(desk_state, dict):
            self._desk.import_state(desk_state)
        batch = self._sender.get_updates(offset if isinstance(offset, int) else None,
                                         timeout_s=self._poll_s)
        if not batch.ok:
            return None
        for update in batch.updates:
            self._answer(self._desk.handle(update, self._now()))
        if batch.next_offset is not None and batch.next_offset != offset:
            now = self._now()
            self._state.put(DESK_KEY, self._desk.export_state(), now)
            self._state.put(self._offset_key, batch.next_offset, now)
        return len(batch.updates)

    def _answer(self, decision: Ignored | Reply | Ask | Execute) -> None:
        log.bind(**decision.as_log()).info("telegram command")
        if isinstance(decision, Ignored):
            return
        if isinstance(decision, Reply | Ask):
            self._reply(decision.chat_id, decision.text)
            return
        try:
            text = self._execute(decision)
        except FleetError as exc:
            text = f"failed: {exc}"
        self._reply(decision.chat_id, text)

    def _execute(self, decision: Execute) -> str:
        command, now = decision.command, self._now()
        config = self._loaded.config
        if command.name in ("status", "pnl"):
            view = fleet_view(self._engine, now, config.runtime.stale_after_s)
            if command.name == "status":
                return status_text(view)
            return pnl_update(bot_lines(view, None), now, config.notify.reports.timezone) \
                or "no bots yet"
        store = FleetStore(self._engine)
        name = None if command.target == ALL_BOTS else command.target
        if name is not None and name not in {b.name for b in store.bots()}:
            return f"no bot named {name}"
        scope = "the fleet" if name is None else f"bot {name}"
        if command.name == "halt":
            previous = store.set_state(name, TradingState.HALTED,
                                       f"halted from Telegram{_asked(decision)}",
                                       decision.actor, now)
            again = " (it already was)" if previous.state is TradingState.HALTED else ""
            return f"{scope} is now HALTED{again} — checked before every order"
        if name is not None and store.held_by_reconciliation(name):
            return store.reconciliation_hold_note(name)
        previous = store.set_state(name, TradingState.ACTIVE,
                                   f"resumed from Telegram{_asked(decision)}",
                                   decision.actor, now)
        if previous.state is TradingState.ACTIVE:
            return f"{scope} was not halted; nothing changed"
        return f"{scope} resumed (was {previous.state.value}: {previous.reason})"

    def _reply(self, chat_id: str, text: str) -> None:
        outcome = self._sender.send(chat_id, text)
        if not outcome.ok:
            log.warning("command reply not delivered", action="notify.reply_failed",
                        chat=chat_id, error=outcome.description)


def _asked(decision: Execute) -> str:
    """Who asked, when someone else confirmed: the actor column names the confirmer."""
    if decision.asked_by and decision.asked_by != decision.actor:
        return f" (asked by {decision.asked_by})"
    return ""
