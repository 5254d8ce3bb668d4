"""Alembic environment: runs on the connection fleetkit hands it (see store.migrate)."""

from __future__ import annotations

from alembic import context

from fleetkit.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `fleet db upgrade` (fleetkit.store.migrate)")

# Batch mode lets later migrations ALTER tables on SQLite, which lacks most ALTER TABLE.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
