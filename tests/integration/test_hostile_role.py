"""A compromised bot on PostgreSQL: connected as bot alpha's own role, try everything.

First the whole surface, enumerated from the catalog so a new table, function or sequence
cannot be forgotten: what the role is granted (and that every missing grant is a real
refusal), what row-level security lets it do to bot beta's rows. Then the attacks that
worked before migration 0011 — squatting beta's client order ids, forging outbox keys to
swallow beta's alerts and the owner's reports, lifting an operator's halt and forging the
audit's actor — each refused now, while a normal bot life still works (test_isolation.py).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fleetkit.brokers.sandbox.book import MemoryBook
from fleetkit.brokers.sandbox.broker import SandboxBroker
from fleetkit.brokers.sandbox.catalog import load_catalog
from fleetkit.brokers.sandbox.config import VenueConfig
from fleetkit.brokers.sandbox.prices import InventedPrices
from fleetkit.brokers.sandbox.venue import SandboxVenue
from fleetkit.calendars.market_calendars import MarketCalendars
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings
from fleetkit.core.alerts import Severity
from fleetkit.core.controls import HaltSource, TradingState
from fleetkit.core.errors import CredentialsError
from fleetkit.engine.ports import Event, FundingEntry
from fleetkit.runtime.clock import ManualClock
from fleetkit.runtime.runner import BotRunner, BrokerConnection
from fleetkit.sqlutil.engine import write_transaction
from fleetkit.store.controls import write_control
from fleetkit.store.database import Database, open_database
from fleetkit.store.fleet import FleetStore
from fleetkit.store.ledger import SqlLedger
from fleetkit.store.outbox import Outbox
from tests.integration.bot_roles import BTC, CONFIG, T0, Fleet, intent, trade
from tests.support import eventually

SEL, INS, UPD, DEL = "SELECT", "INSERT", "UPDATE", "DELETE"
PRIVILEGES = (SEL, INS, UPD, DEL, "TRUNCATE", "REFERENCES", "TRIGGER")
OWN_ROWS = {SEL, INS, UPD}
# What a bot's role may do to each table (RLS narrows it to its own rows where there is a
# bot_id). A table missing here fails the test: decide what bots get before adding it.
BOT_GRANTS: dict[str, set[str]] = {
    "alembic_version": {SEL}, "fleet_meta": {SEL}, "instruments": {SEL}, "bots": {SEL},
    "fleet_controls": OWN_ROWS, "bot_controls": OWN_ROWS, "signals": OWN_ROWS,
    "orders": OWN_ROWS, "fills": OWN_ROWS, "positions": OWN_ROWS, "bot_state": OWN_ROWS,
    "bot_pnl": OWN_ROWS, "pnl_snapshots": OWN_ROWS, "heartbeats": OWN_ROWS,
    "position_adjustments": {SEL}, "events": {SEL, INS}, "outbox": {INS},
    "job_runs": set(), "service_leases": set(), "deliveries": set(), "notify_state": set(),
    # The other schema branches' version tables: a bot checks only trading's.
    "alembic_version_operations": set(), "alembic_version_market_data": set(),
    # Market data: recorders write it as the owner; a bot asks its venue, never the history.
    "bars": set(), "option_quotes": set(), "option_quote_minutes": set(),
    "straddle_snapshots": set(), "collector_gaps": set(), "collector_counters": set(),
    "option_chain_minutes": set(),
    # A perpetual's funding: a bot records its own payments and never rewrites one.
    "funding_payments": {SEL, INS},
    # The model registry (operations branch) is the owner's: a bot reads only its own
    # active version and its files (row-level security), never the audit.
    "model_versions": {SEL}, "model_files": {SEL}, "model_history": set(),
    # Training runs are the pipeline's, run as the owner: a bot sees none of them.
    "training_runs": set(), "training_steps": set(),
}
BOT_ROW_UPDATES = {"market", "currency", "strategy", "mode", "settings", "lease_owner",
                   "lease_expires_at", "updated_at"}
BOT_FUNCTIONS = {"fleet_bot_id_of(role_name name)", "fleet_daily_pnl_usd(p_day text)"}
OWNER_ONLY_FUNCTIONS = {f"{name}()" for name in (
    "fleet_guard_id", "fleet_guard_order", "fleet_guard_fill", "fleet_guard_heartbeat",
    "fleet_guard_event", "fleet_guard_outbox", "fleet_guard_bot_control",
    "fleet_guard_fleet_control")}
BOT_SEQUENCES = {f"{t}_id_seq" for t in ("signals", "orders", "fills", "pnl_snapshots",
                                         "events", "outbox")}
ALL_SEQUENCES = BOT_SEQUENCES | {f"{t}_id_seq" for t in ("bots", "position_adjustments",
                                                         "job_runs", "deliveries",
                                                         "model_versions", "model_history",
                                                         "training_runs")}
NO_PRIVILEGE = "42501"


def refusal(database: Database, statement: str, **params: Any) -> tuple[str, str] | None:
    """(SQLSTATE, message) if the statement fails, None if it runs."""
    try:
        with database.engine.begin() as conn:
            conn.execute(text(statement), params)
    except DBAPIError as exc:
        return str(exc.orig.sqlstate), str(exc.orig.diag.message_primary)  # type: ignore[union-attr]
    return None


def owner_rows(fleet: Fleet, statement: str, **params: Any) -> list[Any]:
    with fleet.owner.engine.connect() as conn:
        return list(conn.execute(text(statement), params).all())


def tag(fleet: Fleet) -> str:
    return fleet.owner.fleet_tag()


# --- the surface ------------------------------------------------------------------------


def test_a_bot_role_can_do_exactly_what_the_maps_say_to_every_table_function_and_sequence(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    _table_grants(fleet, as_bot["alpha"])
    _row_level_security(fleet, as_bot)
    _functions_and_sequences(fleet, as_bot["alpha"])


def _table_grants(fleet: Fleet, alpha: Database) -> None:
    """Every table's grants as the map says, and every missing one a real refusal."""
    role = fleet.role("alpha")
    tables = {r[0] for r in owner_rows(fleet, "SELECT tablename FROM pg_tables "
                                              "WHERE schemaname = :s", s=fleet.schema)}
    assert tables == set(BOT_GRANTS), "a table was added or removed: update BOT_GRANTS"
    for table in sorted(tables):
        granted = {p for p in PRIVILEGES if owner_rows(
            fleet, "SELECT has_table_privilege(:r, :t, :p)", r=role,
            t=f"{fleet.schema}.{table}", p=p)[0][0]}
        assert granted == BOT_GRANTS[table], table
        first = owner_rows(fleet, "SELECT column_name FROM information_schema.columns WHERE "
                                  "table_schema = :s AND table_name = :t AND ordinal_position"
                                  " = 1", s=fleet.schema, t=table)[0][0]
        statements = {SEL: f'SELECT 1 FROM "{table}" LIMIT 0',
                      INS: f'INSERT INTO "{table}" DEFAULT VALUES',
                      UPD: f'UPDATE "{table}" SET "{first}" = "{first}" WHERE false',
                      DEL: f'DELETE FROM "{table}" WHERE false'}
        for privilege, statement in statements.items():
            if privilege not in granted:
                result = refusal(alpha, statement)
                assert result is not None and result[0] == NO_PRIVILEGE, statement
    updatable = {r[0] for r in owner_rows(
        fleet, "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
               "AND table_name = 'bots' AND has_column_privilege(:r, :t, column_name, "
               "'UPDATE')", s=fleet.schema, r=role, t=f"{fleet.schema}.bots")}
    assert updatable == BOT_ROW_UPDATES


def _row_level_security(fleet: Fleet, as_bot: dict[str, Database]) -> None:
    """Every table with a bot_id: beta's rows are invisible and untouchable to alpha."""
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    trade(as_bot["beta"], b, "b-1", "110")
    SqlLedger(fleet.owner.engine, tag(fleet)).adjust_position(
        b, BTC, Decimal(2), Decimal(100), "test", "operator", T0)
    SqlLedger(as_bot["beta"].engine, tag(fleet)).apply_funding(b, [FundingEntry(
        "1", BTC, T0, Decimal("0.0001"), Decimal(2), Decimal(100), Decimal("-0.02"))], "1", T0)
    alpha = as_bot["alpha"]
    owned = sorted(r[0] for r in owner_rows(
        fleet, "SELECT table_name FROM information_schema.columns WHERE table_schema = :s "
               "AND column_name = 'bot_id'", s=fleet.schema))
    assert set(owned) <= set(BOT_GRANTS)
    for table in owned:
        before = owner_rows(fleet, f'SELECT row_to_json(t)::text FROM "{table}" t '
                                   "WHERE bot_id = :b ORDER BY 1", b=b)
        assert before, f"beta has no {table} row to attack"
        if SEL in BOT_GRANTS[table]:
            with alpha.engine.connect() as conn:
                assert conn.execute(text(f'SELECT count(*) FROM "{table}" '
                                         "WHERE bot_id = :b"), {"b": b}).scalar_one() == 0
        if UPD in BOT_GRANTS[table]:
            with alpha.engine.begin() as conn:
                assert conn.execute(text(f'UPDATE "{table}" SET bot_id = :a '
                                         "WHERE bot_id = :b"), {"a": a, "b": b}).rowcount == 0
        # A copy of one of beta's rows, inserted as alpha: never.
        copy = (f'INSERT INTO "{table}" SELECT * FROM '
                f'json_populate_record(NULL::"{table}", CAST(:row AS json))')
        assert refusal(alpha, copy, row=before[0][0]) is not None, table
        assert refusal(alpha, f'DELETE FROM "{table}" WHERE bot_id = :b', b=b) is not None
        assert owner_rows(fleet, f'SELECT row_to_json(t)::text FROM "{table}" t '
                                 "WHERE bot_id = :b ORDER BY 1", b=b) == before, table
    with alpha.engine.begin() as conn:
        assert conn.execute(text("UPDATE bots SET lease_owner = 'x' WHERE id = :b"),
                            {"b": b}).rowcount == 0


def _functions_and_sequences(fleet: Fleet, alpha: Database) -> None:
    """Two functions to call (the trigger functions are not), only the sequences of the
    tables it inserts into, no setval, no way round the triggers, nothing to create."""
    role = fleet.role("alpha")
    functions = dict(owner_rows(
        fleet, "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', "
               "has_function_privilege(:r, p.oid, 'EXECUTE') FROM pg_proc p JOIN "
               "pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :s",
        r=role, s=fleet.schema))
    assert set(functions) == BOT_FUNCTIONS | OWNER_ONLY_FUNCTIONS
    assert {f for f, allowed in functions.items() if allowed} == BOT_FUNCTIONS
    sequences = {r[0]: tuple(r[1:]) for r in owner_rows(
        fleet, "SELECT c.relname, has_sequence_privilege(:r, c.oid, 'USAGE'), "
               "has_sequence_privilege(:r, c.oid, 'SELECT'), "
               "has_sequence_privilege(:r, c.oid, 'UPDATE') FROM pg_class c JOIN "
               "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' "
               "AND n.nspname = :s", r=role, s=fleet.schema)}
    assert set(sequences) == ALL_SEQUENCES
    assert sequences == {s: (s in BOT_SEQUENCES, False, False) for s in ALL_SEQUENCES}
    for statement in ("SELECT setval('orders_id_seq', 1000000)",
                      "SELECT last_value FROM orders_id_seq", "SELECT nextval('bots_id_seq')",
                      "SET session_replication_role = replica",
                      "ALTER TABLE orders DISABLE TRIGGER ALL",
                      "CREATE TABLE evil (id int)"):
        assert refusal(alpha, statement) is not None, statement
    assert not owner_rows(fleet, "SELECT has_schema_privilege(:r, :s, 'CREATE')",
                          r=role, s=fleet.schema)[0][0]


def test_an_unmapped_member_of_the_bot_group_gets_nothing(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    trade(as_bot["beta"], fleet.ids["beta"], "b-1", "100")
    role = f"{fleet.prefix}stray"
    with fleet.owner.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN IN ROLE fleet_bot'))
    url = make_url(fleet.base_url).set(username=role).update_query_dict(
        {"options": f"-csearch_path={fleet.schema}"}).render_as_string(hide_password=False)
    stray = open_database(url)
    try:
        for table in ("bots", "fleet_controls", "events", "orders", "bot_controls"):
            with stray.engine.connect() as conn:
                assert conn.execute(text(f'SELECT count(*) FROM "{table}"')
                                    ).scalar_one() == 0, table
        for statement in (
                "INSERT INTO fleet_controls (id, state, reason, changed_by, changed_at) "
                "VALUES (1, 'halted', 'x', 'operator', now())",
                "INSERT INTO events (kind, severity, message, data, created_at) "
                "VALUES ('control.halted', 'critical', 'x', '{}', now())",
                "INSERT INTO outbox (kind, concern, severity, text, collapse_key, created_at) "
                "VALUES ('control.halted', 'trading', 'critical', 'x', 'k', now())"):
            assert refusal(stray, statement) is not None, statement
    finally:
        stray.dispose()


# --- attack 1: squatting another bot's client order id ----------------------------------


def _squat(cid: str, order_id: str = "DEFAULT") -> str:
    return ("INSERT INTO orders (id, bot_id, client_order_id, instrument, side, order_type, "
            "quantity, reference_price, status, filled_quantity, reason, created_at, "
            f"updated_at) VALUES ({order_id}, :a, '{cid}', 'x', 'buy', 'market', 1, 1, "
            "'rejected', 0, '', now(), now())")


def test_a_bot_cannot_squat_another_bots_client_order_id_nor_learn_if_it_exists(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    trade(as_bot["beta"], b, "b-1", "100")
    taken = owner_rows(fleet, "SELECT client_order_id FROM orders WHERE bot_id = :b", b=b)[0][0]
    alpha = as_bot["alpha"]
    with alpha.engine.connect() as conn:
        future = int(conn.execute(text("SELECT nextval('orders_id_seq')")).scalar_one()) + 1
    free = f"fk{tag(fleet)}-{b}-{future}"
    # The same refusal whether or not beta holds the id: nothing leaks.
    on_taken, on_free = refusal(alpha, _squat(taken), a=a), refusal(alpha, _squat(free), a=a)
    assert on_taken is not None and on_taken == on_free and on_taken[0] == NO_PRIVILEGE
    # Its own pattern on a row id it did not draw (beta's next) is refused too.
    own_future = f"fk{tag(fleet)}-{a}-{future}"
    assert refusal(alpha, _squat(own_future, str(future)), a=a) is not None
    # And an UPDATE of its own order to beta's id, or of its own order's id, likewise.
    trade(alpha, a, "a-1", "100")
    mine = owner_rows(fleet, "SELECT id FROM orders WHERE bot_id = :a", a=a)[0][0]
    assert refusal(alpha, "UPDATE orders SET client_order_id = :c WHERE id = :i",
                   c=free, i=mine) == on_free
    assert refusal(alpha, "UPDATE orders SET id = :f WHERE id = :i", f=future, i=mine)
    # Beta's next order gets its next id and goes out as usual.
    ledger = SqlLedger(as_bot["beta"].engine, tag(fleet))
    order = ledger.write_ahead(b, intent(), None, T0)
    assert order.client_order_id == f"fk{tag(fleet)}-{b}-{order.id}"
    assert not owner_rows(fleet, "SELECT 1 FROM events WHERE kind = 'order.id_collision'")


def test_a_bot_cannot_take_ids_or_names_that_make_another_bots_next_write_fail(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    trade(as_bot["beta"], b, "b-1", "100")
    alpha = as_bot["alpha"]
    # The id after the one it draws is the next bot's: taking it would fail that insert.
    assert refusal(alpha, "INSERT INTO events (id, bot_id, kind, severity, message, data, "
                          "created_at) VALUES (nextval('events_id_seq') + 1, :a, 'x', 'info', "
                          "'x', '{}', now())", a=a) == (
        NO_PRIVILEGE, "a bot's events row takes the id its sequence gives")
    # beta's heartbeat component and beta's order and signal are not alpha's to use.
    assert refusal(alpha, "INSERT INTO heartbeats (component, bot_id, kind, status, detail, "
                          "host, started_at, beat_at, cycles) VALUES ('bot:beta', :a, 'bot', "
                          "'x', '', 'h', now(), now(), 0)", a=a) is not None
    beta_order, beta_signal = owner_rows(
        fleet, "SELECT o.id, s.id FROM orders o, signals s WHERE o.bot_id = :b "
               "AND s.bot_id = :b", b=b)[0]
    assert refusal(alpha, "INSERT INTO fills (bot_id, order_id, broker_fill_id, instrument, "
                          "side, quantity, price, fee, ts, created_at) VALUES (:a, :o, 'f', "
                          "'x', 'buy', 1, 1, 0, now(), now())", a=a, o=beta_order)
    assert refusal(alpha, "INSERT INTO orders (bot_id, client_order_id, instrument, side, "
                          "order_type, quantity, reference_price, status, filled_quantity, "
                          "reason, signal_id, created_at, updated_at) VALUES (:a, :c, 'x', "
                          "'buy', 'market', 1, 1, 'rejected', 0, '', :s, now(), now())",
                   a=a, c="wa-" + "0" * 32, s=beta_signal)
    trade(as_bot["beta"], b, "b-2", "100")  # beta's whole life goes on: beats, events, orders
    assert owner_rows(fleet, "SELECT component FROM heartbeats WHERE bot_id = :b", b=b) == \
        [("bot:beta",)]


# --- attack 2: forging outbox keys ------------------------------------------------------


def _forge(collapse: str, dedup: str | None = None, bot: str = ":a",
           concern: str = "trading", **extra: str) -> str:
    columns = ", ".join(extra)
    values = ", ".join(f"'{v}'" for v in extra.values())
    return ("INSERT INTO outbox (bot_id, kind, concern, severity, text, collapse_key, "
            f"dedup_key, created_at{', ' + columns if columns else ''}) VALUES ({bot}, "
            f"'control.halted', '{concern}', 'critical', 'all is well', '{collapse}', "
            f"{'NULL' if dedup is None else repr(dedup)}, :at{', ' + values if values else ''})")


def test_forged_outbox_keys_swallow_neither_another_bots_alert_nor_the_owners_reports(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    alpha, day = as_bot["alpha"], T0.date().isoformat()
    # A decoy carrying the collapse key beta's reconciliation alert will have.
    decoy = f"reconcile.mismatch|{b}|reconciliation"
    assert refusal(alpha, _forge(decoy), a=a, at=T0) is None  # its own alert, namespaced
    for key in (f"report.daily:{day}", f"report.security:{day}", f"bot:{b}:x", "collapsed:1"):
        assert refusal(alpha, _forge("k", key), a=a, at=T0) is not None, key
    assert refusal(alpha, _forge("k", f"bot:{a}:mine"), a=a, at=T0) is None
    for extra in ({"only_route": "ops"}, {"skip_route": "ops"}, {"attachment": "/etc/x.png"}):
        assert refusal(alpha, _forge("k", **extra), a=a, at=T0) is not None, extra
    SqlLedger(as_bot["beta"].engine, tag(fleet)).record_event(b, Event(
        "reconcile.mismatch", "ledger 1 vs broker 2", "critical", "reconciliation"),
        T0 + timedelta(minutes=1))
    owner = Outbox(fleet.owner.engine)
    for kind in ("report.daily", "report.security"):
        assert owner.enqueue(kind=kind, concern="brief", severity=Severity.INFO,
                             text=f"the real {kind}", now=T0, dedup_key=f"{kind}:{day}")
    owner.route(lambda concern, severity: ["ops"], 600, T0 + timedelta(minutes=2))
    due = {d.text: d for d in owner.due(T0 + timedelta(minutes=3))}
    assert {"ledger 1 vs broker 2", "the real report.daily", "the real report.security"} \
        <= set(due)
    assert due["ledger 1 vs broker 2"].bot == "beta"
    assert owner_rows(fleet, "SELECT collapse_key FROM outbox WHERE bot_id = :a "
                             "AND dedup_key IS NULL", a=a) == [(f"bot:{a}|{decoy}",)]


def test_every_message_a_bot_sends_names_it(fleet: Fleet,
                                            as_bot: dict[str, Database]) -> None:
    a, alpha = fleet.ids["alpha"], as_bot["alpha"]
    assert refusal(alpha, _forge("k", bot="NULL"), at=T0) is None  # a "fleet halt"
    assert refusal(alpha, _forge("k", concern="brief"), a=a, at=T0) is None  # a "report"
    texts = {r[0] for r in owner_rows(fleet, "SELECT text FROM outbox")}
    assert texts == {"bot alpha: all is well"}


# --- attack 3: controls and the audit's actor -------------------------------------------


def test_a_bot_can_neither_lift_nor_rewrite_an_operators_halt(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    a, alpha = fleet.ids["alpha"], as_bot["alpha"]
    FleetStore(fleet.owner.engine).set_state("alpha", TradingState.HALTED, "stop", "operator",
                                             T0)
    halt = owner_rows(fleet, "SELECT * FROM bot_controls WHERE bot_id = :a", a=a)
    for statement in ("UPDATE bot_controls SET state = 'active', changed_by = 'operator'",
                      "UPDATE bot_controls SET state = 'reducing'",
                      "UPDATE bot_controls SET state = 'active', source = 'credentials'"):
        assert refusal(alpha, statement) is not None, statement
    ledger = SqlLedger(alpha.engine, tag(fleet))
    for state, source in ((TradingState.ACTIVE, HaltSource.OPERATOR),
                          (TradingState.REDUCING, HaltSource.OPERATOR),
                          (TradingState.ACTIVE, HaltSource.CREDENTIALS)):
        with pytest.raises(DBAPIError):
            ledger.set_control(a, state, "let me", source, "operator", T0)
    # Rewriting the halt's reason or author changes nothing (and does not fail: a breaker
    # racing an operator must not crash the bot).
    assert refusal(alpha, "UPDATE bot_controls SET changed_by = 'x', reason = 'y'") is None
    ledger.set_control(a, TradingState.HALTED, "mine now", HaltSource.CREDENTIALS, "runner", T0)
    assert owner_rows(fleet, "SELECT * FROM bot_controls WHERE bot_id = :a", a=a) == halt
    with pytest.raises(DBAPIError):  # and it never became its credentials halt to lift
        ledger.set_control(a, TradingState.ACTIVE, "ok", HaltSource.CREDENTIALS, "runner", T0)


def test_a_bot_halts_itself_and_lifts_only_its_own_credentials_halt(
        fleet: Fleet, as_bot: dict[str, Database], tmp_path: Path) -> None:
    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    clock = ManualClock(T0)
    venue = SandboxVenue(InventedPrices(7, load_catalog(), MarketCalendars()), MemoryBook(),
                         clock, VenueConfig(seed=7, partial_fill_probability=0.0))

    def connect(settings: BotSettings) -> BrokerConnection:
        broker = SandboxBroker(venue, settings.name)
        return BrokerConnection(broker, broker)

    runner = BotRunner(LoadedConfig(parse_config(CONFIG, "test.yaml"), "test.yaml", tmp_path),
                       "alpha", fleet.url_as(fleet.role("alpha")), connect, clock=clock,
                       sleep=lambda _: False)
    runner.boot()
    try:
        runner._halt_for_credentials(CredentialsError("token expired"))
        assert owner_rows(fleet, "SELECT state, source, changed_by FROM bot_controls "
                                 "WHERE bot_id = :a", a=a) == [
            ("halted", "credentials", "bot:alpha (runner)")]
        runner._lift_credentials_halt()
        assert runner.ledger.controls(a).bot.state is TradingState.ACTIVE
    finally:
        runner.shutdown()
    # A credentials halt this bot did not write (here: the owner's) is not its to lift.
    write_owner = SqlLedger(fleet.owner.engine, tag(fleet))
    write_owner.set_control(b, TradingState.HALTED, "x", HaltSource.CREDENTIALS, "runner", T0)
    with pytest.raises(DBAPIError):
        SqlLedger(as_bot["beta"].engine, tag(fleet)).set_control(
            b, TradingState.ACTIVE, "ok", HaltSource.CREDENTIALS, "runner", T0)
    assert write_owner.controls(b).bot.state is TradingState.HALTED


def test_the_database_names_the_bot_as_actor_of_its_halts_and_events(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    a, alpha = fleet.ids["alpha"], as_bot["alpha"]
    SqlLedger(alpha.engine, tag(fleet)).set_control(
        None, TradingState.HALTED, "breaker", HaltSource.CIRCUIT_BREAKER, "operator", T0)
    assert owner_rows(fleet, "SELECT changed_by FROM fleet_controls") == [
        ("bot:alpha (operator)",)]
    assert refusal(alpha, "INSERT INTO events (bot_id, kind, severity, message, data, "
                          "actor, created_at) VALUES (:a, 'x', 'info', 'm', '{}', "
                          "'operator', now())", a=a) is None
    actors = {r[0] for r in owner_rows(fleet, "SELECT actor FROM events")}
    assert actors == {"bot:alpha (operator)"}
    # The halted fleet switch is not alpha's to rewrite, nor to resume.
    assert refusal(alpha, "UPDATE fleet_controls SET changed_by = 'operator', reason = 'x'") \
        is None
    assert refusal(alpha, "UPDATE fleet_controls SET state = 'active'") is not None
    assert owner_rows(fleet, "SELECT reason, changed_by FROM fleet_controls") == [
        ("breaker", "bot:alpha (operator)")]


def test_two_bots_tripping_the_fleet_breaker_at_once_both_succeed_and_the_first_halt_stays(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with write_transaction(as_bot["beta"].engine) as conn:
                write_control(conn, None, TradingState.HALTED, "beta's breaker",
                              HaltSource.CIRCUIT_BREAKER, "risk", T0)
        except BaseException as exc:
            errors.append(exc)

    with as_bot["alpha"].engine.connect() as conn:
        first = conn.begin()
        write_control(conn, None, TradingState.HALTED, "alpha's breaker",
                      HaltSource.CIRCUIT_BREAKER, "risk", T0)
        thread = threading.Thread(target=second)
        thread.start()
        eventually(lambda: owner_rows(fleet, "SELECT 1 FROM pg_stat_activity WHERE usename "
                                             "= :r AND wait_event_type = 'Lock'",
                                      r=fleet.role("beta")), 10, "beta to wait for alpha")
        first.commit()
    thread.join(10)
    assert errors == []
    assert owner_rows(fleet, "SELECT reason, changed_by FROM fleet_controls") == [
        ("alpha's breaker", "bot:alpha (risk)")]


def test_downgrading_0011_lifts_the_confinement_and_upgrading_restores_it(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    from alembic import command

    from fleetkit.store.migrate import alembic_config, upgrade

    a, b = fleet.ids["alpha"], fleet.ids["beta"]
    squat = _squat(f"fk{tag(fleet)}-{b}-999999")
    with write_transaction(fleet.owner.engine) as conn:
        command.downgrade(alembic_config(conn), "0010")
    assert refusal(as_bot["alpha"], squat, a=a) is None  # 0010's hole, as it was
    guards = ("SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN "
              "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s "
              "AND t.tgname LIKE 'fleet_guard%'")
    assert owner_rows(fleet, guards, s=fleet.schema) == [(0,)]
    upgrade(fleet.owner.engine)
    assert owner_rows(fleet, guards, s=fleet.schema) == [(13,)]
    assert refusal(as_bot["alpha"], squat.replace("999999", "999998"), a=a) is not None


def test_a_bot_reads_only_its_own_active_model_version_and_its_files(
        fleet: Fleet, as_bot: dict[str, Database]) -> None:
    from fleetkit.store.model_registry import MANIFEST, ManifestSummary, ModelFile, ModelRegistry

    registry = ModelRegistry(fleet.owner.engine)
    ids = {}
    for bot, label in (("alpha", "old"), ("alpha", "new"), ("alpha", "candidate"),
                       ("beta", "new")):
        files = {"model.zip": f"{bot}{label}".ljust(64, "0")}
        version = registry.register(
            bot, "1h", ManifestSummary("mlp", "PPO", "f" * 64, T0, T0, 10, files), "m" * 64,
            [ModelFile("model.zip", 1, files["model.zip"]), ModelFile(MANIFEST, 1, "m" * 64)],
            store_url="file:///s", store_key=f"{bot}/{label}", actor="owner")
        ids[bot, label] = version.id
        if label != "candidate":
            registry.activate(version.id, actor="owner", reason="go")
    alpha = as_bot["alpha"]
    with alpha.engine.connect() as conn:
        assert conn.execute(text("SELECT id, state FROM model_versions")).all() == [
            (ids["alpha", "new"], "active")]
        assert sorted(conn.execute(text("SELECT version_id, name FROM model_files")).all()) == [
            (ids["alpha", "new"], MANIFEST), (ids["alpha", "new"], "model.zip")]
    assert refusal(alpha, "SELECT 1 FROM model_history")[0] == NO_PRIVILEGE  # type: ignore[index]
    assert refusal(alpha, "UPDATE model_versions SET state = 'archived'") is not None
    with as_bot["reader"].engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM model_versions")).scalar_one() == 4
