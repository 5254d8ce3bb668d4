"""The dashboard's query layer on seeded data, on SQLite and PostgreSQL: every number the
pages show comes from here, so the numbers are asserted here first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update

from fleetkit.core.market_data import Quote
from fleetkit.core.orders import Side
from fleetkit.dashboard.queries import DashboardQueries, TradeFilter
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import bot_pnl, pnl_snapshots
from tests.integration.dashboard.dashboard_seed import (
    FLEET_PNL_TODAY_USD,
    Seeded,
    seed_fleet,
    seed_start,
    trade,
)


@pytest.fixture
def seeded(fleet_db: Any) -> Seeded:
    return seed_fleet(fleet_db)


@pytest.fixture
def queries(fleet_db: Any, seeded: Seeded) -> DashboardQueries:
    return DashboardQueries(fleet_db.engine, stale_after_s=900, clock=lambda: seeded.now)


def test_overview_has_every_bot_with_its_state_and_todays_pnl(queries: DashboardQueries) -> None:
    view = queries.overview()
    by_name = {b.name: b for b in view.bots}
    assert {n: b.state for n, b in by_name.items()} == {
        "alpha": "ACTIVE", "beta": "HALTED", "gamma": "STOPPED", "delta": "STALE"}
    assert "spread too wide" in by_name["beta"].reason
    assert by_name["alpha"].daily_pnl == Decimal("67")
    assert by_name["alpha"].realized_today == Decimal("40")
    assert by_name["beta"].daily_pnl == Decimal("-501.5")
    assert view.daily_pnl_usd == FLEET_PNL_TODAY_USD
    assert by_name["alpha"].fills_today == 2


def test_open_positions_carry_unrealized_pnl_in_usd_largest_first(
        queries: DashboardQueries) -> None:
    rows = queries.open_positions()
    assert [(r["bot"], r["instrument"]) for r in rows] == [("beta", "CRYPTO:BTC/USDT"),
                                                          ("alpha", "NYSE:AAPL")]
    assert [r["unrealized_usd"] for r in rows] == [-500.0, 30.0]
    assert sum(r["exposure_usd"] for r in rows) == pytest.approx(30_130.0)


def test_trades_filter_by_bot_side_and_date_with_totals_over_all_matches(
        queries: DashboardQueries, seeded: Seeded) -> None:
    everything = queries.trades(TradeFilter())
    assert everything.total == 3
    assert everything.notional_usd == pytest.approx(31_440.0)
    assert [r.broker_fill_id for r in everything.rows] == ["a2", "b1", "a1"]  # newest first
    alpha = queries.trades(TradeFilter(bot="alpha"))
    assert (alpha.total, alpha.notional_usd) == (2, pytest.approx(1_440.0))
    sells = queries.trades(TradeFilter(side="sell"))
    assert [(r.bot, r.quantity, r.price) for r in sells.rows] == [("alpha", Decimal(4),
                                                                   Decimal(110))]
    tomorrow = seeded.now + timedelta(days=1)
    assert queries.trades(TradeFilter(start=tomorrow)).total == 0
    limited = queries.trades(TradeFilter(limit=1))
    assert (len(limited.rows), limited.total) == (1, 3)


def test_orders_show_status_and_fill_with_the_same_filters(queries: DashboardQueries) -> None:
    found = queries.orders(TradeFilter(bot="beta"))
    assert found.total == 1
    order = found.rows[0]
    assert (order.status, order.filled_quantity, order.average_fill_price) == (
        "filled", Decimal("0.5"), Decimal(60000))
    assert queries.orders(TradeFilter(), status="cancelled").total == 0


def test_pnl_curves_end_at_each_bots_last_net_and_the_fleet_sums_them(
        queries: DashboardQueries, seeded: Seeded) -> None:
    curves = queries.pnl_curves(seeded.now - timedelta(hours=1), seeded.now + timedelta(
        minutes=1), points=600)  # 6 s buckets: alpha's two marks, 59 s apart, never share one
    assert set(curves) == {"alpha", "beta", ""}
    assert curves["alpha"].last_usd == pytest.approx(67.0)
    assert curves["beta"].last_usd == pytest.approx(-501.5)
    assert curves[""].last_usd == pytest.approx(-434.5)
    assert curves["alpha"].points[0].net == pytest.approx(-1.5)  # first mark: fee only


TCS = "NSE:TCS"


def gamma_holds_tcs(fleet_db: Any, seeded: Seeded, *rates: str) -> int:
    """gamma (INR) buys 10 TCS at 4,000 after the seeded marks, then is marked at 4,100 once
    per rate, two minutes apart (net each time: +1,000 unrealized - 1.5 fee = 998.5 INR)."""
    ledger = SqlLedger(fleet_db.engine, fleet_db.fleet_tag())
    gamma = seeded.ids["gamma"]
    start = max(seeded.now - timedelta(minutes=5), seed_start(seeded.now) + timedelta(seconds=70))
    trade(ledger, gamma, TCS, Side.BUY, "10", "4000", "g1", start)
    for step, rate in enumerate(rates):
        at = start + timedelta(seconds=1 + 120 * step)
        ledger.mark(gamma, {TCS: Quote(TCS, Decimal(4100), at)}, Decimal(rate), at)
    return gamma


def test_each_point_of_a_curve_is_in_usd_at_the_rate_of_its_own_mark(
        fleet_db: Any, queries: DashboardQueries, seeded: Seeded) -> None:
    """gamma trades in INR: an hour at 0.012 USD, then at 0.010 after fx_usd changed. Its
    earlier points keep their rate; only the last mark sets what the bot is worth now."""
    gamma_holds_tcs(fleet_db, seeded, "0.012", "0.010")

    curves = queries.pnl_curves(seeded.now - timedelta(hours=1),
                                seeded.now + timedelta(minutes=1), points=60)

    points = curves["gamma"].points
    assert [p.net for p in points] == [pytest.approx(998.5)] * 2
    assert [p.net_usd for p in points] == [pytest.approx(11.982), pytest.approx(9.985)]
    fleet_at_first = {p.at: p.net_usd for p in curves[""].points}[points[0].at]
    assert fleet_at_first == pytest.approx(-434.5 + 11.982)


def test_snapshots_from_before_their_rate_was_kept_use_the_bots_last_rate(
        fleet_db: Any, queries: DashboardQueries, seeded: Seeded) -> None:
    """Migration 0009 does not backfill: such snapshots convert as they always did."""
    gamma = gamma_holds_tcs(fleet_db, seeded, "0.012")
    with write_transaction(fleet_db.engine) as conn:
        conn.execute(update(pnl_snapshots).where(pnl_snapshots.c.bot_id == gamma)
                     .values(usd_per_unit=None))
        conn.execute(update(bot_pnl).where(bot_pnl.c.bot_id == gamma)
                     .values(usd_per_unit=Decimal("0.011")))

    curves = queries.pnl_curves(seeded.now - timedelta(hours=1),
                                seeded.now + timedelta(minutes=1), points=60)

    assert [p.net_usd for p in curves["gamma"].points] == [pytest.approx(998.5 * 0.011)]


def test_no_pnl_in_a_range_before_the_fleet_existed(queries: DashboardQueries,
                                                    seeded: Seeded) -> None:
    long_ago = seeded.now - timedelta(days=30)
    assert queries.pnl_curves(long_ago, long_ago + timedelta(days=1)) == {}


def test_denials_are_counted_per_rule_per_bucket(queries: DashboardQueries,
                                                 seeded: Seeded) -> None:
    found = queries.denials(seeded.now - timedelta(days=1), seeded.now + timedelta(minutes=1),
                            86_400)
    totals: dict[str, int] = {}
    for d in found:
        totals[d.rule] = totals.get(d.rule, 0) + d.count
    assert totals == {"max_order_value": 3, "price_collar": 1}
    assert all(d.bucket.tzinfo is UTC for d in found)
    assert queries.denials(seeded.now - timedelta(days=1), seeded.now, 3600, bot="beta") == []


def test_halts_list_who_halted_what_and_why(queries: DashboardQueries, seeded: Seeded) -> None:
    halts = queries.halts(seeded.now - timedelta(days=1), seeded.now + timedelta(minutes=1))
    assert [(h.bot, h.kind, h.actor) for h in halts] == [("beta", "control.halted", "cli:ops")]
    assert "spread too wide" in halts[0].message


def test_health_gathers_beats_restarts_findings_dead_letters_and_jobs(
        queries: DashboardQueries) -> None:
    health = queries.health(timedelta(hours=24))
    assert {b.component for b in health.heartbeats} == {"bot:alpha", "bot:beta", "bot:delta",
                                                        "notifier"}
    assert health.restart_counts == {"alpha": 1}
    assert [(f.key, f.severity, f.alerting) for f in health.findings] == [
        ("server:disk:/", "warning", True)]
    assert [(d.route, d.attempts) for d in health.dead_letters] == [("ops", 8)]
    assert [(r.route, r.dead) for r in health.routes] == [("ops", 1)]
    assert [(r.job, r.status.value) for r in health.job_runs] == [("nightly-reconcile",
                                                                   "failed")]


def test_an_empty_database_gives_empty_answers_not_errors(fleet_db: Any) -> None:
    queries = DashboardQueries(fleet_db.engine, 900)
    now = datetime.now(UTC)
    assert queries.overview().bots == ()
    assert queries.open_positions() == []
    assert queries.trades(TradeFilter()).total == 0
    assert queries.pnl_curves(now - timedelta(days=1), now) == {}
    assert queries.health(timedelta(hours=1)).heartbeats == ()
