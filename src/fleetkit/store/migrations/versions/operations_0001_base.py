"""operations: the base of the operations branch (model registry, training pipeline,
backups); creates nothing yet

Revision ID: operations_0001
Revises:

A branch of its own (store.migrate.BRANCHES): its version table is
alembic_version_operations, so it is checked and upgraded without the trading branch, and a
bot never waits for it. Its first tables come in their own revision, on top of this one.
"""

from __future__ import annotations

revision = "operations_0001"
down_revision = None
branch_labels = ("operations",)
depends_on = None


def upgrade() -> None:
    pass  # the branch's own version table row is its only mark


def downgrade() -> None:
    pass
