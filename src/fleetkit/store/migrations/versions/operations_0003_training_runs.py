"""operations: the training pipeline's runs — training_runs (one row per attempt of a bot,
timeframe and period, with the claim that lets exactly one process run it) and
training_steps (each step's state, duration and what it produced)

Revision ID: operations_0003
Revises: operations_0002

Written by the pipeline (the owner's or an operator's login); on PostgreSQL the reader
group reads both tables (the dashboard's training page). Bots never see them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "operations_0003"
down_revision = "operations_0002"
branch_labels = None
depends_on = None

BOT_GROUP = "fleet_bot"  # created by trading's 0005
READER_GROUP = "fleet_reader"
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, fleetkit.sqlutil.types.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("trainer", sa.String(length=48), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _utc("started_at"),
        _utc("finished_at", nullable=True),
        sa.Column("failed_step", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("version_id", _Id, nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        _utc("lease_expires"),
        sa.CheckConstraint("state IN ('running', 'succeeded', 'failed', 'rejected', "
                           "'skipped')", name=op.f("ck_training_runs_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("bot", "timeframe", "period", "attempt",
                            name=op.f("uq_training_runs_bot_timeframe_period_attempt")),
    )
    op.create_index(op.f("ix_training_runs_started_at"), "training_runs", ["started_at"])
    op.create_table(
        "training_steps",
        sa.Column("run_id", _Id, nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _utc("started_at"),
        _utc("finished_at", nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint("state IN ('running', 'done', 'failed', 'skipped')",
                           name=op.f("ck_training_steps_state")),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"],
                                name=op.f("fk_training_steps_run_id_training_runs")),
        sa.PrimaryKeyConstraint("run_id", "step", name=op.f("pk_training_steps")),
    )
    if op.get_bind().dialect.name == "postgresql" and _role_exists(READER_GROUP):
        op.execute(f"GRANT SELECT ON {_current_schema()}.training_runs, "
                   f"{_current_schema()}.training_steps TO {READER_GROUP}")


def downgrade() -> None:
    op.drop_table("training_steps")
    op.drop_index(op.f("ix_training_runs_started_at"), table_name="training_runs")
    op.drop_table("training_runs")


def _current_schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())"))
               .scalar_one())


def _role_exists(name: str) -> bool:
    row = op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"),
                                {"name": name}).first()
    return row is not None
