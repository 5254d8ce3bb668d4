"""operations: the model registry — model_versions (one active per bot and timeframe, held
by a partial unique index), model_files (each file's sha256), model_history (the audit)

Revision ID: operations_0002
Revises: operations_0001

The registry is the owner's and the operator's: only they write it. On PostgreSQL, where
the bot groups exist (trading's 0005, in the same database), the reader group reads it all
and a bot's role reads exactly its own bot's active version and that version's files — what
it verifies its model against — and nothing of the history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "operations_0002"
down_revision = "operations_0001"
branch_labels = None
depends_on = None

BOT_GROUP = "fleet_bot"  # created by trading's 0005
READER_GROUP = "fleet_reader"
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ACTIVE = "state = 'active'"
# The row's bot is the bot this login role is mapped to (bots.db_role), and only while
# the version is active: a bot never needs another version or another bot's.


def _mine_active(s: str) -> str:
    return (f"{_ACTIVE} AND bot = (SELECT b.name FROM {s}.bots b "  # noqa: S608
            f"WHERE b.id = {s}.fleet_bot_id_of(current_user))")


def _utc(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, fleetkit.sqlutil.types.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("feature_set_hash", sa.String(length=64), nullable=False),
        _utc("window_start"),
        _utc("window_end"),
        sa.Column("window_bars", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("store_url", sa.Text(), nullable=False),
        sa.Column("store_key", sa.String(length=255), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _utc("created_at"),
        _utc("updated_at"),
        _utc("activated_at", nullable=True),
        sa.CheckConstraint("state IN ('candidate', 'active', 'rejected', 'archived', "
                           "'retired')", name=op.f("ck_model_versions_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(op.f("ix_model_versions_bot_timeframe_id"), "model_versions",
                    ["bot", "timeframe", "id"])
    op.create_index("ix_model_versions_one_active", "model_versions", ["bot", "timeframe"],
                    unique=True, sqlite_where=sa.text(_ACTIVE),
                    postgresql_where=sa.text(_ACTIVE))
    op.create_table(
        "model_files",
        sa.Column("version_id", _Id, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name=op.f("fk_model_files_version_id_model_versions")),
        sa.PrimaryKeyConstraint("version_id", "name", name=op.f("pk_model_files")),
    )
    op.create_table(
        "model_history",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("version_id", _Id, nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("previous_active_id", _Id, nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _utc("at"),
        sa.CheckConstraint("action IN ('registered', 'activated', 'rolled_back', 'rejected', "
                           "'archived', 'retired')", name=op.f("ck_model_history_action")),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"],
                                name=op.f("fk_model_history_version_id_model_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_history")),
    )
    op.create_index(op.f("ix_model_history_bot_timeframe_at"), "model_history",
                    ["bot", "timeframe", "at"])
    op.create_index(op.f("ix_model_history_version_id"), "model_history", ["version_id"])
    if op.get_bind().dialect.name == "postgresql" and _role_exists(BOT_GROUP):
        for statement in _postgresql_grants(_current_schema()):
            op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_model_history_version_id"), table_name="model_history")
    op.drop_index(op.f("ix_model_history_bot_timeframe_at"), table_name="model_history")
    op.drop_table("model_history")
    op.drop_table("model_files")
    op.drop_index("ix_model_versions_one_active", table_name="model_versions")
    op.drop_index(op.f("ix_model_versions_bot_timeframe_id"), table_name="model_versions")
    op.drop_table("model_versions")


def _postgresql_grants(s: str) -> list[str]:
    statements = [f"GRANT SELECT ON {s}.model_versions, {s}.model_files, {s}.model_history "
                  f"TO {READER_GROUP}",
                  f"GRANT SELECT ON {s}.model_versions, {s}.model_files TO {BOT_GROUP}"]
    for table in ("model_versions", "model_files"):
        statements += [f"ALTER TABLE {s}.{table} ENABLE ROW LEVEL SECURITY",
                       f"CREATE POLICY fleet_reader_all ON {s}.{table} FOR SELECT "
                       f"TO {READER_GROUP} USING (true)"]
    return [*statements,
            f"CREATE POLICY fleet_bot_read ON {s}.model_versions FOR SELECT TO {BOT_GROUP} "
            f"USING ({_mine_active(s)})",
            # model_versions' own policy applies inside the subquery: only the files of the
            # version the bot may see.
            f"CREATE POLICY fleet_bot_read ON {s}.model_files FOR SELECT TO {BOT_GROUP} "  # noqa: S608
            f"USING (version_id IN (SELECT v.id FROM {s}.model_versions v))"]


def _current_schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())"))
               .scalar_one())


def _role_exists(name: str) -> bool:
    row = op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"),
                                {"name": name}).first()
    return row is not None
