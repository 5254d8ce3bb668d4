"""service_leases: which scheduler runs each market-hours service

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

READER_GROUP = "fleet_reader"  # created by 0005


def upgrade() -> None:
    op.create_table(
        "service_leases",
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("expires_at", fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("updated_at", fleetkit.sqlutil.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_service_leases")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Readers (dashboards, `fleet services` as the reader) see who runs what; bot roles
        # get nothing, like job_runs. 0005 granted SELECT on the tables that existed then.
        exists = op.get_bind().execute(sa.text(
            "SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": READER_GROUP}).first()
        if exists is not None:
            op.execute(f"GRANT SELECT ON service_leases TO {READER_GROUP}")


def downgrade() -> None:
    op.drop_table("service_leases")
