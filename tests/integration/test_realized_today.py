"""`realized_today` (fleet status, the dashboard, /pnl) is what was realized since the UTC
day began, not since the bot was born: the day's start is kept in bot_pnl (migration 0008)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fleetkit.core.orders import Side
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.status import fleet_view
from tests.integration.dashboard.dashboard_seed import mark, trade

AAPL = "NYSE:AAPL"
DAY1 = datetime(2026, 11, 19, 15, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def test_realized_pnl_counts_from_the_start_of_each_utc_day(fleet_db: Any) -> None:
    bot_id = FleetStore(fleet_db.engine).register_bot(
        name="alpha", market="NYSE", currency="USD", strategy="sma_cross", mode="sandbox",
        settings={}, now=DAY1)
    ledger = SqlLedger(fleet_db.engine, fleet_db.fleet_tag())
    trade(ledger, bot_id, AAPL, Side.BUY, "10", "100", "f1", DAY1)
    trade(ledger, bot_id, AAPL, Side.SELL, "5", "110", "f2", DAY1 + timedelta(minutes=1))
    mark(ledger, bot_id, AAPL, "110", DAY1 + timedelta(minutes=2))
    day1 = fleet_view(fleet_db.engine, DAY1 + timedelta(minutes=3), 900).bots[0]
    assert day1.realized_today == Decimal(50)

    mark(ledger, bot_id, AAPL, "110", DAY2)  # the next day's first mark: nothing realized
    assert fleet_view(fleet_db.engine, DAY2, 900).bots[0].realized_today == 0
    trade(ledger, bot_id, AAPL, Side.SELL, "5", "120", "f3", DAY2 + timedelta(minutes=1))
    mark(ledger, bot_id, AAPL, "120", DAY2 + timedelta(minutes=2))
    day2 = fleet_view(fleet_db.engine, DAY2 + timedelta(minutes=3), 900).bots[0]
    assert day2.realized_today == Decimal(100)  # 5 x (120 - 100), not the lifetime 150
    # A view of a day the bot has not marked yet shows nothing realized in it.
    later = fleet_view(fleet_db.engine, DAY2 + timedelta(days=1), 900).bots[0]
    assert later.realized_today == 0
