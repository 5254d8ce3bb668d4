"""Every dashboard page through Streamlit's AppTest on a seeded fleet, on SQLite and
PostgreSQL: the numbers shown are asserted, not just that a page renders. Plus logging in,
the controls (audited, confirmed), and the pages' answers for an empty or absent database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

import fleetkit.dashboard as dashboard_package
from fleetkit.config.market_data import OptionCollectorSettings
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.dashboard.auth import hash_password
from fleetkit.dashboard.ui import _shared_context
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.schema import bot_controls, bots, events
from tests.integration.dashboard.dashboard_seed import Seeded, seed_fleet, seed_market_data

APP = str(Path(dashboard_package.__file__).parent / "app.py")
PASSWORD = "correct horse battery"
USERS_ENV = "FLEET_TEST_DASHBOARD_USERS"
TIMEOUT_S = 60


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
                  ) -> Iterator[None]:
    config = tmp_path / "fleet.yaml"
    config.write_text(f"dashboard:\n  auth:\n    users_env: {USERS_ENV}\n    max_failures: 3\n",
                      encoding="utf-8")
    monkeypatch.setenv("FLEET_CONFIG", str(config))
    monkeypatch.setenv("FLEET_HOME", str(tmp_path))
    monkeypatch.setenv("FLEET_DB_URL", database_url)
    monkeypatch.delenv("FLEET_DASHBOARD_DB_URL", raising=False)
    monkeypatch.delenv("FLEET_CONTROL_DB_URL", raising=False)
    monkeypatch.setenv(USERS_ENV, f"alice:{hash_password(PASSWORD)}")
    _shared_context.clear()
    yield
    _shared_context.clear()


@pytest.fixture
def seeded(fleet_db: Any, dashboard_env: None) -> Seeded:
    return seed_fleet(fleet_db)


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_each_bots_state_and_the_fleets_totals(seeded: Seeded) -> None:
    at = open_page()
    assert metrics(at) == {"Bots": "4", "Active": "1", "Halted": "1", "Stale or stopped": "2",
                           "Open positions": "2", "Fleet P&L today": "-$434.50"}
    table = at.dataframe[0].value
    # Halted and stale first: what needs a person comes before what is fine.
    assert list(table["Bot"]) == ["beta", "delta", "gamma", "alpha"]
    assert list(table["State"]) == ["HALTED", "STALE", "STOPPED", "ACTIVE"]
    alpha = table[table["Bot"] == "alpha"].iloc[0]
    assert (alpha["P&L today (USD)"], alpha["Fills today"], alpha["Positions"]) == (67.0, 2, 1)
    assert "spread too wide" in table[table["Bot"] == "beta"].iloc[0]["Why"]


def test_pnl_page_shows_the_fleet_curve_and_one_bots_when_chosen(seeded: Seeded) -> None:
    at = open_page("pnl")
    assert metrics(at)["Net P&L now"] == "-$434.50"
    summary = at.dataframe[0].value
    assert list(summary["Curve"]) == ["Fleet (USD)"]
    assert summary.iloc[0]["Now (USD)"] == -434.5
    at.multiselect(key="pnl_bots").select("alpha").run()
    assert metrics(at)["Net P&L now"] == "+$67.00"
    assert list(at.dataframe[0].value["Curve"]) == ["alpha"]


def test_positions_page_totals_exposure_and_unrealized(seeded: Seeded) -> None:
    at = open_page("positions")
    assert metrics(at) == {"Positions": "2", "Gross exposure": "$30,130.00",
                           "Unrealized P&L": "-$470.00"}
    assert list(at.dataframe[0].value["Unrealized (USD)"]) == [-500.0, 30.0]


def test_history_page_filters_trades_by_bot_and_side(seeded: Seeded) -> None:
    at = open_page("history")
    assert metrics(at)["Matching trades"] == "3"
    assert metrics(at)["Traded value"] == "$31,440.00"
    at.selectbox(key="history_bot").select("alpha").run()
    assert metrics(at)["Matching trades"] == "2"
    at.selectbox(key="history_side").select("sell").run()
    trades = at.dataframe[0].value
    assert list(zip(trades["Bot"], trades["Quantity"], trades["Price"], strict=True)) == [
        ("alpha", 4.0, 110.0)]


def test_risk_page_counts_denials_by_rule_and_lists_halts(seeded: Seeded) -> None:
    at = open_page("risk")
    by_rule = at.dataframe[0].value
    assert dict(zip(by_rule["Rule"], by_rule["Denials"], strict=True)) == {
        "max_order_value": 3, "price_collar": 1}
    halts = at.dataframe[1].value
    assert list(zip(halts["Bot"], halts["What"], halts["By"], strict=True)) == [
        ("beta", "halted", "cli:ops")]


def test_health_page_flags_the_stale_bot_the_restart_the_finding_and_the_dead_letter(
        seeded: Seeded) -> None:
    at = open_page("health")
    beats = at.dataframe[0].value
    assert dict(zip(beats["Component"], beats["Stale"], strict=True)) == {
        "bot:alpha": False, "bot:beta": False, "bot:delta": True, "notifier": False}
    assert any("1 component(s) stale" in w.value for w in at.warning)
    restarts = at.dataframe[1].value
    assert dict(zip(restarts["Process"], restarts["Restarts"], strict=True)) == {"alpha": 1}
    frames = [d.value for d in at.dataframe]
    finding = next(f for f in frames if "Check" in f.columns)
    assert list(finding["Message"]) == ["disk / is 91% full"]
    routes = next(f for f in frames if "Route" in f.columns and "Pending" in f.columns)
    assert list(routes["Dead letters"]) == [1]
    assert any("1 dead letter(s)" in e.value for e in at.error)
    jobs = next(f for f in frames if "Job" in f.columns)
    assert list(zip(jobs["Job"], jobs["Status"], strict=True)) == [("nightly-reconcile",
                                                                   "failed")]


def test_market_data_page_shows_collector_health_the_straddle_chart_and_rows_per_minute(
        fleet_db: Any, dashboard_env: None) -> None:
    seed_market_data(fleet_db)
    at = open_page("market_data")
    assert metrics(at) == {"Collectors": "2", "Rows today": "57", "Gaps today": "2",
                           "Quote days held": f"1 of {OptionCollectorSettings().hot_days}"}
    health = at.dataframe[0].value
    assert list(health["Collector"]) == ["options", "straddles"]
    options = health.iloc[0]
    assert (options["Rows today"], options["Written"], options["Missed"], options["Rejects"],
            options["Write ms max"]) == (54, 3, 1, 3, 12.0)
    assert options["Heartbeat"].startswith("collecting")
    straddle, rows = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    # BANKNIFTY from the tracker's snapshots, NIFTY from the collector's chains.
    assert {t["name"]: len(t["x"]) for t in straddle["data"]} == {"BANKNIFTY": 3, "NIFTY": 3}
    assert [(t["type"], t["name"], t["y"]) for t in rows["data"]] == [
        ("bar", "options", [18, 18, 18])]


def log_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="login_user").input("alice")
    at.text_input(key="login_password").input(password)
    next(b for b in at.button if b.label == "Log in").click().run()
    return at


def test_controls_need_a_login_and_a_typed_confirmation_then_halt_audited(
        seeded: Seeded, fleet_db: Any) -> None:
    at = open_page("controls")
    assert any("Log in to use the controls" in i.value for i in at.info)
    log_in(at, PASSWORD)
    assert any("Logged in as **alice**" in c.value for c in at.caption)
    at.selectbox(key="control_target").select("alpha")
    at.text_input(key="control_reason").input("news at noon")
    at.text_input(key="control_confirm").input("alhpa")  # a typo applies nothing
    next(b for b in at.button if b.label == "Apply").click().run()
    assert any("Not applied" in e.value for e in at.error)
    assert _bot_state(fleet_db, "alpha") is None
    at.text_input(key="control_reason").input("news at noon")
    at.text_input(key="control_confirm").input("alpha")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert any("bot alpha is now HALTED" in s.value for s in at.success)
    assert _bot_state(fleet_db, "alpha") == ("halted", "news at noon", "dashboard:alice")
    with fleet_db.engine.connect() as conn:
        audit = conn.execute(select(events.c.kind, events.c.actor)
                             .where(events.c.kind == "control.halted",
                                    events.c.actor == "dashboard:alice")).all()
    assert len(audit) == 1


def test_a_bot_halted_by_reconciliation_is_not_resumed_from_the_dashboard(
        seeded: Seeded, fleet_db: Any) -> None:
    reason = "position differs: ledger 10, broker 9 NYSE:AAPL"
    SqlLedger(fleet_db.engine, "-").set_control(
        seeded.ids["alpha"], TradingState.HALTED, reason, HaltSource.RECONCILIATION,
        "reconciler", seeded.now)
    at = open_page("controls")
    log_in(at, PASSWORD)
    at.radio(key="control_action").set_value("Resume")
    at.selectbox(key="control_target").select("alpha")
    at.text_input(key="control_confirm").input("alpha")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert any("refused: bot alpha was halted because its ledger and broker disagree"
               in w.value for w in at.warning)
    assert _bot_state(fleet_db, "alpha") == ("halted", reason, "reconciler")


def test_a_wrong_password_logs_nobody_in_and_repeated_ones_lock_logins(seeded: Seeded) -> None:
    at = open_page("controls")
    log_in(at, "wrong password!!")
    assert any("Wrong user or password" in e.value for e in at.error)
    log_in(at, "wrong password!!")
    log_in(at, "wrong password!!")  # the third: max_failures reached
    log_in(at, PASSWORD)  # even the right one waits out the lockout
    assert any("logins are paused" in e.value for e in at.error)
    assert not any("Logged in as" in c.value for c in at.caption)


def test_every_page_explains_an_empty_database(fleet_db: Any, dashboard_env: None) -> None:
    assert any("No bots in this database yet" in i.value for i in open_page().info)
    assert any("No P&L recorded" in i.value for i in open_page("pnl").info)
    assert any("No open positions" in i.value for i in open_page("positions").info)
    history = open_page("history")
    assert any("No trades match" in i.value for i in history.info)
    assert any("No orders were denied" in i.value for i in open_page("risk").info)
    assert any("No process has written a heartbeat" in i.value
               for i in open_page("health").info)
    assert any("No market data recorded yet" in i.value
               for i in open_page("market_data").info)


def test_a_database_that_is_down_is_a_message_on_every_page_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, dashboard_env: None, backend: str,
        tmp_path: Path) -> None:
    if backend == "sqlite":
        monkeypatch.setenv("FLEET_DB_URL", f"sqlite:///{tmp_path / 'absent' / 'fleet.db'}")
        expected = "no fleet database at"
    else:
        monkeypatch.setenv("FLEET_DB_URL", "postgresql://postgres@127.0.0.1:9/fleet")
        expected = "unreachable"
    _shared_context.clear()
    for page in (None, "pnl", "positions", "history", "risk", "health", "controls",
                 "market_data", "training"):
        at = open_page(page)
        assert any(expected in e.value for e in at.error), (page, [e.value for e in at.error])


def _bot_state(fleet_db: Any, name: str) -> tuple[str, str, str] | None:
    with fleet_db.engine.connect() as conn:
        row = conn.execute(select(bot_controls.c.state, bot_controls.c.reason,
                                  bot_controls.c.changed_by)
                           .join(bots, bots.c.id == bot_controls.c.bot_id)
                           .where(bots.c.name == name)).first()
    return None if row is None else (row[0], row[1], row[2])
