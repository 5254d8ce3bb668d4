"""market data: the base of the market_data branch (bars, option chains); creates nothing
yet

Revision ID: market_data_0001
Revises:

A branch of its own (store.migrate.BRANCHES): its version table is
alembic_version_market_data, and it may live in a database of its own
(database.market_data.url). So no revision of this branch may depend on another branch's:
the other branches need not be in the same database.
"""

from __future__ import annotations

revision = "market_data_0001"
down_revision = None
branch_labels = ("market_data",)
depends_on = None


def upgrade() -> None:
    pass  # the branch's own version table row is its only mark


def downgrade() -> None:
    pass
