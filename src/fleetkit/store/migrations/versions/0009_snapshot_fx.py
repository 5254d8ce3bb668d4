"""pnl_snapshots.usd_per_unit: the USD rate at each mark, so the fleet's P&L curve adds each
moment at its own rate instead of today's

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fleetkit.sqlutil.types import ExactDecimal

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and not backfilled: rewriting every snapshot would stall a large fleet's
    # upgrade, and readers fall back to the bot's last rate, which is what they showed.
    with op.batch_alter_table("pnl_snapshots") as batch:
        batch.add_column(sa.Column("usd_per_unit", ExactDecimal(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pnl_snapshots") as batch:
        batch.drop_column("usd_per_unit")
