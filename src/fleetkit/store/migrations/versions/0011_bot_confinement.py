"""bot confinement: on PostgreSQL, triggers that stop a bot's role from squatting ids,
forging alerts, lifting halts or forging the audit's actor

Revision ID: 0011
Revises: 0010

Row-level security (0005, 0007) decides WHICH rows a bot's role may touch; it cannot judge a
change by what the row was before, nor what a value means. These BEFORE ROW triggers do, for
bot roles only (the owner, table owner and migrations' user, passes untouched):

- ids: a bot's row takes the id its own session drew from the table's sequence (never a
  future one: the victim's insert would then fail on the primary key), ids never change,
  and its order's client_order_id is a `wa-` placeholder or exactly
  `fk<fleet tag>-<its bot id>-<the row's own id>` — refused before any unique index is
  consulted, so a refusal reveals nothing about other bots' ids. Fills and orders may point
  only at the bot's own orders and signals; a heartbeat only at `bot:<its name>`.
- alerts: a bot's outbox rows live in a namespace of their own (`bot:<id>|` before the
  collapse key, dedup keys must start `bot:<id>:`, no routes or attachments picked), and a
  row the notifier would not head with the bot's name carries it in its text.
- controls: a bot may only tighten its own switch (active -> reducing -> halted) and only
  halt the fleet; a halt it finds is left as it was (so two breakers racing both succeed).
  One way back: its own credentials halt (source credentials, set by this bot) may become
  active (source credentials) once the broker takes its credentials again.
- the actor: `bot_controls.changed_by`, `fleet_controls.changed_by` and `events.actor` are
  `bot:<name>` for rows a bot writes, whatever it said (kept after it, in parentheses).

It also narrows 0005/0007's policies to mapped roles (an unmapped member of fleet_bot gets
nothing) and takes back the sequences a bot never inserts into. A credentials halt a bot
wrote before this revision names no bot, so an operator resumes that one.

SQLite gets nothing: isolation there is the store's API (docs/isolation.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BOT_GROUP = "fleet_bot"  # created by 0005

# Tables a bot inserts into whose id comes from a sequence.
SERIAL_TABLES = ("signals", "orders", "fills", "pnl_snapshots", "events", "outbox")
# Sequences 0005 granted with ALL SEQUENCES but whose tables a bot never inserts into.
UNUSED_SEQUENCES = ("bots", "position_adjustments", "job_runs")
# (table, trigger function, events) for the per-table guards.
GUARDS = (
    ("orders", "fleet_guard_order", "INSERT OR UPDATE"),
    ("fills", "fleet_guard_fill", "INSERT OR UPDATE"),
    ("heartbeats", "fleet_guard_heartbeat", "INSERT OR UPDATE"),
    ("events", "fleet_guard_event", "INSERT"),
    ("outbox", "fleet_guard_outbox", "INSERT"),
    ("bot_controls", "fleet_guard_bot_control", "INSERT OR UPDATE"),
    ("fleet_controls", "fleet_guard_fleet_control", "INSERT OR UPDATE"),
)
FUNCTIONS = ("fleet_guard_id", *(name for _, name, _ in GUARDS))

_ME = "bot_id = fleet_bot_id_of(current_user)"
_FLEET_HALT = "(bot_id IS NULL AND kind = 'control.halted')"
_MAPPED = "fleet_bot_id_of(current_user) IS NOT NULL"
# (table, policy, USING before, WITH CHECK before, USING after, WITH CHECK after); None:
# the policy has no such clause. "Before" is what 0005 and 0007 wrote (the downgrade).
POLICIES = (
    ("events", "fleet_bot_read", f"{_ME} OR {_FLEET_HALT}", None,
     f"{_ME} OR ({_FLEET_HALT} AND {_MAPPED})", None),
    ("events", "fleet_bot_insert", None, f"{_ME} OR {_FLEET_HALT}",
     None, f"{_ME} OR ({_FLEET_HALT} AND {_MAPPED})"),
    ("outbox", "fleet_bot_insert", None, f"{_ME} OR {_FLEET_HALT}",
     None, f"{_ME} OR ({_FLEET_HALT} AND {_MAPPED})"),
    ("bots", "fleet_bot_read", "true", None, _MAPPED, None),
    ("fleet_controls", "fleet_bot_read", "true", None, _MAPPED, None),
    ("fleet_controls", "fleet_bot_insert", None, "state = 'halted'",
     None, f"state = 'halted' AND {_MAPPED}"),
    ("fleet_controls", "fleet_bot_update", "true", "state = 'halted'",
     _MAPPED, f"state = 'halted' AND {_MAPPED}"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    s = _current_schema()
    for statement in _functions(s):
        op.execute(statement)
    for table in SERIAL_TABLES:
        op.execute(f'CREATE TRIGGER fleet_guard_id BEFORE INSERT OR UPDATE ON {s}."{table}" '
                   f"FOR EACH ROW EXECUTE FUNCTION {s}.fleet_guard_id('{_sequence(s, table)}')")
    for table, function, events in GUARDS:
        op.execute(f'CREATE TRIGGER {function} BEFORE {events} ON {s}."{table}" '
                   f"FOR EACH ROW EXECUTE FUNCTION {s}.{function}()")
    if not _role_exists(BOT_GROUP):
        return
    for table, policy, _, _, using, check in POLICIES:
        _alter_policy(s, table, policy, using, check)
    for table in UNUSED_SEQUENCES:
        op.execute(f"REVOKE ALL ON SEQUENCE {_sequence(s, table)} FROM {BOT_GROUP}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    s = _current_schema()
    for table in SERIAL_TABLES:
        op.execute(f'DROP TRIGGER IF EXISTS fleet_guard_id ON {s}."{table}"')
    for table, function, _ in GUARDS:
        op.execute(f'DROP TRIGGER IF EXISTS {function} ON {s}."{table}"')
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {s}.{function}()")
    if not _role_exists(BOT_GROUP):
        return
    for table, policy, using, check, _, _ in POLICIES:
        _alter_policy(s, table, policy, using, check)
    for table in UNUSED_SEQUENCES:
        op.execute(f"GRANT USAGE ON SEQUENCE {_sequence(s, table)} TO {BOT_GROUP}")


def _current_schema() -> str:
    schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    return str(schema)


def _sequence(s: str, table: str) -> str:
    """The table's id sequence, schema-qualified and quoted as the server spells it."""
    name = op.get_bind().execute(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                 {"t": f'{s}."{table}"'}).scalar_one()
    return str(name)


def _role_exists(name: str) -> bool:
    row = op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"),
                                {"name": name}).first()
    return row is not None


def _alter_policy(s: str, table: str, policy: str, using: str | None,
                  check: str | None) -> None:
    # 0007 made its outbox policy only where the group role existed then.
    exists = op.get_bind().execute(sa.text(
        "SELECT 1 FROM pg_policies WHERE schemaname = current_schema() AND tablename = :t "
        "AND policyname = :p"), {"t": table, "p": policy}).first()
    if exists is None:
        return
    clauses = ([f"USING ({using})"] if using else []) + ([f"WITH CHECK ({check})"] if check
                                                          else [])
    op.execute(f'ALTER POLICY {policy} ON {s}."{table}" {" ".join(clauses)}')


def _actor(column: str) -> str:
    """plpgsql: `column` := the database's `bot:<name>`, what the client said kept after it
    in parentheses (already stamped — an upsert's INSERT then UPDATE — stays as it is)."""
    return f"""NEW.{column} := CASE
    WHEN NULLIF(NEW.{column}, '') IS NULL THEN v_actor
    WHEN NEW.{column} = v_actor OR starts_with(NEW.{column}, v_actor || ' (') THEN NEW.{column}
    ELSE left(v_actor || ' (' || NEW.{column} || ')', 128) END;"""


def _function(s: str, name: str, declare: str, body: str) -> str:
    # SECURITY INVOKER on purpose: current_user must be the caller's role (inside a definer
    # function it would be the owner). search_path pinned, every name qualified anyway.
    # `s` is the server's own quote_ident(current_schema()), not input.
    return f"""CREATE OR REPLACE FUNCTION {s}.{name}() RETURNS trigger
LANGUAGE plpgsql SET search_path = {s}, pg_temp AS $$
DECLARE
  v_bot bigint := {s}.fleet_bot_id_of(current_user);
  {declare}
BEGIN
  IF v_bot IS NULL THEN
    RETURN NEW;  -- the owner (or an unmapped role, which row-level security stops)
  END IF;
{body}
END $$"""


_REFUSE = "USING ERRCODE = 'insufficient_privilege'"
_NAME = "SELECT 'bot:' || b.name INTO v_actor FROM {s}.bots b WHERE b.id = v_bot;"


def _functions(s: str) -> list[str]:
    name = _NAME.format(s=s)
    functions = [
        _function(s, "fleet_guard_id", "", f"""
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id IS DISTINCT FROM OLD.id THEN
      RAISE EXCEPTION 'a bot may not change the id of a % row', TG_TABLE_NAME {_REFUSE};
    END IF;
    RETURN NEW;
  END IF;
  -- Only an id this session drew from the sequence (the column default does) is its own;
  -- a chosen one could be another bot's next. No nextval in this session: currval raises.
  IF NEW.id IS DISTINCT FROM currval(TG_ARGV[0]::regclass) THEN
    RAISE EXCEPTION 'a bot''s % row takes the id its sequence gives', TG_TABLE_NAME
      {_REFUSE};
  END IF;
  RETURN NEW;"""),
        _function(s, "fleet_guard_order", "v_tag text;", f"""
  IF NEW.signal_id IS NOT NULL
     AND (TG_OP = 'INSERT' OR NEW.signal_id IS DISTINCT FROM OLD.signal_id)
     AND NOT EXISTS (SELECT 1 FROM {s}.signals g WHERE g.id = NEW.signal_id
                     AND g.bot_id = v_bot) THEN
    RAISE EXCEPTION 'an order may only name a signal of its own bot' {_REFUSE};
  END IF;
  IF TG_OP = 'UPDATE' AND NEW.client_order_id IS NOT DISTINCT FROM OLD.client_order_id THEN
    RETURN NEW;
  END IF;
  IF NEW.client_order_id ~ '^wa-[0-9a-f]{{32}}$' THEN
    RETURN NEW;
  END IF;
  SELECT m.value INTO v_tag FROM {s}.fleet_meta m WHERE m.key = 'fleet_tag';
  IF NEW.client_order_id = 'fk' || v_tag || '-' || v_bot || '-' || NEW.id THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'client order id refused: a bot''s order carries a wa- placeholder or fk<fleet tag>-<its bot id>-<the row''s own id>'
    {_REFUSE};"""),  # noqa: S608
        _function(s, "fleet_guard_fill", "", f"""
  IF (TG_OP = 'INSERT' OR NEW.order_id IS DISTINCT FROM OLD.order_id)
     AND NOT EXISTS (SELECT 1 FROM {s}.orders o WHERE o.id = NEW.order_id
                     AND o.bot_id = v_bot) THEN
    RAISE EXCEPTION 'a fill may only name an order of its own bot' {_REFUSE};
  END IF;
  RETURN NEW;"""),  # noqa: S608
        _function(s, "fleet_guard_heartbeat", "v_actor text;", f"""
  {name}
  IF (TG_OP = 'INSERT' OR NEW.component IS DISTINCT FROM OLD.component)
     AND NEW.component IS DISTINCT FROM v_actor THEN
    RAISE EXCEPTION 'a bot beats only as component %', v_actor {_REFUSE};
  END IF;
  RETURN NEW;"""),
        _function(s, "fleet_guard_event", "v_actor text;", f"""
  {name}
  {_actor("actor")}
  RETURN NEW;"""),
        _function(s, "fleet_guard_outbox", "v_actor text;", f"""
  {name}
  IF NEW.dedup_key IS NOT NULL AND NOT starts_with(NEW.dedup_key, 'bot:' || v_bot || ':') THEN
    RAISE EXCEPTION 'a bot''s dedup keys start with bot:%:', v_bot {_REFUSE};
  END IF;
  IF NEW.only_route IS NOT NULL OR NEW.skip_route IS NOT NULL
     OR NEW.attachment IS NOT NULL THEN
    RAISE EXCEPTION 'a bot picks no routes and attaches no files' {_REFUSE};
  END IF;
  NEW.collapse_key := left('bot:' || v_bot || '|' || NEW.collapse_key, 255);
  -- The notifier heads a trading/infrastructure/data alert with its bot's name; anything
  -- else a bot sends (a fleet halt, a "report") names the bot in its own words.
  IF NEW.bot_id IS NULL OR NEW.concern NOT IN ('trading', 'infrastructure', 'data') THEN
    NEW.text := 'bot ' || substr(v_actor, 5) || ': ' || NEW.text;
  END IF;
  RETURN NEW;"""),
        _function(s, "fleet_guard_bot_control", "v_actor text;\n  v_old text;", f"""
  {name}
  {_actor("changed_by")}
  IF TG_OP = 'UPDATE' THEN
    v_old := OLD.state;
    IF OLD.state = 'halted' AND OLD.source = 'credentials' AND NEW.state = 'active'
       AND NEW.source = 'credentials'
       AND (OLD.changed_by = v_actor OR starts_with(OLD.changed_by, v_actor || ' (')) THEN
      RETURN NEW;  -- its own credentials halt, lifted once the broker takes them again
    END IF;
  ELSE
    IF EXISTS (SELECT 1 FROM {s}.bot_controls c WHERE c.bot_id = NEW.bot_id) THEN
      RETURN NEW;  -- ON CONFLICT DO UPDATE: the UPDATE that follows is judged
    END IF;
    v_old := 'active';  -- no row: the bot trades
  END IF;
  IF {_rank("NEW.state")} > {_rank("v_old")} THEN
    RETURN NEW;  -- tighter: reduce-only or halted
  END IF;
  IF NEW.state = v_old THEN
    RETURN NULL;  -- as it is: left alone (its reason and author too), and no error
  END IF;
  RAISE EXCEPTION 'a bot may only tighten its own switch (% to % refused)', v_old,
    NEW.state {_REFUSE};"""),  # noqa: S608
        _function(s, "fleet_guard_fleet_control", "v_actor text;", f"""
  {name}
  {_actor("changed_by")}
  IF NEW.state IS DISTINCT FROM 'halted' THEN
    RAISE EXCEPTION 'a bot may only halt the fleet' {_REFUSE};
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.state = 'halted' THEN
    RETURN NULL;  -- a halted fleet stays as the halt left it; a second breaker is a no-op
  END IF;
  RETURN NEW;"""),
    ]
    revokes = [f"REVOKE ALL ON FUNCTION {s}.{f}() FROM PUBLIC" for f in FUNCTIONS]
    return functions + revokes


def _rank(state: str) -> str:
    # An unknown state ranks NULL, so every comparison with it refuses.
    return (f"(CASE {state} WHEN 'active' THEN 0 WHEN 'reducing' THEN 1 "
            "WHEN 'halted' THEN 2 END)")
