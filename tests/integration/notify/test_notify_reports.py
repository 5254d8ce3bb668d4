"""The scheduled reports against a real database (SQLite and PostgreSQL): the P&L update is
one brief message per period with the bots of open markets grouped by market, never twice
for a period (a restarted notifier included), nothing while every market is closed; the
daily summary comes once a day after its time, counting trades, halts and risk denials
from the rows the fleet wrote."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.core.controls import TradingState
from fleetkit.core.errors import DatabaseUnavailableError
from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Fill, OrderIntent, OrderStatus, OrderType, Side
from fleetkit.engine.ports import OrderReport
from fleetkit.risk.rails import Decision, DenialReason, HaltScope
from fleetkit.runtime.calendar_watch import market_calendars
from fleetkit.runtime.notify_tasks import DailySummary, PnlReports
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.outbox import Outbox
from fleetkit.store.schema import outbox
from tests.support import migrated_database

MONDAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York: NYSE in session
SATURDAY = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
SUMMARY_AT = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 17:30 in New York (EST)
BTC, AAPL, ETH = "CRYPTO:BTC/USDT", "NYSE:AAPL", "CRYPTO:ETH/USDT"

CONFIG = """
bots:
  - {name: alpha, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}
  - {name: beta, market: CRYPTO, symbols: ["ETH/USDT"], strategy: buy_and_hold}
  - {name: gamma, market: NYSE, symbols: [AAPL], strategy: buy_and_hold}
notify:
  reports: {pnl_every_minutes: 15, daily_summary_at: "17:30", timezone: America/New_York}
"""
MARKET_OF = {"alpha": ("CRYPTO", "USDT"), "beta": ("CRYPTO", "USDT"), "gamma": ("NYSE", "USD")}


class Fleet:
    def __init__(self, database: Database, loaded: LoadedConfig,
                 calendars: MarketCalendars) -> None:
        self.database, self.loaded, self.calendars = database, loaded, calendars
        self.store = FleetStore(database.engine)
        self.ledger = SqlLedger(database.engine, database.fleet_tag())
        self.outbox = Outbox(database.engine)
        self.ids: dict[str, int] = {}
        self._fills = 0

    def register(self, *names: str) -> None:
        for name in names:
            market, currency = MARKET_OF[name]
            self.ids[name] = self.store.register_bot(
                name=name, market=market, currency=currency, strategy="buy_and_hold",
                mode="sandbox", settings={}, now=MONDAY - timedelta(days=7))

    def trade(self, bot: str, instrument: str, side: Side, quantity: str, price: str,
              at: datetime) -> None:
        """A market order filled at `price` with a 1.5 fee, recorded as a runner does."""
        self._fills += 1
        bot_id, qty, px = self.ids[bot], Decimal(quantity), Decimal(price)
        order = self.ledger.write_ahead(
            bot_id, OrderIntent(instrument, side, qty, OrderType.MARKET, px), None, at)
        fill = Fill(f"f{self._fills}", order.client_order_id, instrument, side, qty, px,
                    Decimal("1.5"), at)
        self.ledger.record_report(bot_id, order, OrderReport(
            order.client_order_id, f"B{self._fills}", instrument, side, OrderType.MARKET, qty,
            None, OrderStatus.FILLED, qty, px, "", (fill,)), at)

    def mark(self, bot: str, instrument: str, price: str, at: datetime) -> None:
        self.ledger.mark(self.ids[bot], {instrument: Quote(instrument, Decimal(price), at)},
                         Decimal(1), at)

    def deny(self, bot: str, reason: DenialReason, detail: str, at: datetime,
             halt: HaltScope | None = None) -> None:
        intent = OrderIntent(BTC, Side.BUY, Decimal(1), OrderType.MARKET, Decimal(60_000))
        self.ledger.record_denial(self.ids[bot], intent, Decision.deny(reason, detail, halt), at)

    def reports(self, kind: str) -> list[Any]:
        with self.database.engine.connect() as conn:
            return list(conn.execute(select(outbox).where(outbox.c.kind == kind)
                                     .order_by(outbox.c.id)).all())

    def pnl_reports(self) -> PnlReports:
        """The P&L task as a (re)started notifier builds it."""
        return PnlReports(self.loaded, self.database, self.outbox, self.calendars)


def loaded_config(home: Path) -> LoadedConfig:
    return LoadedConfig(parse_config(CONFIG, "fleet.yaml"), "fleet.yaml", home)


@pytest.fixture(scope="module")
def calendars(tmp_path_factory: pytest.TempPathFactory) -> MarketCalendars:
    """Sessions as the notifier reads them, shared: loading a year of them takes a second."""
    found = market_calendars(loaded_config(tmp_path_factory.mktemp("calendars")))
    found.sessions("XNYS", MONDAY.date(), SATURDAY.date())
    return found


@pytest.fixture
def fleet(fleet_db: Database, tmp_path: Path, calendars: MarketCalendars) -> Iterator[Fleet]:
    yield Fleet(fleet_db, loaded_config(tmp_path), calendars)


def a_monday(fleet: Fleet) -> None:
    """alpha +147.00 USDT (r +100, u +50, fees 3), gamma +18.50 USD (u +20, fee 1.5),
    beta flat."""
    fleet.register("alpha", "beta", "gamma")
    fleet.trade("alpha", BTC, Side.BUY, "0.5", "60000", MONDAY - timedelta(minutes=50))
    fleet.trade("alpha", BTC, Side.SELL, "0.25", "60400", MONDAY - timedelta(minutes=20))
    fleet.mark("alpha", BTC, "60200", MONDAY)
    fleet.trade("gamma", AAPL, Side.BUY, "10", "180", MONDAY - timedelta(minutes=10))
    fleet.mark("gamma", AAPL, "182", MONDAY)


def said(text: str) -> list[str]:
    """The text's lines with column padding collapsed (padding is unit-tested)."""
    return [" ".join(line.split()) for line in text.splitlines()]


# --- P&L every 15 minutes -------------------------------------------------------------------


def test_a_pnl_report_is_one_brief_message_with_the_open_markets_bots_grouped(
        fleet: Fleet) -> None:
    a_monday(fleet)
    fleet.pnl_reports().run_if_due(MONDAY + timedelta(seconds=20))
    (row,) = fleet.reports("report.pnl")
    assert (row.concern, row.severity, row.bot_id, row.dedup_key) == (
        "brief", "info", None, "report.pnl:2026-03-02T15:00")
    assert said(row.text) == [
        "P&L 10:00 EST — fleet +165.50 USD today (3 bots)",
        "",
        "CRYPTO — +147.00 USD (2 bots)",
        "alpha +147.00 USDT = +147.00 USD (r +100.00 u +50.00) 1 pos 2 fills",
        "beta +0.00 USDT = +0.00 USD (r +0.00 u +0.00) 0 pos",
        "",
        "NYSE — +18.50 USD (1 bot)",
        "gamma +18.50 USD (r +0.00 u +20.00) 1 pos 1 fills",
    ]


def test_a_period_is_reported_once_even_by_a_restarted_notifier(fleet: Fleet) -> None:
    a_monday(fleet)
    task = fleet.pnl_reports()
    task.run_if_due(MONDAY)
    task.run_if_due(MONDAY + timedelta(minutes=1))
    fleet.pnl_reports().run_if_due(MONDAY + timedelta(seconds=90))  # restarted: the DB says no
    assert [r.dedup_key for r in fleet.reports("report.pnl")] == ["report.pnl:2026-03-02T15:00"]
    task.run_if_due(MONDAY + timedelta(minutes=15))
    assert [r.dedup_key for r in fleet.reports("report.pnl")] == [
        "report.pnl:2026-03-02T15:00", "report.pnl:2026-03-02T15:15"]


def test_a_period_found_more_than_two_minutes_late_is_skipped_not_sent_stale(
        fleet: Fleet) -> None:
    a_monday(fleet)
    task = fleet.pnl_reports()
    task.run_if_due(MONDAY + timedelta(minutes=3))
    assert fleet.reports("report.pnl") == []
    task.run_if_due(MONDAY + timedelta(minutes=15))
    assert [r.dedup_key for r in fleet.reports("report.pnl")] == ["report.pnl:2026-03-02T15:15"]


def test_the_bots_of_a_closed_market_are_left_out(fleet: Fleet) -> None:
    a_monday(fleet)
    fleet.pnl_reports().run_if_due(SATURDAY)
    (row,) = fleet.reports("report.pnl")
    lines = said(row.text)
    assert lines[:3] == ["P&L 07:00 EST — fleet +0.00 USD today (3 bots)",  # Monday's is gone
                         "", "CRYPTO — +0.00 USD (2 bots)"]
    assert [line.split(" (r ")[0] for line in lines[3:5]] == [
        "alpha +0.00 USDT = +0.00 USD", "beta +0.00 USDT = +0.00 USD"]
    assert lines[5:] == ["", "not shown, market closed: NYSE (1 bot)"]
    assert "gamma" not in row.text


def test_no_report_while_every_market_is_closed(fleet: Fleet) -> None:
    fleet.register("gamma")
    fleet.pnl_reports().run_if_due(SATURDAY)
    assert fleet.reports("report.pnl") == []
    fleet.pnl_reports().run_if_due(MONDAY)  # the same fleet once NYSE opens
    (row,) = fleet.reports("report.pnl")
    assert said(row.text)[2:] == ["NYSE — +0.00 USD (1 bot)",
                                  "gamma +0.00 USD (r +0.00 u +0.00) 0 pos"]


# --- the daily summary ----------------------------------------------------------------------


def a_day_with_trouble(fleet: Fleet) -> None:
    a_monday(fleet)
    # Older than a day: neither counted as a trade nor as a denial.
    fleet.trade("beta", ETH, Side.BUY, "1", "3000", SUMMARY_AT - timedelta(days=2))
    fleet.deny("beta", DenialReason.STALE_PRICE, "price 20 min old", SUMMARY_AT
               - timedelta(days=2))
    fleet.store.set_state("beta", TradingState.HALTED, "spread too wide", "cli:ops",
                          datetime(2026, 3, 2, 16, 5, tzinfo=UTC))
    fleet.deny("alpha", DenialReason.MAX_ORDER_VALUE, "order value $60,000 over $50,000",
               datetime(2026, 3, 2, 17, 0, tzinfo=UTC))
    fleet.deny("alpha", DenialReason.MAX_ORDER_VALUE, "order value $61,000 over $50,000",
               datetime(2026, 3, 2, 17, 1, tzinfo=UTC))
    fleet.deny("gamma", DenialReason.DAILY_LOSS_BOT, "daily loss $510.00 reached the limit $500",
               datetime(2026, 3, 2, 19, 45, tzinfo=UTC), halt=HaltScope.BOT)


def test_the_daily_summary_counts_trades_halts_and_denials_from_the_days_rows(
        fleet: Fleet) -> None:
    a_day_with_trouble(fleet)
    DailySummary(fleet.loaded, fleet.database, fleet.outbox).run_if_due(SUMMARY_AT)
    (row,) = fleet.reports("report.daily")
    assert (row.concern, row.severity, row.dedup_key) == ("brief", "info",
                                                         "report.daily:2026-03-02")
    text = said(row.text)
    assert text[:2] == ["Daily summary 2026-03-02 17:30 EST",
                        "Fleet P&L: +165.50 USD (3 bots, 2 halted)"]
    assert text[text.index("Trades: 3"):] == [
        "Trades: 3",
        "Halts:",
        # Times in the report's time zone, like the header (16:05 and 19:45 UTC).
        "11:05 beta: bot halted by cli:ops (operator): spread too wide",
        "14:45 gamma: bot halted by risk (circuit_breaker): daily loss $510.00 reached the "
        "limit $500",
        "Risk denials (3):",
        "2 max_order_value",
        "1 daily_loss_bot",
        "Monitor findings: none",
    ]


def test_the_daily_summary_comes_once_a_day_at_or_after_its_time(fleet: Fleet) -> None:
    a_monday(fleet)
    summary = DailySummary(fleet.loaded, fleet.database, fleet.outbox)
    summary.run_if_due(SUMMARY_AT - timedelta(minutes=1))
    assert fleet.reports("report.daily") == []
    summary.run_if_due(SUMMARY_AT)
    summary.run_if_due(SUMMARY_AT + timedelta(hours=1))
    # A notifier restarted later the same (New York) day finds it sent: the DB says no.
    DailySummary(fleet.loaded, fleet.database, fleet.outbox).run_if_due(
        SUMMARY_AT + timedelta(hours=5))
    assert [r.dedup_key for r in fleet.reports("report.daily")] == ["report.daily:2026-03-02"]
    summary.run_if_due(SUMMARY_AT + timedelta(hours=6))  # 00:30 Tuesday in New York: too early
    summary.run_if_due(SUMMARY_AT + timedelta(days=1))
    assert [r.dedup_key for r in fleet.reports("report.daily")] == [
        "report.daily:2026-03-02", "report.daily:2026-03-03"]


def test_reports_the_database_refused_are_written_on_the_next_pass(
        tmp_path: Path, calendars: MarketCalendars, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_SQLITE_BUSY_TIMEOUT_MS", "50")  # a locked file fails fast
    path = tmp_path / "fleet.db"
    database = migrated_database(f"sqlite:///{path}")
    try:
        fleet = Fleet(database, loaded_config(tmp_path), calendars)
        fleet.register("alpha")
        tasks = [fleet.pnl_reports(), DailySummary(fleet.loaded, database, fleet.outbox)]
        other_writer = sqlite3.connect(path, isolation_level=None)
        other_writer.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            for task in tasks:
                with pytest.raises(DatabaseUnavailableError, match="database is locked"):
                    task.run_if_due(SUMMARY_AT)
        finally:
            other_writer.execute("ROLLBACK")
            other_writer.close()
        for task in tasks:  # the notifier's next pass, a second later
            task.run_if_due(SUMMARY_AT + timedelta(seconds=1))
        assert [r.dedup_key for r in fleet.reports("report.pnl")] == [
            "report.pnl:2026-03-02T22:30"]
        assert [r.dedup_key for r in fleet.reports("report.daily")] == [
            "report.daily:2026-03-02"]
    finally:
        database.dispose()
