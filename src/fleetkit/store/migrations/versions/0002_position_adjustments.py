"""position adjustments: audited corrections of the ledger to match the broker

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "position_adjustments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("bot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("quantity_before", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("quantity_after", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("average_price_before", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("average_price_after", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"],
                                name=op.f("fk_position_adjustments_bot_id_bots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_adjustments")),
    )
    with op.batch_alter_table("position_adjustments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_position_adjustments_bot_id_created_at"),
                              ["bot_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("position_adjustments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_position_adjustments_bot_id_created_at"))
    op.drop_table("position_adjustments")
