"""funding_payments: a perpetual's funding settlements as they touched each bot's account,
applied once each (by the venue's payment id) into the position's realized P&L; and
bot_state.funding_cursor, where the bot's paging of them stands

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import fleetkit.sqlutil.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BOT_GROUP = "fleet_bot"  # created by 0005
READER_GROUP = "fleet_reader"
_ME = "bot_id = fleet_bot_id_of(current_user)"


def upgrade() -> None:
    with op.batch_alter_table("bot_state") as batch:
        batch.add_column(sa.Column("funding_cursor", sa.String(length=64), nullable=True))
    op.create_table(
        "funding_payments",
        sa.Column("bot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("payment_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=64), nullable=False),
        sa.Column("at", fleetkit.sqlutil.types.UTCDateTime(), nullable=False),
        sa.Column("rate", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("quantity", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("mark", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("amount", fleetkit.sqlutil.types.ExactDecimal(), nullable=False),
        sa.Column("created_at", fleetkit.sqlutil.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"],
                                name=op.f("fk_funding_payments_bot_id_bots")),
        sa.PrimaryKeyConstraint("bot_id", "payment_id", name=op.f("pk_funding_payments")),
    )
    with op.batch_alter_table("funding_payments") as batch:
        batch.create_index(batch.f("ix_funding_payments_bot_id_at"), ["bot_id", "at"])
    if op.get_bind().dialect.name == "postgresql" and _role_exists(BOT_GROUP):
        s = str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())"))
                .scalar_one())
        for statement in (
            f"GRANT SELECT ON {s}.funding_payments TO {READER_GROUP}",
            # A bot records its own account's payments; it never changes one once written.
            f"GRANT SELECT, INSERT ON {s}.funding_payments TO {BOT_GROUP}",
            f"ALTER TABLE {s}.funding_payments ENABLE ROW LEVEL SECURITY",
            f"CREATE POLICY fleet_reader_all ON {s}.funding_payments FOR SELECT "
            f"TO {READER_GROUP} USING (true)",
            f"CREATE POLICY fleet_bot_own ON {s}.funding_payments FOR ALL TO {BOT_GROUP} "
            f"USING ({_ME}) WITH CHECK ({_ME})",
        ):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table("funding_payments") as batch:
        batch.drop_index(batch.f("ix_funding_payments_bot_id_at"))
    op.drop_table("funding_payments")
    with op.batch_alter_table("bot_state") as batch:
        batch.drop_column("funding_cursor")


def _role_exists(name: str) -> bool:
    row = op.get_bind().execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"),
                                {"name": name}).first()
    return row is not None
