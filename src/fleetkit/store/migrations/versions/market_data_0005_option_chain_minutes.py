"""market data: option_chain_minutes (each chain snapshot's spot and ATM quotes, for fast
straddle series)

Revision ID: market_data_0005
Revises: market_data_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "market_data_0005"
down_revision = "market_data_0004"
branch_labels = None
depends_on = None

READER_GROUP = "fleet_reader"  # created by trading's 0005, where that branch lives too


def _exact(name: str, *, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, fleetkit.sqlutil.types.ExactDecimal(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "option_chain_minutes",
        sa.Column("trading_day", sa.Date(), nullable=False),
        sa.Column("underlying", sa.String(length=32), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=False),
        sa.Column("minute", fleetkit.sqlutil.types.UTCDateTime(timezone=True), nullable=False),
        _exact("spot", nullable=False),
        _exact("atm_strike"),
        _exact("call_bid"), _exact("call_ask"), _exact("call_last"),
        _exact("put_bid"), _exact("put_ask"), _exact("put_last"),
        sa.Column("quotes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trading_day", "underlying", "expiry", "minute",
                                name=op.f("pk_option_chain_minutes")),
    )
    if op.get_bind().dialect.name == "postgresql":
        exists = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": READER_GROUP}).first()
        if exists is not None:
            op.execute(f"GRANT SELECT ON option_chain_minutes TO {READER_GROUP}")


def downgrade() -> None:
    op.drop_table("option_chain_minutes")
