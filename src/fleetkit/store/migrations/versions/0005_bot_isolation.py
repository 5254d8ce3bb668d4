"""per-bot isolation: bots.db_role, and on PostgreSQL row-level security for bot roles

Revision ID: 0005
Revises: 0004

On PostgreSQL this creates the NOLOGIN group roles `fleet_bot` and `fleet_reader` (if they
don't exist yet), grants them what a bot and a dashboard need, and confines members of
`fleet_bot` to the rows of the bot their login role is mapped to (bots.db_role). The SQL is
frozen here on purpose: a migration must mean the same thing forever. SQLite only gets the
column: isolation there is the store's API (docs/isolation.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BOT_GROUP = "fleet_bot"
READER_GROUP = "fleet_reader"

# Tables whose every row belongs to one bot: a bot reads and writes its own rows only.
OWN_ROWS_READ_WRITE = ("signals", "orders", "fills", "positions", "bot_controls", "bot_state",
                       "bot_pnl", "pnl_snapshots", "heartbeats")
# Bot-owned rows a bot may read but never write (an operator's corrections).
OWN_ROWS_READ_ONLY = ("position_adjustments",)
# Shared reference data every bot reads.
SHARED_READ = ("instruments", "fleet_meta", "alembic_version")
# Everything under row-level security (the reader gets a read-all policy on each).
RLS_TABLES = (*OWN_ROWS_READ_WRITE, *OWN_ROWS_READ_ONLY, "events", "bots", "fleet_controls")
# What register_bot and the lease may change on the bot's own row (never name or db_role).
BOT_ROW_COLUMNS = ("market", "currency", "strategy", "mode", "settings", "lease_owner",
                   "lease_expires_at", "updated_at")

_ME = "bot_id = fleet_bot_id_of(current_user)"
_FLEET_HALT = "(bot_id IS NULL AND kind = 'control.halted')"
_POLICY_NAMES = ("fleet_reader_all", "fleet_bot_own", "fleet_bot_read", "fleet_bot_insert",
                 "fleet_bot_update")


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("db_role", sa.String(length=63), nullable=True))
        batch.create_unique_constraint(batch.f("uq_bots_db_role"), ["db_role"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in _postgresql_isolation(_current_schema()):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        schema = _current_schema()
        for table in RLS_TABLES:
            op.execute(f'ALTER TABLE {schema}."{table}" DISABLE ROW LEVEL SECURITY')
            for name in _POLICY_NAMES:
                op.execute(f'DROP POLICY IF EXISTS {name} ON {schema}."{table}"')
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.fleet_daily_pnl_usd(text)")
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.fleet_bot_id_of(name)")
    with op.batch_alter_table("bots") as batch:
        batch.drop_constraint(batch.f("uq_bots_db_role"), type_="unique")
        batch.drop_column("db_role")


def _current_schema() -> str:
    schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    return str(schema)


def _postgresql_isolation(s: str) -> list[str]:
    statements = [*_group_roles(), *_functions(s), f"GRANT USAGE ON SCHEMA {s} TO "
                  f"{BOT_GROUP}, {READER_GROUP}"]
    statements += _grants(s)
    for table in RLS_TABLES:
        statements += [f'ALTER TABLE {s}."{table}" ENABLE ROW LEVEL SECURITY',
                       f'CREATE POLICY fleet_reader_all ON {s}."{table}" FOR SELECT '
                       f"TO {READER_GROUP} USING (true)"]
    for table in OWN_ROWS_READ_WRITE:
        statements.append(f'CREATE POLICY fleet_bot_own ON {s}."{table}" FOR ALL TO {BOT_GROUP} '
                          f"USING ({_ME}) WITH CHECK ({_ME})")
    for table in OWN_ROWS_READ_ONLY:
        statements.append(f'CREATE POLICY fleet_bot_read ON {s}."{table}" FOR SELECT '
                          f"TO {BOT_GROUP} USING ({_ME})")
    return statements + _special_policies(s)


def _group_roles() -> list[str]:
    # Roles are cluster-wide and may already exist (another fleet, a DBA); two migrations
    # racing to create one must both succeed.
    return [f"""
DO $$ BEGIN
  CREATE ROLE {role} NOLOGIN;
EXCEPTION
  WHEN duplicate_object OR unique_violation THEN NULL;
  WHEN insufficient_privilege THEN RAISE EXCEPTION
    'fleetkit migration 0005 needs the role {role}: run it as a user with CREATEROLE, or '
    'have an administrator run CREATE ROLE {role} NOLOGIN first';
END $$""" for role in (BOT_GROUP, READER_GROUP)]


def _functions(s: str) -> list[str]:
    # SECURITY DEFINER with a pinned search_path: they read past row-level security, so
    # nothing a caller puts on its search_path may stand in for our tables. `s` is the
    # server's own quote_ident(current_schema()), not input.
    return [
        f"""CREATE OR REPLACE FUNCTION {s}.fleet_bot_id_of(role_name name) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {s}, pg_temp
AS $$ SELECT id FROM {s}.bots WHERE db_role = role_name $$""",  # noqa: S608
        # The fleet-wide daily-loss breaker needs the fleet's total, not the rows behind it.
        f"""CREATE OR REPLACE FUNCTION {s}.fleet_daily_pnl_usd(p_day text) RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {s}, pg_temp
AS $$ SELECT COALESCE(SUM(daily_usd), 0) FROM {s}.bot_pnl WHERE day = p_day $$""",  # noqa: S608
        f"REVOKE ALL ON FUNCTION {s}.fleet_bot_id_of(name) FROM PUBLIC",
        f"REVOKE ALL ON FUNCTION {s}.fleet_daily_pnl_usd(text) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {s}.fleet_bot_id_of(name) TO {BOT_GROUP}, {READER_GROUP}",
        f"GRANT EXECUTE ON FUNCTION {s}.fleet_daily_pnl_usd(text) TO {BOT_GROUP}, "
        f"{READER_GROUP}",
    ]


def _grants(s: str) -> list[str]:
    def tables(names: tuple[str, ...]) -> str:
        return ", ".join(f'{s}."{n}"' for n in names)

    return [
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {READER_GROUP}",
        f"GRANT SELECT, INSERT, UPDATE ON {tables(OWN_ROWS_READ_WRITE)} TO {BOT_GROUP}",
        f"GRANT SELECT ON {tables((*OWN_ROWS_READ_ONLY, *SHARED_READ))} TO {BOT_GROUP}",
        f'GRANT SELECT, INSERT ON {s}."events" TO {BOT_GROUP}',
        f'GRANT SELECT, INSERT, UPDATE ON {s}."fleet_controls" TO {BOT_GROUP}',
        f'GRANT SELECT, UPDATE ({", ".join(BOT_ROW_COLUMNS)}) ON {s}."bots" TO {BOT_GROUP}',
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {BOT_GROUP}",
    ]


def _special_policies(s: str) -> list[str]:
    return [
        # Events: its own, plus the fleet-level audit of a fleet halt its breaker trips
        # (readable too: INSERT ... RETURNING must see the row it wrote, and the fleet
        # switch it describes is readable anyway).
        f'CREATE POLICY fleet_bot_read ON {s}."events" FOR SELECT TO {BOT_GROUP} '
        f"USING ({_ME} OR {_FLEET_HALT})",
        f'CREATE POLICY fleet_bot_insert ON {s}."events" FOR INSERT TO {BOT_GROUP} '
        f"WITH CHECK ({_ME} OR {_FLEET_HALT})",
        # The registry: names and markets are no secret; only its own row is writable.
        f'CREATE POLICY fleet_bot_read ON {s}."bots" FOR SELECT TO {BOT_GROUP} USING (true)',
        f'CREATE POLICY fleet_bot_update ON {s}."bots" FOR UPDATE TO {BOT_GROUP} '
        "USING (id = fleet_bot_id_of(current_user)) "
        "WITH CHECK (id = fleet_bot_id_of(current_user))",
        # The fleet switch: every bot reads it; a bot may only ever set it to halted (its
        # daily-loss breaker), never resume or loosen the fleet.
        f'CREATE POLICY fleet_bot_read ON {s}."fleet_controls" FOR SELECT TO {BOT_GROUP} '
        "USING (true)",
        f'CREATE POLICY fleet_bot_insert ON {s}."fleet_controls" FOR INSERT TO {BOT_GROUP} '
        "WITH CHECK (state = 'halted')",
        f'CREATE POLICY fleet_bot_update ON {s}."fleet_controls" FOR UPDATE TO {BOT_GROUP} '
        "USING (true) WITH CHECK (state = 'halted')",
    ]
