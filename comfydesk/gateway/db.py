"""The gateway's state in a real database: SQLAlchemy 2 Core tables, created and upgraded by Alembic.

SQLite in the data dir by default (WAL, so readers never wait for the writer), any SQLAlchemy URL by
`--database`. Nothing here is SQLite-only: types are portable, JSON columns hold documents, timestamps are
timezone-aware UTC.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = [
    "EXECUTION_STATUSES",
    "executions",
    "images",
    "make_engine",
    "meta",
    "metadata",
    "migrate",
    "now",
    "rate_counters",
    "tokens",
    "utc",
    "workflows",
]

log = logging.getLogger(__name__)

EXECUTION_STATUSES = ("queued", "running", "completed", "failed", "cancelled")

metadata = sa.MetaData()

#: Small key/value facts about this gateway (its instance id, from which ComfyUI client ids derive).
meta = sa.Table(
    "gateway_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("nodes", sa.JSON, nullable=False),
    sa.Column("owner_token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # No foreign key: a workflow may be deleted while its executions stay in the record.
    sa.Column("workflow_id", sa.Integer, nullable=False, index=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=True, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("progress", sa.Integer, nullable=False, default=0),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("graph", sa.JSON, nullable=False),
    sa.Column("backend_url", sa.String(500), nullable=True, index=True),
    sa.Column("prompt_id", sa.String(64), nullable=True),
    # False until ComfyUI accepted the prompt: a restart re-submits only runs it never accepted.
    sa.Column("submitted", sa.Boolean, nullable=False, default=False),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The queue: the instance following the run and until when (epoch seconds, the database's clock). A run
    # whose lease ran out is claimed by another instance (SELECT ... FOR UPDATE SKIP LOCKED).
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    # Bumped by every change: a subscriber on another instance knows whether it has seen the newest state.
    sa.Column("seq", sa.Integer, nullable=False, default=0, server_default="0"),
)

#: Requests per token and window, shared by every instance (fixed windows; `window` is its start, epoch s).
rate_counters = sa.Table(
    "rate_counters",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("window", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.Integer, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=True),
    sa.Column("node_id", sa.String(64), nullable=False),
    # Which server file it came from, so a reconciled run does not store the same output twice.
    sa.Column("source", sa.String(1000), nullable=False),
    sa.Column("file_name", sa.String(200), nullable=False),
    sa.Column("mime", sa.String(64), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def utc(value: datetime) -> datetime:
    """Timestamps come back naive from SQLite: they were written as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and foreign keys."""
    kwargs: dict[str, Any] = {}
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # Every instance holds a few connections: readers, the writer, the rate limiter, the claim loop.
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = sa.create_engine(url, **kwargs)
    if is_sqlite:

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


#: The PostgreSQL advisory lock that lets one instance migrate while the others starting with it wait.
MIGRATION_LOCK = 0x636F6D6679  # "comfy"


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (creates it on an empty database).

    On PostgreSQL the migration holds a transaction-scoped advisory lock: instances started together
    migrate one after the other, and all but the first find the schema current."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
