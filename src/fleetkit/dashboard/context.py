"""What a dashboard process shares across browser sessions: the config, one read-only
database handle, the query cache, the users and the login guard. Built from the environment
`fleet dashboard` sets for the Streamlit process it starts."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from fleetkit.config.dashboard import DashboardSettings
from fleetkit.config.loader import LoadedConfig, load_config
from fleetkit.core.controls import Control, TradingState
from fleetkit.dashboard.auth import LoginGuard, load_users
from fleetkit.dashboard.cache import TtlCache
from fleetkit.dashboard.market_queries import MarketDataQueries
from fleetkit.dashboard.queries import DashboardQueries
from fleetkit.dashboard.training_queries import TrainingQueries
from fleetkit.runtime.wiring import database_url, market_data_url
from fleetkit.store.database import Database, open_database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.migrate import COLLECTOR_BRANCHES, OPERATIONS, require_current_schema

T = TypeVar("T")
DB_URL_ENV = "FLEET_DASHBOARD_DB_URL"  # `fleet dashboard --db`
# The login the controls write through, when the dashboard's own login only reads (the
# reader role on PostgreSQL). Unset: the dashboard's own login.
CONTROL_DB_URL_ENV = "FLEET_CONTROL_DB_URL"


@dataclass
class DashboardContext:
    loaded: LoadedConfig
    database: Database
    queries: DashboardQueries
    cache: TtlCache
    users: dict[str, str]
    guard: LoginGuard
    _market_data: tuple[Database, MarketDataQueries] | None = None
    _market_data_lock: threading.Lock = field(default_factory=threading.Lock)
    _training: TrainingQueries | None = None

    @property
    def settings(self) -> DashboardSettings:
        return self.loaded.config.dashboard

    def cached(self, name: str, *args: Any) -> Any:
        """`queries.name(*args)`, reused for cache_ttl_s across sessions."""
        method: Callable[..., Any] = getattr(self.queries, name)
        return self.cache.get((name, args), lambda: method(*args))

    def set_state(self, bot: str | None, state: TradingState, reason: str,
                  actor: str) -> str:
        """Halt or resume through the CLI's audited path; the sentence to show."""
        url = os.environ.get(CONTROL_DB_URL_ENV)
        database = (open_database(url, must_exist=True, application_name="fleetkit-dashboard")
                    if url else self.database)
        try:
            store = FleetStore(database.engine)
            now = datetime.now(UTC)
            scope = "the fleet" if bot is None else f"bot {bot}"
            if state is TradingState.ACTIVE and bot is not None \
                    and store.held_by_reconciliation(bot):
                return f"refused: {store.reconciliation_hold_note(bot)}"
            previous: Control = store.set_state(bot, state, reason, actor, now)
        finally:
            if url:
                database.dispose()
        self.cache.clear()
        if state is TradingState.ACTIVE:
            if previous.state is TradingState.ACTIVE:
                return f"{scope} was not halted; nothing changed"
            return f"{scope} resumed (was {previous.state.value}: {previous.reason})"
        again = " (it already was; reason updated)" if previous.state is state else ""
        return f"{scope} is now {state.value.upper()}{again}: {reason}"

    def market_data(self) -> MarketDataQueries:
        """The market-data database's queries, opened on first use: it may be a database
        of its own, absent until a collector has run, and then only the Market data page
        says so (raises ConfigError / DatabaseUnavailableError / SchemaMismatchError)."""
        with self._market_data_lock:
            if self._market_data is None:
                fleet_url = database_url(self.loaded, os.environ.get(DB_URL_ENV) or None)
                url = market_data_url(self.loaded, fleet_url)
                if url == fleet_url:  # one database: its engine, once its branch is checked
                    require_current_schema(self.database.engine, self.database.where,
                                           COLLECTOR_BRANCHES)
                    database = self.database
                else:
                    database = open_database(url, must_exist=True, branches=COLLECTOR_BRANCHES,
                                             application_name="fleetkit-dashboard")
                self._market_data = (database, MarketDataQueries(
                    database.engine, self.database.engine, self.loaded.config.market_data))
            return self._market_data[1]

    def training(self) -> TrainingQueries:
        """The training runs' and model registry's queries, once the fleet database's
        operations branch is checked (raises SchemaMismatchError naming `fleet db upgrade`)."""
        if self._training is None:
            require_current_schema(self.database.engine, self.database.where, (OPERATIONS,))
            self._training = TrainingQueries(self.database.engine)
        return self._training

    def close(self) -> None:
        if self._market_data is not None and self._market_data[0] is not self.database:
            self._market_data[0].dispose()
        self.database.dispose()


def build_context() -> DashboardContext:
    """Raises ConfigError / DatabaseUnavailableError / SchemaMismatchError with the fix."""
    loaded = load_config()
    settings = loaded.config.dashboard
    database = open_database(database_url(loaded, os.environ.get(DB_URL_ENV) or None),
                             must_exist=True, application_name="fleetkit-dashboard")
    queries = DashboardQueries(database.engine, loaded.config.runtime.stale_after_s)
    return DashboardContext(loaded, database, queries, TtlCache(settings.cache_ttl_s),
                            load_users(settings.auth, loaded.config_dir),
                            LoginGuard(settings.auth.max_failures, settings.auth.lockout_s))
