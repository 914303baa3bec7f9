"""Several instances on one database: execution leases and change numbers, shared rate-limit counters.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.Float, nullable=True))
        batch.add_column(sa.Column("seq", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_executions_backend_url", "executions", ["backend_url"])
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("window", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_counters")
    op.drop_index("ix_executions_backend_url", "executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("seq")
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
