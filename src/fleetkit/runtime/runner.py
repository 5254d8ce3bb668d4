"""BotRunner: one bot's life — boot, reconcile, warm up, then a cycle per bar, forever.

Boot: schema check -> register -> take the bot's lease -> reconcile with the broker
(resolve in-flight orders, apply missed fills, compare) -> rebuild indicators from history.
Cycle (at each bar close while the market is open): sync fills -> read controls -> feed
new bars (only the newest may trade) -> mark positions -> circuit breaker -> save state.
A dead database or broker pauses the bot; it resumes by itself and re-reconciles.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.errors import (
    BadBrokerReplyError,
    ConfigError,
    CredentialsError,
    DatabaseUnavailableError,
    FleetError,
    StrategyError,
    TransientBrokerError,
    UnknownBotError,
    UserError,
)
from fleetkit.core.instruments import Instrument, market
from fleetkit.core.market_data import Bar
from fleetkit.core.sessions import Session
from fleetkit.engine.assembly import AssembledBot
from fleetkit.engine.bot import TradingBot
from fleetkit.engine.execution import Outcome
from fleetkit.engine.ports import Broker, Clock, Event, MarketData, SessionSource
from fleetkit.engine.rolls import ContractSource, FuturesRoller
from fleetkit.engine.sync import SyncReport
from fleetkit.risk.rails import HaltScope
from fleetkit.runtime.clock import WallClock
from fleetkit.runtime.logs import get_logger
from fleetkit.runtime.outage import Outage, backoff_delays
from fleetkit.runtime.wiring import (
    bot_contracts,
    bot_currency,
    build_bot,
    describe_bot,
    sandbox_catalog,
)
from fleetkit.store.database import Database, open_database
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.ledger import SqlLedger

if TYPE_CHECKING:
    from fleetkit.runtime.model_follow import RegistryModels

BrokerFactory = Callable[[BotSettings], "BrokerConnection"]


class LeaseLostError(FleetError):
    """Another instance of this bot holds its lease: this process must stop trading."""


class OrderOutcomeUnknown(TransientBrokerError):
    """An order was sent but its answer never came back; the cycle stops unsaved."""


class BrokerConnection:
    """A broker adapter that is both Broker and MarketData, plus close().

    `instruments`: the venue's own instrument definitions for the bot's symbols (an exchange
    publishes its tick and step sizes); None means the sandbox catalog's.
    `refresh`: re-authenticate (venues that issue daily tokens), run every
    `refresh_every_s`; while it fails, the bot is halted (source: credentials).
    `contracts`: the venue's derivatives (front futures, perpetuals), where it has any."""

    def __init__(self, broker: Broker, market_data: MarketData,
                 close: Callable[[], None] = lambda: None, *,
                 instruments: Mapping[str, Instrument] | None = None,
                 refresh: Callable[[], None] | None = None,
                 refresh_every_s: float | None = None,
                 contracts: ContractSource | None = None,
                 market_offset: Callable[[str], timedelta] | None = None) -> None:
        self.broker = broker
        self.market_data = market_data
        self.close = close
        self.instruments = instruments
        self.refresh = refresh
        self.refresh_every_s = refresh_every_s
        self.contracts = contracts
        # Venue time minus wall time per market (a demo sandbox's), for what must line up
        # with the exchange's sessions: a learned policy's features.
        self.market_offset = market_offset


class BotRunner:
    def __init__(self, loaded: LoadedConfig, bot_name: str, db_url: str,
                 broker_factory: BrokerFactory, *, clock: Clock | None = None,
                 stop: threading.Event | None = None,
                 sleep: Callable[[float], bool] | None = None) -> None:
        """`sleep(seconds) -> stop requested?` is how every wait happens (tests pass one
        that moves a manual clock instead of waiting)."""
        try:
            self.settings = loaded.config.bot(bot_name)
        except KeyError:
            names = ", ".join(b.name for b in loaded.config.bots[:8])
            raise UnknownBotError(f"no bot named {bot_name!r} in {loaded.source} "
                                  f"(bots: {names}, ...); check the name") from None
        self.config = loaded.config
        self._loaded = loaded
        self.runtime = loaded.config.runtime
        self._db_url = db_url
        self._broker_factory = broker_factory
        self.clock = clock or WallClock()
        self.stop = stop or threading.Event()
        self._sleep = sleep or self.stop.wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.log = get_logger("runner", bot=bot_name)
        self.cycles = 0
        self._started_at = self.clock.now()
        self._cursors: dict[str, datetime | None] = {}
        self._halt_logged = False
        self._lease_lost = False
        self._next_reconcile = self.clock.now()
        self._next_cycle = self.clock.now()
        self._next_refresh: datetime | None = None
        self._cycle_lag_ms: int | None = None
        self.models: RegistryModels | None = None  # a learning bot on the registry's

    # --- lifecycle --------------------------------------------------------------------

    def run(self) -> None:
        """Boot, then step until asked to stop, then shut down cleanly."""
        self.boot()
        try:
            while not self.stop.is_set():
                self._sleep_until(self.step())
        finally:
            self.shutdown()

    def boot(self) -> None:
        self._open()
        self._next_cycle = self.clock.now()
        try:
            self._recover()
        except BaseException:
            self.shutdown()
            raise

    def step(self) -> datetime:
        """One pass of the loop without sleeping: trade if a bar closed, heartbeat, and
        return when to wake next. Outages pause here (and reconcile after); a strategy
        error halts this bot and the loop carries on."""
        try:
            return self._tick()
        except DatabaseUnavailableError as exc:
            self.outage.wait_for_database(exc, self.database)
            self._recover()
        except OrderOutcomeUnknown as exc:
            self.log.warning("order outcome unknown; resolving by lookup before going on",
                             action="order.outcome_unknown", detail=str(exc))
            self._recover()
        except (TransientBrokerError, BadBrokerReplyError) as exc:
            self.outage.wait_for_broker(exc, self._probe_broker)
            self._recover()
        except CredentialsError as exc:
            self._credentials_failed(exc)
            self._recover()
        except StrategyError as exc:
            self._isolate(exc)
        return self.clock.now()

    def _open(self) -> None:
        self.database: Database = open_database(
            self._db_url, application_name=f"fleet-bot-{self.settings.name}",
            synchronous=self.config.database.sqlite_synchronous)
        self.store = FleetStore(self.database.engine)
        self.ledger = SqlLedger(self.database.engine, self.database.fleet_tag())
        try:
            self._register_and_connect()
        except BaseException:
            self.database.dispose()
            raise

    def _register_and_connect(self) -> None:
        now = self.clock.now()
        settings = self.settings
        self.bot_id = self.store.register_bot(
            name=settings.name, market=settings.market, currency=bot_currency(settings),
            strategy=settings.strategy, mode=settings.mode,
            settings=describe_bot(self.config, settings), now=now)
        self._take_lease(now)
        # Before the strategy is built: an rl_policy bot trains the models it lacks
        # (ml.train_if_missing) in a subprocess, heartbeating meanwhile.
        from fleetkit.runtime.ml_bootstrap import FirstModels

        FirstModels(self._loaded, settings, self._db_url, beat=self.beat, stop=self.stop,
                    record=lambda event: self.ledger.record_event(self.bot_id, event,
                                                                  self.clock.now()),
                    log=self.log).ensure()
        self.connection = self._broker_factory(settings)
        rolls: dict[str, str] = {}
        if self.connection.instruments is not None:
            instruments = dict(self.connection.instruments)
        else:
            instruments, rolls = bot_contracts(settings, sandbox_catalog(self.config),
                                               self.connection.contracts)
        self.parts: AssembledBot = build_bot(self.config, settings, self.bot_id, self.ledger,
                                             self.connection.broker,
                                             self.connection.market_data, self.clock,
                                             instruments, rolls=rolls)
        self.bot: TradingBot = self.parts.bot
        self.roller = None if not rolls or self.connection.contracts is None else FuturesRoller(
            self.bot, self.parts.engine, self.connection.contracts,
            self.connection.market_data,
            lambda event: self.ledger.record_event(self.bot_id, event, self.clock.now()))
        self._hand_sessions()
        self._follow_registry()
        self.sync = self.parts.sync
        self.outage = Outage(self.log, self._sleep, self.clock,
                             lambda event: self.ledger.record_event(self.bot_id, event,
                                                                    self.clock.now()),
                             beat=self.beat)
        if self.connection.refresh is not None and self.connection.refresh_every_s:
            self._next_refresh = now + timedelta(seconds=self.connection.refresh_every_s)
        self.beat("starting", "reconciling with the broker")
        self._always_open = market(settings.market).always_open
        self.log.info("bot started", action="bot.start", market=settings.market,
                      strategy=settings.strategy, symbols=",".join(settings.symbols))

    def _hand_sessions(self) -> None:
        """A strategy that reads its market's sessions (a learned policy's features) gets
        the calendars with this config's overrides; only such a bot imports them."""
        takers = [use for slot in self.bot.slots.values()
                  if (use := getattr(slot.strategy, "use_sessions", None)) is not None]
        if not takers:
            return
        from fleetkit.runtime.calendar_watch import market_calendars  # late: see above

        calendars: SessionSource = market_calendars(self._loaded)
        offset = (self.connection.market_offset(self.settings.market)
                  if self.connection.market_offset is not None else timedelta(0))
        if offset:
            # A demo venue trades the market `offset` away from its real hours; bars come
            # stamped in wall time, so the sessions they fall in must be too.
            calendars = ShiftedSessions(calendars, -offset)
        for use in takers:
            use(calendars)

    def _follow_registry(self) -> None:
        """A learning bot on `params.model: registry` gets its active versions now, before
        it warms up, and at every bar after (`cycle`); only such a bot imports the registry
        follower and, through it, the artifact store."""
        takers = [slot.strategy for slot in self.bot.slots.values()
                  if getattr(slot.strategy, "follows_registry", False)]
        if not takers:
            return
        from fleetkit.runtime.model_follow import RegistryModels  # late: see above
        from fleetkit.store import migrate

        # The registry lives on the operations branch, which a bot does not check otherwise.
        migrate.require_current_schema(self.database.engine, self.database.where,
                                       (migrate.OPERATIONS,))
        self.models = RegistryModels(
            self._loaded, self.settings, self.database.engine, takers,  # type: ignore[arg-type]
            record=lambda event: self.ledger.record_event(self.bot_id, event,
                                                          self.clock.now()),
            log=self.log)
        self.models.check()

    def _take_lease(self, now: datetime) -> None:
        ttl = max(60.0, 3 * self.runtime.heartbeat_interval_s)
        if self.store.acquire_lease(self.bot_id, self.owner, ttl, now):
            return
        holder, until = self.store.lease_holder(self.bot_id)
        if holder and _is_dead_local_process(holder):
            self.store.force_lease(self.bot_id, holder, self.owner, ttl, now)
            return
        raise UserError(f"bot {self.settings.name} is already running ({holder}, lease until "
                        f"{until:%H:%M:%S} UTC): stop that instance first" if until else
                        f"bot {self.settings.name} is already running ({holder})")

    def shutdown(self) -> None:
        try:
            if not self._lease_lost:
                self.beat("stopped", "stopped cleanly")
                self.store.release_lease(self.bot_id, self.owner)
        except DatabaseUnavailableError:
            self.log.warning("database unavailable at shutdown", action="bot.stop")
        finally:
            self.connection.close()
            self.database.dispose()
            self.log.info("bot stopped", action="bot.stop", cycles=self.cycles)

    # --- heartbeats -------------------------------------------------------------------

    def beat(self, status: str, detail: str) -> None:
        """Renew the lease, then say what the bot is doing. A lost lease stops the bot."""
        now = self.clock.now()
        if not self.store.acquire_lease(self.bot_id, self.owner,
                                        max(60.0, 3 * self.runtime.heartbeat_interval_s), now):
            # Another instance took the lease (ours lapsed, e.g. over a long outage): two
            # processes must never trade one bot, so this one stops now — without touching
            # the heartbeat, which is the other instance's now.
            holder, _ = self.store.lease_holder(self.bot_id)
            self.log.critical("lease lost to another instance; stopping", action="bot.lease_lost",
                              holder=holder)
            self._lease_lost = True
            self.stop.set()
            raise LeaseLostError(f"bot {self.settings.name}: lease taken by {holder}")
        self.store.beat(Heartbeat(f"bot:{self.settings.name}", "bot", self.bot_id, status,
                                  detail, os.getpid(), socket.gethostname(), self._started_at,
                                  now, self.cycles, self._cycle_lag_ms))

    # --- recovery ---------------------------------------------------------------------

    def _recover(self) -> None:
        """Reconcile and rebuild until it works; outages pause here, not in a crash loop.

        Rebuilding reloads the last saved state and replays history into the strategy, so
        a bar whose decision was never saved (its order's fate unknown) is decided again.
        """
        while not self.stop.is_set():
            try:
                self._reconcile()
                self._warm_up()
                return
            except DatabaseUnavailableError as exc:
                self.outage.wait_for_database(exc, self.database)
            except (TransientBrokerError, BadBrokerReplyError) as exc:
                self.outage.wait_for_broker(exc, self._probe_broker)
            except CredentialsError as exc:
                self._credentials_failed(exc)
            except StrategyError as exc:
                self._isolate(exc)  # halted; the loop keeps heartbeating, nothing trades
                return

    def _reconcile(self) -> None:
        self.bot.load()
        if self.roller is not None:
            self.roller.adopt()  # a roll the bot was down for, or stopped in the middle of
        self._settle_pending()
        report = self.sync.run()
        for key in report.voided_instruments:
            self.bot.forget_signal(key)
        self.bot.refresh()
        interval = timedelta(seconds=self.runtime.reconcile_interval_s)
        self._next_reconcile = self.clock.now() + interval
        if report.differences:
            self.log.error("reconciliation mismatch: halted", action="reconcile.mismatch",
                           differences="; ".join(d.describe() for d in report.differences))
        else:
            self.log.info("reconciled with the broker", action="reconcile.ok",
                          resolved=report.resolved, fills=len(report.applied))

    def _settle_pending(self) -> None:
        """Wait (paused, heartbeating) until no order's outcome is unknown: each is found at
        the broker, or declared never received once its grace period has passed."""
        delays = backoff_delays(initial_s=0.5, maximum_s=5.0)
        while not self.stop.is_set():
            report = SyncReport()
            unresolved = self.sync.resolve_pending(report)
            for key in report.voided_instruments:
                self.bot.forget_signal(key)
            if unresolved == 0:
                return
            self.beat("paused", f"{unresolved} order(s) with unknown outcome; resolving by "
                                "lookup")
            if self._sleep(delays()):
                return

    def _warm_up(self) -> None:
        interval = timedelta(seconds=self.parts.interval_s)
        now = self.clock.now()
        for key, slot in self.bot.slots.items():
            cursor = self.bot.state.of(key).last_bar_ts
            needed = slot.strategy.warmup_bars() + 1
            end = (cursor + interval) if cursor else now
            lookback = _lookback(interval, needed, always_open=self._always_open)
            bars = self.connection.market_data.bars(slot.bars_key, self.parts.interval_s,
                                                    end - lookback, end)
            if cursor is None and bars:
                # First ever start: history up to the last bar warms; that bar will trade.
                self.bot.warm_up(key, bars[:-1])
                cursor = bars[-2].ts if len(bars) > 1 else bars[-1].ts - interval
            else:
                self.bot.warm_up(key, bars)
            self._cursors[key] = cursor

    def _rewarm(self, interval: timedelta) -> None:
        """Replay history up to the last bar fed into the strategies whose models changed
        (their state starts afresh), as a restart's warm-up does: a new version may read
        other features, another window, another normalisation, an LSTM's own state — so
        none of the old model's state is carried over. One fetch of bars per switch, and
        switches are rare (an activation or a rollback)."""
        for key, slot in self.bot.slots.items():
            if not getattr(slot.strategy, "follows_registry", False):
                continue
            cursor = self._cursors.get(key) or self.bot.state.of(key).last_bar_ts
            if cursor is None:
                continue  # nothing fed yet: the next feed starts from the bars it gets
            end = cursor + interval
            lookback = _lookback(interval, slot.strategy.warmup_bars() + 1,
                                 always_open=self._always_open)
            self.bot.warm_up(key, self.connection.market_data.bars(
                slot.bars_key, self.parts.interval_s, end - lookback, end))

    def _probe_broker(self) -> None:
        # An account call, not the market clock: some adapters compute the clock locally
        # (a 24/7 exchange), which would declare an outage over without asking anyone.
        self.connection.broker.positions()

    # --- the loop ---------------------------------------------------------------------

    def _tick(self) -> datetime:
        clock = self.connection.market_data.market_clock(self.settings.market)
        now = self.clock.now()
        beat_by = now + timedelta(seconds=self.runtime.heartbeat_interval_s)
        if not clock.is_open:
            opens = clock.next_open.isoformat(timespec="minutes") if clock.next_open else "?"
            self.beat("sleeping", f"market closed; opens {opens}")
            return min(clock.next_open or beat_by, beat_by)
        if self._next_refresh is not None and now >= self._next_refresh:
            self._refresh_credentials()
        if now >= self._next_reconcile:
            self._reconcile()
        if now >= self._next_cycle:
            # How late this cycle starts after its bar close (+ settle): what a crowded host
            # shows first. The first cycle after boot has no schedule to be late for.
            if self.cycles:
                self._cycle_lag_ms = round((now - self._next_cycle).total_seconds() * 1000)
            self.cycle()
            self._next_cycle = self._next_bar_close(self.clock.now())
        elif self.bot.has_open_orders:
            # Resting remainders fill between bars: pick their fills up at every heartbeat
            # instead of leaving the position a bar behind the broker.
            self.sync.sync_fills(SyncReport())
            self.bot.refresh()
        # A learning bot on the registry says which versions it trades (`fleet status`).
        models = "" if self.models is None else f"; {self.models.note()}"
        if self.parts.brakes.halted:
            self.beat("halted", f"halted: {self.parts.brakes.halt_reason()}{models}")
        else:
            self.beat("trading", f"next bar {self._next_cycle:%H:%M:%S} UTC{models}")
        return min(self._next_cycle, beat_by)

    def cycle(self) -> None:
        """Everything due at a bar close (engine.assembly.AssembledBot's cycle): fills and
        the kill switches, each instrument's new bars, marks and the breakers; then save."""
        halted = self.parts.begin_cycle()
        if halted and not self._halt_logged:
            self.log.warning("trading halted", action="bot.halted",
                             reason=self.parts.brakes.halt_reason())
        self._halt_logged = halted
        now = self.clock.now()
        if self.roller is not None and not halted:
            for roll in self.roller.step(now):
                for execution in roll.executions:
                    if execution.outcome is Outcome.UNKNOWN:
                        raise OrderOutcomeUnknown(execution.detail)
        interval = timedelta(seconds=self.parts.interval_s)
        if self.models is not None and self.models.check():
            # Activated or rolled back since the last bar: this bar decides with the new
            # versions, their features warmed up on the history the old ones had seen.
            self._rewarm(interval)
        for key in list(self.bot.slots):
            self._feed(key, now, interval, halted)
        breach = self.parts.end_cycle()
        if breach is not None:
            self.log.error("circuit breaker tripped", action="risk.circuit_breaker",
                           scope=breach.scope.value, detail=breach.detail)
        self.bot.save()
        self.cycles += 1

    def _feed(self, key: str, now: datetime, interval: timedelta, halted: bool) -> None:
        state = self.bot.state.of(key)
        cursor = self._cursors.get(key) or state.last_bar_ts
        start = cursor + interval if cursor else now - interval * 2
        bars: list[Bar] = self.connection.market_data.bars(self.bot.slots[key].bars_key,
                                                           self.parts.interval_s, start, now)
        if not bars:
            return
        *older, last = bars
        self.bot.warm_up(key, older, advance=True)
        fresh = last.ts + 2 * interval >= now
        # While a futures roll is under way the strategy sees its bars but does not trade:
        # the roll's legs decide the position until it has arrived in the new contract.
        rolling = state.roll_from is not None
        execution = self.parts.trade(key, last, halted or not fresh or rolling)
        if execution is not None and execution.outcome is Outcome.UNKNOWN:
            # Nothing about this bar is saved: once the order's fate is known the bar is
            # decided again from the last saved state.
            raise OrderOutcomeUnknown(execution.detail)
        if execution is not None:
            self.log.info(f"order {execution.outcome}", action=f"order.{execution.outcome}",
                          instrument=key, detail=execution.detail,
                          client_order_id=execution.order.client_order_id
                          if execution.order else None)
            self.bot.save()  # narrow the window in which a crash would re-decide
        self._cursors[key] = last.ts

    def _isolate(self, exc: StrategyError) -> None:
        control = self.ledger.controls(self.bot_id).bot
        if control.state is TradingState.HALTED and control.source is HaltSource.STRATEGY_ERROR:
            return  # already isolated for this: one event, not one per bar
        now = self.clock.now()
        self.log.error("strategy error: bot halted", action="strategy.error", error=str(exc))
        self.ledger.record_event(self.bot_id, Event("strategy.error", str(exc), "critical"), now)
        self.ledger.halt(self.bot_id, HaltScope.BOT, str(exc)[:500], HaltSource.STRATEGY_ERROR,
                         "runner", now)
        self.parts.brakes.forget_halt()  # the next cycle pulls resting orders

    # --- credentials ------------------------------------------------------------------

    def _refresh_credentials(self) -> None:
        """The adapter's scheduled re-authentication (daily tokens and the like)."""
        refresh, every_s = self.connection.refresh, self.connection.refresh_every_s
        if refresh is None or not every_s:
            return
        self._next_refresh = self.clock.now() + timedelta(seconds=every_s)
        try:
            refresh()
        except (CredentialsError, ConfigError) as exc:
            raise CredentialsError(f"credential refresh failed: {exc}") from None
        self.log.info("credentials refreshed", action="broker.credentials_refreshed")

    def _credentials_failed(self, exc: CredentialsError) -> None:
        """Halt (persisted, source: credentials), alert once, then retry with backoff until
        the broker takes our credentials again; then lift our own halt (never another's)."""
        self._halt_for_credentials(exc)
        if self._retry_credentials(exc):
            self._lift_credentials_halt()

    def _halt_for_credentials(self, exc: CredentialsError) -> None:
        now = self.clock.now()
        control = self.ledger.controls(self.bot_id).bot
        if control.state is TradingState.HALTED and control.source is HaltSource.CREDENTIALS:
            return  # already halted for this: one alert, not one per retry
        self.log.critical("broker refused credentials: trading halted",
                          action="broker.credentials", error=str(exc))
        self.ledger.record_event(self.bot_id, Event(
            "broker.credentials", f"credentials refused, trading halted: {exc}", "critical"), now)
        self.ledger.halt(self.bot_id, HaltScope.BOT, f"credentials refused: {exc}"[:500],
                         HaltSource.CREDENTIALS, "runner", now)
        self.parts.brakes.forget_halt()  # the next cycle pulls resting orders

    def _retry_credentials(self, exc: CredentialsError) -> bool:
        """True once an authenticated call works again; False if asked to stop first."""
        delays = backoff_delays(initial_s=5.0, maximum_s=300.0)
        while not self.stop.is_set():
            self.beat("halted", f"credentials refused; retrying: {str(exc)[:120]}")
            if self._sleep(delays()):
                return False
            try:
                if self.connection.refresh is not None:
                    self.connection.refresh()
                else:
                    self.connection.broker.positions()  # any authenticated call
            except (CredentialsError, ConfigError) as again:
                exc = CredentialsError(str(again))
            except (TransientBrokerError, BadBrokerReplyError):
                continue
            else:
                return True
        return False

    def _lift_credentials_halt(self) -> None:
        control = self.ledger.controls(self.bot_id).bot
        if control.state is not TradingState.HALTED or control.source is not HaltSource.CREDENTIALS:
            return
        now = self.clock.now()
        self.ledger.set_control(self.bot_id, TradingState.ACTIVE, "credentials accepted again",
                                HaltSource.CREDENTIALS, "runner", now)
        self.ledger.record_event(self.bot_id, Event(
            "broker.credentials_ok", "credentials accepted again; trading resumed"), now)
        self.log.warning("credentials accepted again; trading resumed",
                         action="broker.credentials_ok")

    # --- time -------------------------------------------------------------------------

    def _next_bar_close(self, now: datetime) -> datetime:
        interval = self.parts.interval_s
        epoch = now.timestamp()
        boundary = math.floor(epoch / interval) * interval + interval
        return datetime.fromtimestamp(boundary + self.runtime.bar_settle_s, now.tzinfo)

    def _sleep_until(self, moment: datetime) -> None:
        """Sleep until `moment`; returns at once when asked to stop. Through the injected
        `sleep` like every other wait, so a clock that is not the wall clock stays in step."""
        remaining = (moment - self.clock.now()).total_seconds()
        if remaining > 0:
            self._sleep(remaining)


def _lookback(interval: timedelta, bars: int, *, always_open: bool) -> timedelta:
    """Enough calendar time to contain `bars` in-session bars: a market that never closes
    needs little slack; others must reach back across nights, weekends and holidays."""
    if always_open:
        return interval * bars * 2 + timedelta(minutes=5)
    return interval * bars * 4 + timedelta(days=4)


def _is_dead_local_process(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ShiftedSessions:
    """`source`'s sessions moved by `delta` (a demo venue's sessions in wall time)."""

    def __init__(self, source: SessionSource, delta: timedelta) -> None:
        self._source = source
        self._delta = delta

    def sessions(self, calendar: str, start: date, end: date) -> list[Session]:
        days = timedelta(days=1 + abs(self._delta) // timedelta(days=1))
        moved = [s.shifted(self._delta)
                 for s in self._source.sessions(calendar, start - days, end + days)]
        return [s for s in moved if start <= s.open.date() <= end]
