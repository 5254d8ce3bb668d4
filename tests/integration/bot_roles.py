"""Bot roles on PostgreSQL, shared by the isolation and hostile-role tests: a migrated fleet
of two bots (alpha, beta) with a login role each and a reader, and helpers that act as them.

Roles are cluster-wide, so each fleet names its login roles with a fresh prefix and drops
them afterwards (the group roles fleet_bot and fleet_reader are shared and stay).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fleetkit.cli.app import main
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Fill, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.core.signals import Signal
from fleetkit.engine.ports import OrderReport
from fleetkit.risk.rails import Decision
from fleetkit.store.database import Database, open_database
from fleetkit.store.fleet import FleetStore, Heartbeat
from fleetkit.store.ledger import SqlLedger
from tests.support import migrated_database

T0 = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
BTC = "CRYPTO:BTC/USDT"
CONFIG = """
risk: {max_order_value_usd: 1000000, max_position_value_usd: 1000000,
       daily_loss_limit_usd: 100000}
bots:
  - {name: alpha, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}
  - {name: beta, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}
"""
BOT_TABLES = ("orders", "fills", "positions", "bot_controls", "bot_pnl", "pnl_snapshots",
              "signals", "bot_state", "heartbeats", "events")


@dataclass
class Fleet:
    base_url: str
    schema: str
    owner: Database
    config: Path
    prefix: str
    secrets: Path
    ids: dict[str, int]

    def role(self, bot: str) -> str:
        return f"{self.prefix}{bot}"

    def password(self, role: str) -> str:
        return (self.secrets / f"{role}.password").read_text().strip()

    def url_as(self, role: str) -> str:
        url = make_url(self.base_url).set(username=role, password=self.password(role))
        return url.update_query_dict({"options": f"-csearch_path={self.schema}"}
                                     ).render_as_string(hide_password=False)

    def roles(self, *extra: str) -> int:
        return main(["db", "roles", "--config", str(self.config), "--db", self.owner_url(),
                     "--role-prefix", self.prefix, "--secrets-dir", str(self.secrets),
                     "--reader-role", f"{self.prefix}reader", *extra])

    def declare(self, folder: Path, *extra: str, prefix: str | None = None) -> int:
        """`fleet db roles --passwords-from folder`, as a generated deployment runs it."""
        prefix = prefix or self.prefix
        return main(["db", "roles", "--config", str(self.config), "--db", self.owner_url(),
                     "--role-prefix", prefix, "--reader-role", f"{prefix}reader",
                     "--passwords-from", str(folder), *extra])

    def owner_url(self) -> str:
        return self.owner.engine.url.render_as_string(hide_password=False)

    def verifier(self, role: str) -> str:
        with self.owner.engine.connect() as conn:
            return str(conn.execute(text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"),
                                    {"r": role}).scalar_one())


@pytest.fixture
def fleet(pg_base_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Fleet]:
    owner = migrated_database(pg_schema)
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    schema = str(make_url(pg_schema).query["options"]).split("=", 1)[1]
    made = Fleet(pg_base_url, schema, owner, config, f"fkt{uuid.uuid4().hex[:8]}_",
                 tmp_path / "secrets", {})
    try:
        assert made.roles() == 0
        store = FleetStore(owner.engine)
        made.ids.update({b.name: b.id for b in store.bots()})
        yield made
    finally:
        drop_roles(owner.engine, made.prefix)
        owner.dispose()


def drop_roles(engine: Engine, prefix: str) -> None:
    with engine.begin() as conn:
        names = conn.execute(text("SELECT rolname FROM pg_roles WHERE starts_with(rolname, :p)"),
                             {"p": prefix}).scalars().all()
        for name in names:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE usename = :r"), {"r": name})
            conn.execute(text(f'DROP OWNED BY "{name}"'))
            conn.execute(text(f'DROP ROLE "{name}"'))


@pytest.fixture
def as_bot(fleet: Fleet) -> Iterator[dict[str, Database]]:
    """Connections as each bot's own role (and the reader's), each on the test schema."""
    opened = {name: open_database(fleet.url_as(fleet.role(name)))
              for name in ("alpha", "beta", "reader")}
    yield opened
    for database in opened.values():
        database.dispose()


def intent(qty: str = "1") -> OrderIntent:
    return OrderIntent(BTC, Side.BUY, Decimal(qty), OrderType.MARKET, Decimal("100"))


def trade(database: Database, bot_id: int, fill_id: str, daily_usd_price: str) -> None:
    """One order, filled, marked: every bot-owned table gets a row."""
    ledger = SqlLedger(database.engine, database.fleet_tag())
    admission = ledger.admit(bot_id, intent(), None, Decimal(1), T0, lambda _: Decision.allow())
    order = admission.order
    assert order is not None
    fill = Fill(fill_id, order.client_order_id, BTC, Side.BUY, Decimal(1), Decimal(100),
                Decimal("0.1"), T0)
    ledger.record_report(bot_id, order, OrderReport(
        order.client_order_id, "B1", BTC, Side.BUY, OrderType.MARKET, Decimal(1), None,
        OrderStatus.FILLED, Decimal(1), Decimal(100), "", (fill,)), T0)
    ledger.mark(bot_id, {BTC: Quote(BTC, Decimal(daily_usd_price), T0)}, Decimal(1), T0)
    ledger.set_control(bot_id, TradingState.REDUCING, "test", HaltSource.OPERATOR, "t", T0)
    ledger.save_state(bot_id, ledger.load_state(bot_id), T0)
    ledger.record_signal(bot_id, BTC, T0, Signal(target_quantity=Decimal(1), note="test"),
                         T0)
    store = FleetStore(database.engine)
    name = next(bot.name for bot in store.bots() if bot.id == bot_id)
    # As the runner beats: a bot's role may beat only as `bot:<its name>` (migration 0011).
    store.beat(Heartbeat(f"bot:{name}", "bot", bot_id, "trading", "", 1, "h", T0, T0, 1))


def rows(database: Database, table: str, bot_id: int) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE bot_id = :b"),
                                {"b": bot_id}).scalar_one())


def refused(database: Database, statement: str, **params: Any) -> bool:
    """True if the statement errors, or runs and touches no row."""
    try:
        with database.engine.begin() as conn:
            return conn.execute(text(statement), params).rowcount == 0
    except DBAPIError:
        return True


def errors(database: Database, statement: str) -> bool:
    try:
        with database.engine.begin() as conn:
            conn.execute(text(statement))
    except DBAPIError:
        return True
    return False
