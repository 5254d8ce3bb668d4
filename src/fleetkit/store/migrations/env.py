"""Alembic environment: runs one branch on the connection fleetkit hands it (see
store.migrate), recording it in that branch's own version table."""

from __future__ import annotations

from alembic import context

from fleetkit.store.migrate import is_version_table
from fleetkit.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `fleet db upgrade` (fleetkit.store.migrate)")


def _models_only(name: str | None, type_: str, _parents: object) -> bool:
    """Autogenerate compares the models, never the branches' version tables."""
    return not (type_ == "table" and is_version_table(name))


# Batch mode lets later migrations ALTER tables on SQLite, which lacks most ALTER TABLE.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True, include_name=_models_only,
                  version_table=context.config.attributes.get("version_table",
                                                              "alembic_version"))
with context.begin_transaction():
    context.run_migrations()
