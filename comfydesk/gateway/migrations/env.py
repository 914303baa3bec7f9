"""Alembic environment: migrations run on the connection `db.migrate` hands over (online only)."""

from __future__ import annotations

from alembic import context

from comfydesk.gateway.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations through comfydesk.gateway.db.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
