"""market data: straddle_snapshots (the straddle tracker's), collector_gaps (outages a
collector recorded) and collector_counters (each collector's counters per trading day)

Revision ID: market_data_0004
Revises: market_data_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "market_data_0004"
down_revision = "market_data_0003"
branch_labels = None
depends_on = None

READER_GROUP = "fleet_reader"  # created by trading's 0005, where that branch lives too


def _utc(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                     nullable=nullable)


def _exact(name: str, *, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, fleetkit.sqlutil.types.ExactDecimal(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "straddle_snapshots",
        sa.Column("tracker", sa.String(length=64), nullable=False),
        sa.Column("underlying", sa.String(length=32), nullable=False),
        sa.Column("width", sa.SmallInteger(), nullable=False),
        _utc("at"),
        sa.Column("trading_day", sa.Date(), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=False),
        _exact("atm_strike", nullable=False),
        _exact("spot", nullable=False),
        sa.Column("call_instrument", sa.String(length=64), nullable=False),
        _exact("call_strike", nullable=False),
        _exact("call_bid"), _exact("call_ask"), _exact("call_last"),
        sa.Column("call_iv", sa.Double(), nullable=True),
        sa.Column("put_instrument", sa.String(length=64), nullable=False),
        _exact("put_strike", nullable=False),
        _exact("put_bid"), _exact("put_ask"), _exact("put_last"),
        sa.Column("put_iv", sa.Double(), nullable=True),
        _exact("premium"),
        sa.Column("source", sa.String(length=16), nullable=False),
        _utc("recorded_at"),
        sa.CheckConstraint("source IN ('stream', 'rest')",
                           name=op.f("ck_straddle_snapshots_source")),
        sa.CheckConstraint("width >= 0", name=op.f("ck_straddle_snapshots_width")),
        sa.PrimaryKeyConstraint("tracker", "underlying", "width", "at",
                                name=op.f("pk_straddle_snapshots")),
    )
    op.create_index(op.f("ix_straddle_snapshots_underlying_trading_day_at"),
                    "straddle_snapshots", ["underlying", "trading_day", "at"])
    op.create_table(
        "collector_gaps",
        sa.Column("collector", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        _utc("started_at"),
        _utc("ended_at"),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("filled", sa.Integer(), nullable=False),
        _utc("recorded_at"),
        sa.PrimaryKeyConstraint("collector", "scope", "started_at",
                                name=op.f("pk_collector_gaps")),
    )
    op.create_table(
        "collector_counters",
        sa.Column("collector", sa.String(length=64), nullable=False),
        sa.Column("trading_day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        _utc("updated_at"),
        sa.PrimaryKeyConstraint("collector", "trading_day", "name",
                                name=op.f("pk_collector_counters")),
    )
    if op.get_bind().dialect.name == "postgresql":
        exists = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": READER_GROUP}).first()
        if exists is not None:
            op.execute("GRANT SELECT ON straddle_snapshots, collector_gaps, collector_counters "
                       f"TO {READER_GROUP}")


def downgrade() -> None:
    op.drop_table("collector_counters")
    op.drop_table("collector_gaps")
    op.drop_index(op.f("ix_straddle_snapshots_underlying_trading_day_at"),
                  table_name="straddle_snapshots")
    op.drop_table("straddle_snapshots")
