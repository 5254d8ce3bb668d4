"""bot_pnl.day_start_realized (today's realized P&L, not lifetime) and outbox.attachment
(a picture sent with a notification: the end-of-day P&L chart); fills and orders indexed by
time for the dashboard's fleet-wide history pages

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from fleetkit.sqlutil.types import ExactDecimal

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bot_pnl") as batch:
        # NULL for a row written before this migration, until the bot's next day begins:
        # until then readers show lifetime realized (store.status.realized_today).
        batch.add_column(sa.Column("day_start_realized", ExactDecimal(), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("attachment", sa.Text(), nullable=True))
    op.create_index(op.f("ix_fills_ts"), "fills", ["ts"])
    op.create_index(op.f("ix_orders_created_at"), "orders", ["created_at"])
    # Open orders per bot (status, the overview) without reading every order ever made.
    op.create_index(op.f("ix_orders_status_bot_id"), "orders", ["status", "bot_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_orders_status_bot_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_created_at"), table_name="orders")
    op.drop_index(op.f("ix_fills_ts"), table_name="fills")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("attachment")
    with op.batch_alter_table("bot_pnl") as batch:
        batch.drop_column("day_start_realized")
