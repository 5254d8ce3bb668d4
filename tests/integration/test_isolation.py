"""Per-bot isolation on PostgreSQL: connected as bot A's own role, A lives a whole normal
bot life but can neither read nor change bot B's rows; the reader role reads and never
writes; `fleet db roles` is idempotent and rotates passwords, and with `--passwords-from`
makes every role's password the one in its file (what generated deployments run).

Roles are cluster-wide, so each test names its login roles with a fresh prefix and drops
them afterwards (the group roles fleet_bot and fleet_reader are shared and stay).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.cli.app import main
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.risk.rails import Decision, DenialReason, HaltScope
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.store.database import Database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.roles import verifier_matches
from tests.integration.bot_roles import (
    BOT_TABLES,
    BTC,
    CONFIG,
    T0,
    Fleet,
    errors,
    intent,
    refused,
    rows,
    trade,
)
from tests.integration.bot_roles import drop_roles as _drop_roles
from tests.support import migrated_database


def test_bot_a_can_neither_read_nor_change_bot_b_rows(fleet: Fleet,
                                                       as_bot: dict[str, Database]) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    trade(as_bot["beta"], b, "b-1", "110")
    for table in BOT_TABLES:
        assert rows(fleet.owner, table, b) > 0, table  # B's rows exist...
        assert rows(as_bot["alpha"], table, b) == 0, table  # ...and A sees none of them
    alpha = as_bot["alpha"]
    for table in ("orders", "positions", "bot_controls", "fills", "bot_pnl"):
        column = "updated_at" if table not in ("fills",) else "created_at"
        assert refused(alpha, f"UPDATE {table} SET {column} = now() WHERE bot_id = :b", b=b)
        assert refused(alpha, f"DELETE FROM {table} WHERE bot_id = :b", b=b)
        assert rows(fleet.owner, table, b) > 0
    assert refused(alpha, "INSERT INTO bot_controls (bot_id, state, reason, changed_by, "
                          "changed_at) VALUES (:b, 'halted', 'x', 'a', now())", b=b)
    assert refused(alpha, "INSERT INTO orders (bot_id, client_order_id, instrument, side, "
                          "order_type, quantity, reference_price, status, filled_quantity, "
                          "reason, created_at, updated_at) VALUES (:b, 'evil', 'x', 'buy', "
                          "'market', 1, 1, 'pending', 0, '', now(), now())", b=b)
    assert refused(alpha, "INSERT INTO events (bot_id, kind, severity, message, data, "
                          "created_at) VALUES (:b, 'x', 'info', 'forged', '{}', now())", b=b)
    assert refused(alpha, "UPDATE bots SET lease_owner = 'evil' WHERE id = :b", b=b)
    assert refused(alpha, "UPDATE bots SET db_role = NULL WHERE id = :a", a=a)
    assert refused(alpha, "ALTER TABLE orders DISABLE ROW LEVEL SECURITY")
    assert refused(alpha, "ALTER TABLE orders ADD COLUMN evil int")
    assert errors(alpha, "SELECT * FROM job_runs")
    assert SqlLedger(fleet.owner.engine, "x").controls(b).bot.state is TradingState.REDUCING


def test_a_bot_may_halt_the_fleet_but_never_resume_or_loosen_it(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    alpha = SqlLedger(as_bot["alpha"].engine, "x")
    a = fleet.ids["alpha"]
    for state in (TradingState.ACTIVE, TradingState.REDUCING):
        with pytest.raises(DBAPIError):
            alpha.set_control(None, state, "x", HaltSource.OPERATOR, "a", T0)
    alpha.set_control(None, TradingState.HALTED, "breaker", HaltSource.CIRCUIT_BREAKER, "risk",
                      T0)
    assert alpha.controls(a).fleet.state is TradingState.HALTED
    with pytest.raises(DBAPIError):
        alpha.set_control(None, TradingState.ACTIVE, "let me", HaltSource.OPERATOR, "a", T0)
    FleetStore(fleet.owner.engine).set_state(None, TradingState.ACTIVE, "ok", "op", T0)
    assert alpha.controls(a).fleet.state is TradingState.ACTIVE


def test_a_whole_bot_life_works_as_its_own_role(fleet: Fleet,
                                                as_bot: dict[str, Database]) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    trade(as_bot["beta"], b, "b-1", "90")  # B is 10 down today
    trade(as_bot["alpha"], a, "a-1", "97")  # A is 3 down
    ledger = SqlLedger(as_bot["alpha"].engine, as_bot["alpha"].fleet_tag())
    inputs = ledger.risk_inputs(a, BTC, Decimal(1), T0)
    # The fleet's daily P&L still sums every bot, through the definer function.
    assert inputs.bot_daily_pnl_usd == Decimal("-3.1")
    assert inputs.fleet_daily_pnl_usd == Decimal("-13.2")
    assert ledger.positions(a)[BTC].quantity == Decimal(1)
    result = ledger.apply_fills(a, [], "cursor-1", T0)
    assert result.applied == () and ledger.fills_cursor(a) == "cursor-1"
    # A fleet-wide breaker denial halts the fleet, with its fleet-level event.
    denied = ledger.admit(a, intent(), None, Decimal(1), T0, lambda _: Decision.deny(
        DenialReason.DAILY_LOSS_FLEET, "fleet down", HaltScope.FLEET))
    assert denied.order is None
    assert ledger.controls(a).fleet.state is TradingState.HALTED
    store = FleetStore(as_bot["alpha"].engine)
    assert store.register_bot(name="alpha", market="CRYPTO", currency="USDT",
                              strategy="buy_and_hold", mode="sandbox", settings={}, now=T0) == a
    assert store.acquire_lease(a, "me", 60, T0)
    assert not store.acquire_lease(b, "me", 60, T0)  # B's row is not A's to lease
    store.release_lease(a, "me")
    assert [bot.name for bot in store.bots()] == ["alpha", "beta"]


def test_a_bot_runner_steps_connected_as_its_own_role(fleet: Fleet,
                                                      as_bot: dict[str, Database],
                                                      tmp_path: Path) -> None:
    clock = ManualClock(T0)
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), MemoryBook(),
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SandboxBroker(venue, settings.name)
        return BrokerConnection(broker, broker)

    def sleep(seconds: float) -> bool:
        clock.advance(timedelta(seconds=seconds))
        return False

    runner = BotRunner(loaded, "alpha", fleet.url_as(fleet.role("alpha")), connect,
                       clock=clock, sleep=sleep)
    runner.boot()
    runner.step()
    runner.shutdown()
    a = fleet.ids["alpha"]
    assert SqlLedger(fleet.owner.engine, "x").positions(a)[BTC].quantity > 0
    assert rows(as_bot["beta"], "orders", a) == 0


def test_the_reader_reads_everything_and_writes_nothing(fleet: Fleet,
                                                        as_bot: dict[str, Database]) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    trade(as_bot["alpha"], a, "a-1", "100")
    trade(as_bot["beta"], b, "b-1", "100")
    reader = as_bot["reader"]
    for table in BOT_TABLES:
        assert rows(reader, table, a) > 0 and rows(reader, table, b) > 0, table
    assert not errors(reader, "SELECT 1 FROM job_runs")
    for statement in ("UPDATE orders SET reason = 'x'", "DELETE FROM events",
                      "UPDATE fleet_controls SET state = 'active'",
                      "INSERT INTO fleet_meta (key, value) VALUES ('k', 'v')"):
        assert refused(reader, statement), statement
    with pytest.raises(DBAPIError):
        SqlLedger(reader.engine, "x").set_control(None, TradingState.HALTED, "x",
                                                 HaltSource.OPERATOR, "r", T0)


def test_the_metrics_endpoint_reads_the_whole_fleet_as_the_reader_role(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    """Generated deployments run `fleet metrics serve` as the read-only login."""
    from fleetkit.monitor.metrics import FleetCollector

    trade(as_bot["alpha"], fleet.ids["alpha"], "a-1", "100")
    trade(as_bot["beta"], fleet.ids["beta"], "b-1", "100")
    metrics = {m.name: m for m in FleetCollector(as_bot["reader"].engine, 60).collect()}
    bots = {s.labels["bot"] for s in metrics["fleet_bot_state"].samples}
    assert bots == {"alpha", "beta"}


def test_fleet_status_jobs_and_services_read_as_the_reader_role(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    """What a dashboard or monitor host runs as the read-only login: the status view, the
    job runs and the market-hours services' leases (granted by migration 0006)."""
    from fleetkit.store.services import ServiceLeases
    from fleetkit.store.status import fleet_view

    trade(as_bot["alpha"], fleet.ids["alpha"], "a-1", "100")
    ServiceLeases(fleet.owner.engine, "host-a:1").acquire("exporter", 30, T0)
    reader = as_bot["reader"].engine
    view = fleet_view(reader, T0, 60)
    assert {bot.name for bot in view.bots} >= {"alpha", "beta"}
    assert ServiceLeases(reader, "monitor").holders()["exporter"].owner == "host-a:1"
    assert refused(as_bot["reader"], "DELETE FROM service_leases")
    assert errors(as_bot["alpha"], "SELECT 1 FROM service_leases")  # bots get nothing


def test_roles_are_idempotent_and_rotation_issues_a_new_password(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    role = fleet.role("alpha")
    old = fleet.password(role)
    assert verifier_matches(fleet.verifier(role), old)
    capsys.readouterr()
    assert fleet.roles("--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["changed"] is False
    assert all(not r["changed"] and r["password_file"] is None for r in summary["roles"])
    assert fleet.password(role) == old
    assert fleet.roles() == 0
    assert "nothing changed" in capsys.readouterr().out

    assert fleet.roles("--rotate", "--bots", "alpha") == 0
    out = capsys.readouterr().out
    assert "password rotated" in out and old not in out
    new = fleet.password(role)
    assert new != old
    # This server trusts loopback logins, so prove the password at the stored verifier.
    assert verifier_matches(fleet.verifier(role), new)
    assert not verifier_matches(fleet.verifier(role), old)
    assert oct((fleet.secrets / f"{role}.password").stat().st_mode)[-3:] == "600"
    with fleet.owner.engine.connect() as conn:
        assert old not in str(conn.execute(text("SELECT * FROM bots")).all())


def declare(folder: Path, passwords: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for role, password in passwords.items():
        (folder / f"{role}.password").write_text(password + "\n", encoding="utf-8")
    return folder


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_passwords_from_sets_each_existing_role_to_its_files_password_and_is_idempotent(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwords = {fleet.role("alpha"): "alpha-Declared-1", fleet.role("beta"): "beta-Declared-1",
                 f"{fleet.prefix}reader": "reader-Declared-1"}
    folder = declare(tmp_path / "declared", passwords)
    capsys.readouterr()
    assert fleet.declare(folder, "--json") == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert summary["changed"] is True
    assert {r["role"]: (r["password_set"], r["created"], r["password_file"])
            for r in summary["roles"]} == {role: (True, False, None) for role in passwords}
    for role, password in passwords.items():
        # This server trusts loopback logins, so prove the password at the stored verifier.
        assert verifier_matches(fleet.verifier(role), password)
        assert password not in out
    stored = {role: fleet.verifier(role) for role in passwords}

    assert fleet.declare(folder) == 0  # again: the same passwords, nothing to do
    assert "nothing changed" in capsys.readouterr().out
    assert {role: fleet.verifier(role) for role in passwords} == stored  # not even re-salted

    declare(folder, {fleet.role("alpha"): "alpha-Declared-2"})  # rotation: a new file
    assert fleet.declare(folder) == 0
    out = capsys.readouterr().out
    assert f"role {fleet.role('alpha')} password set from its file" in out
    assert f"role {fleet.role('beta')} unchanged" in out
    assert verifier_matches(fleet.verifier(fleet.role("alpha")), "alpha-Declared-2")
    assert not verifier_matches(fleet.verifier(fleet.role("alpha")), "alpha-Declared-1")
    assert fleet.verifier(fleet.role("beta")) == stored[fleet.role("beta")]


def test_passwords_from_creates_missing_roles_with_the_files_passwords(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    prefix = f"fkt{uuid.uuid4().hex[:8]}_"
    passwords = {f"{prefix}alpha": "alpha-New", f"{prefix}beta": "beta-New",
                 f"{prefix}reader": "reader-New"}
    try:
        assert fleet.declare(declare(tmp_path / "declared", passwords), prefix=prefix) == 0
        out = capsys.readouterr().out
        assert out.count(" created") == 3 and "password in" not in out
        for role, password in passwords.items():
            assert verifier_matches(fleet.verifier(role), password)
        with fleet.owner.engine.connect() as conn:
            mapped = dict(conn.execute(text("SELECT name, db_role FROM bots")).all())
            groups = dict(conn.execute(text(
                "SELECT u.rolname, g.rolname FROM pg_auth_members m "
                "JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
                "WHERE starts_with(u.rolname, :p)"), {"p": prefix}).all())
        assert mapped == {"alpha": f"{prefix}alpha", "beta": f"{prefix}beta"}
        assert groups == {f"{prefix}alpha": "fleet_bot", f"{prefix}beta": "fleet_bot",
                          f"{prefix}reader": "fleet_reader"}
        assert not (tmp_path / "home").exists()  # no password written anywhere
    finally:
        _drop_roles(fleet.owner.engine, prefix)


@pytest.mark.parametrize(("content", "problem"), [(None, "no password file"),
                                                  ("", "is empty")])
def test_passwords_from_refuses_a_missing_or_empty_file_and_changes_nothing(
        fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        content: str | None, problem: str) -> None:
    folder = declare(tmp_path / "declared", {fleet.role("alpha"): "alpha-Declared",
                                             fleet.role("beta"): "beta-Declared"})
    reader_file = folder / f"{fleet.prefix}reader.password"
    if content is not None:
        reader_file.write_text(content, encoding="utf-8")
    capsys.readouterr()
    assert fleet.declare(folder) == 2
    line = one_line_error(capsys)
    assert problem in line and str(reader_file) in line and "openssl rand" in line
    # Every file is read first: alpha kept the password the fixture gave it.
    assert verifier_matches(fleet.verifier(fleet.role("alpha")),
                            fleet.password(fleet.role("alpha")))


@pytest.mark.parametrize("conflict", [["--rotate"], ["--secrets-dir", "x"],
                                      ["--show-passwords"]])
def test_passwords_from_refuses_options_that_issue_passwords(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], conflict: list[str]) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    assert main(["db", "roles", "--config", str(config), "--db",
                 f"sqlite:///{tmp_path / 'none.db'}", "--passwords-from", str(tmp_path),
                 *conflict]) == 2
    line = one_line_error(capsys)
    assert "--passwords-from" in line and conflict[0] in line
    assert not (tmp_path / "none.db").exists()  # refused before anything was opened


def test_passwords_from_on_sqlite_has_nothing_to_do_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A generated deployment runs it at every start; the default single host is SQLite."""
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrated_database(url).dispose()
    folder = declare(tmp_path / "declared", {"fleet_bot_alpha": "a", "fleet_bot_beta": "b"})
    capsys.readouterr()
    assert main(["db", "roles", "--config", str(config), "--db", url, "--passwords-from",
                 str(folder)]) == 0
    assert "SQLite has no database roles: nothing to do" in capsys.readouterr().out


def test_on_sqlite_roles_are_refused_because_isolation_is_the_store_api(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SQLite has no roles: every process shares one file, so the trade-off is documented."""
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    database = migrated_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    database.dispose()
    assert main(["db", "roles", "--config", str(config), "--db",
                 f"sqlite:///{tmp_path / 'fleet.db'}"]) == 2
    assert "docs/isolation.md" in capsys.readouterr().err
    doc = (Path(__file__).parents[2] / "docs" / "isolation.md").read_text()
    assert "## SQLite: isolation by API" in doc


def test_a_bot_can_connect_as_its_role_with_a_password_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetkit.runtime.wiring import database_url

    secret = tmp_path / "alpha.password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("FLEET_DB_URL", "postgresql://fleet_bot_alpha@db:5432/fleet")
    monkeypatch.setenv("FLEET_DB_PASSWORD_FILE", str(secret))
    loaded = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)
    assert database_url(loaded) == "postgresql://fleet_bot_alpha:s3cret@db:5432/fleet"


def test_a_role_password_without_the_url_naming_the_role_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bot whose env file lost its FLEET_DB_URL must not fall back to the owner's URL."""
    from fleetkit.core.errors import ConfigError
    from fleetkit.runtime.wiring import database_url

    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    monkeypatch.setenv("FLEET_DB_PASSWORD_FILE", str(tmp_path / "alpha.password"))
    owner = parse_config('database: {url: "postgresql://fleet@db:5432/fleet"}\n' + CONFIG,
                         "test.yaml")
    with pytest.raises(ConfigError, match="FLEET_DB_URL is not"):
        database_url(LoadedConfig(owner, "test.yaml", tmp_path))
    # SQLite has no roles: generated units set the file anyway, and it is ignored.
    sqlite = LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path)
    assert database_url(sqlite) == f"sqlite:///{tmp_path / 'fleet.db'}"


def test_a_bot_enqueues_notifications_for_its_own_events_only_and_reads_none_back(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    """Migration 0007: a bot's role may INSERT outbox rows for itself (what insert_event does
    with each notify-worthy event), never for another bot, and may not read the outbox or
    touch deliveries; the reader sees it all."""
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    alpha = as_bot["alpha"]
    trade(alpha, a, "a-1", "100")  # its fill event enqueues its notification
    with fleet.owner.engine.connect() as conn:
        mine = conn.execute(text("SELECT count(*) FROM outbox WHERE bot_id = :a AND kind = "
                                 "'order.fill'"), {"a": a}).scalar_one()
    assert mine >= 1
    insert = ("INSERT INTO outbox (bot_id, kind, concern, severity, text, collapse_key, "
              "created_at) VALUES (:b, 'control.halted', 'trading', 'critical', 'forged', "
              "'k', now())")
    assert refused(alpha, insert, b=b)
    assert errors(alpha, "SELECT * FROM outbox")
    assert errors(alpha, "SELECT * FROM deliveries")
    assert errors(alpha, "SELECT * FROM notify_state")
    assert refused(alpha, "UPDATE outbox SET text = 'x'")
    with as_bot["reader"].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar_one() >= 1


def test_a_bot_records_its_own_funding_and_can_neither_see_nor_forge_anothers(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    from fleetkit.engine.ports import FundingEntry

    b = fleet.ids["beta"]
    perp = "CRYPTO:BTC/USDT:USDT"
    payment = FundingEntry("1", perp, T0, Decimal("0.0001"), Decimal(1), Decimal(60000),
                           Decimal(-6))
    beta = SqlLedger(as_bot["beta"].engine, as_bot["beta"].fleet_tag())
    assert beta.apply_funding(b, [payment], "1", T0) == 1
    assert beta.funding_cursor(b) == "1"
    assert rows(fleet.owner, "funding_payments", b) == 1
    alpha = as_bot["alpha"]
    assert rows(alpha, "funding_payments", b) == 0
    assert refused(alpha, "INSERT INTO funding_payments (bot_id, payment_id, instrument, at, "
                          "rate, quantity, mark, amount, created_at) VALUES (:b, '2', 'x', "
                          "now(), 0, 1, 1, 1000, now())", b=b)
    assert refused(alpha, "UPDATE funding_payments SET amount = 0 WHERE bot_id = :b", b=b)
    # Its own payments are history: not even the bot itself rewrites or deletes them.
    assert refused(as_bot["beta"], "UPDATE funding_payments SET amount = 0 WHERE bot_id = :b",
                   b=b)
    assert refused(as_bot["beta"], "DELETE FROM funding_payments WHERE bot_id = :b", b=b)
