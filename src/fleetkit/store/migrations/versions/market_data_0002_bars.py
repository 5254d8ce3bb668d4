"""market data: bars, the bar history of every instrument the fleet trades

Revision ID: market_data_0002
Revises: market_data_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "market_data_0002"
down_revision = "market_data_0001"
branch_labels = None
depends_on = None

READER_GROUP = "fleet_reader"  # created by trading's 0005, where that branch lives too


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("open_time", fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("open", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("high", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("low", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("close", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("volume", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint("instrument", "timeframe", "open_time", name=op.f("pk_bars")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Readers (dashboards) may read bars; bot roles get nothing (a bot asks its venue).
        # The group exists only where the trading branch made it (not in a market-data
        # database of its own), so grant only when it is there.
        exists = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": READER_GROUP}).first()
        if exists is not None:
            op.execute(f"GRANT SELECT ON bars TO {READER_GROUP}")


def downgrade() -> None:
    op.drop_table("bars")
