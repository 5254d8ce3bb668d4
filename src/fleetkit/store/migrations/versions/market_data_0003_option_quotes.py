"""market data: option_quotes (chain snapshots, partitioned by trading day on PostgreSQL)
and option_quote_minutes (which minutes each collector wrote or missed)

Revision ID: market_data_0003
Revises: market_data_0002

On PostgreSQL option_quotes is a declaratively partitioned table (PARTITION BY RANGE
(trading_day)) with no partitions yet: they are made per trading day by `fleet data archive`
(ahead of the calendar) and by a day's first write (store/option_partitions.py). No DEFAULT
partition: a row for a day without one is an error, never a row hidden where a later
partition of that day could not be attached. On SQLite it is a plain table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "market_data_0003"
down_revision = "market_data_0002"
branch_labels = None
depends_on = None

READER_GROUP = "fleet_reader"  # created by trading's 0005, where that branch lives too


def upgrade() -> None:
    op.create_table(
        "option_quotes",
        sa.Column("trading_day", sa.Date(), nullable=False),
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("minute", fleetkit.sqlutil.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("underlying", sa.String(length=32), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=False),
        sa.Column("strike", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("option_type", sa.String(length=2), nullable=False),
        sa.Column("bid", fleetkit.sqlutil.types.ExactDecimal(), nullable=True),
        sa.Column("ask", fleetkit.sqlutil.types.ExactDecimal(), nullable=True),
        sa.Column("last", fleetkit.sqlutil.types.ExactDecimal(), nullable=True),
        sa.Column("volume", sa.BigInteger(), nullable=False),
        sa.Column("open_interest", sa.BigInteger(), nullable=False),
        sa.Column("underlying_price", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("iv", sa.Double(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.CheckConstraint("option_type IN ('CE', 'PE')",
                           name=op.f("ck_option_quotes_option_type")),
        sa.PrimaryKeyConstraint("trading_day", "instrument", "minute",
                                name=op.f("pk_option_quotes")),
        postgresql_partition_by="RANGE (trading_day)",
    )
    # On the partitioned table: PostgreSQL gives every partition its own copy.
    op.create_index(op.f("ix_option_quotes_underlying_minute"), "option_quotes",
                    ["underlying", "minute"])
    op.create_table(
        "option_quote_minutes",
        sa.Column("collector", sa.String(length=64), nullable=False),
        sa.Column("minute", fleetkit.sqlutil.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("trading_day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("recorded_at", fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.CheckConstraint("status IN ('written', 'missed')",
                           name=op.f("ck_option_quote_minutes_status")),
        sa.PrimaryKeyConstraint("collector", "minute", name=op.f("pk_option_quote_minutes")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # As for bars: readers (dashboards) may read; granted only where the group exists.
        # Partitions made later are read through the parent, which checks the parent's
        # grants, so this one grant covers every day.
        exists = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": READER_GROUP}).first()
        if exists is not None:
            op.execute(f"GRANT SELECT ON option_quotes, option_quote_minutes TO {READER_GROUP}")


def downgrade() -> None:
    op.drop_table("option_quote_minutes")
    op.drop_index(op.f("ix_option_quotes_underlying_minute"), table_name="option_quotes")
    op.drop_table("option_quotes")  # on PostgreSQL its partitions go with it
