"""notification outbox, deliveries per route, and the notifier's durable state

Revision ID: 0007
Revises: 0006

On PostgreSQL bot roles may INSERT outbox rows for their own bot (and for the fleet halt
their breaker trips), nothing else: the notifier runs as the owner. Readers see everything.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BOT_GROUP = "fleet_bot"  # created by 0005
READER_GROUP = "fleet_reader"
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ME = "bot_id = fleet_bot_id_of(current_user)"
_FLEET_HALT = "(bot_id IS NULL AND kind = 'control.halted')"


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, fleetkit.sqlutil.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("bot_id", _ID, nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("concern", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("collapse_key", sa.String(length=255), nullable=False),
        sa.Column("dedup_key", sa.String(length=128), nullable=True),
        sa.Column("only_route", sa.String(length=64), nullable=True),
        sa.Column("skip_route", sa.String(length=64), nullable=True),
        _at("created_at"),
        _at("routed_at", nullable=True),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_outbox_bot_id_bots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_outbox_dedup_key")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.create_index(batch.f("ix_outbox_routed_at_id"), ["routed_at", "id"])
    op.create_table(
        "deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("route", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("collapse_key", sa.String(length=255), nullable=False),
        sa.Column("collapsed_into", _ID, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_parts", sa.Integer(), nullable=False),
        _at("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        _at("sent_at", nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'collapsed', 'dead')",
                           name=op.f("ck_deliveries_status")),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"],
                                name=op.f("fk_deliveries_outbox_id_outbox")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("outbox_id", "route", name=op.f("uq_deliveries_outbox_id_route")),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.create_index(batch.f("ix_deliveries_status_next_attempt_at"),
                           ["status", "next_attempt_at"])
        batch.create_index(batch.f("ix_deliveries_route_collapse_key_created_at"),
                           ["route", "collapse_key", "created_at"])
    op.create_table(
        "notify_state",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_notify_state")),
    )
    if op.get_bind().dialect.name == "postgresql" and _role_exists(BOT_GROUP):
        s = str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())"))
                .scalar_one())
        for statement in (
            f"GRANT SELECT ON {s}.outbox, {s}.deliveries, {s}.notify_state TO {READER_GROUP}",
            # INSERT only: a bot enqueues the news of its own events and reads nothing back.
            f"GRANT INSERT ON {s}.outbox TO {BOT_GROUP}",
            f"GRANT USAGE ON SEQUENCE {s}.outbox_id_seq TO {BOT_GROUP}",
            f"ALTER TABLE {s}.outbox ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY fleet_reader_all ON {s}.outbox FOR SELECT TO {READER_GROUP} "
            "USING (true)",
            f"CREATE POLICY fleet_bot_insert ON {s}.outbox FOR INSERT TO {BOT_GROUP} "
            f"WITH CHECK ({_ME} OR {_FLEET_HALT})",
        ):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("notify_state")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index(batch.f("ix_deliveries_route_collapse_key_created_at"))
        batch.drop_index(batch.f("ix_deliveries_status_next_attempt_at"))
    op.drop_table("deliveries")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index(batch.f("ix_outbox_routed_at_id"))
    op.drop_table("outbox")


def _role_exists(name: str) -> bool:
    row = op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"),
                                {"name": name}).first()
    return row is not None
