"""Alembic migrations of the gateway's database (run by `comfydesk.gateway.db.migrate`)."""
