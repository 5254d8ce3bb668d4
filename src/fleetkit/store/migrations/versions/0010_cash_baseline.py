"""bot_state.cash_baseline: the broker's cash per currency less what the ledger's fills had
moved when the two were first reconciled, so later reconciliations can compare cash too

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a bot reconciled before this revision takes its baseline at its next clean
    # reconciliation (bot roles already read and write their own bot_state rows).
    with op.batch_alter_table("bot_state") as batch:
        batch.add_column(sa.Column("cash_baseline", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bot_state") as batch:
        batch.drop_column("cash_baseline")
