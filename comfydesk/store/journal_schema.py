"""The run journal's schema and its migrations (`PRAGMA user_version`).

`MIGRATIONS[n]` takes a database at version `n` to version `n + 1`; `migrate` runs the missing ones, each in
its own transaction together with the version bump, so a crash mid-migration leaves the old version intact.
A v2 is one function appended to `MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "JournalVersionError", "migrate"]


class JournalVersionError(RuntimeError):
    """The database was written by a newer comfydesk (its schema version is unknown here)."""


def _v1(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE runs (
            id            INTEGER PRIMARY KEY,
            profile_id    TEXT NOT NULL,
            server        TEXT NOT NULL,
            workflow_name TEXT NOT NULL,
            workflow_id   TEXT,
            api_graph     TEXT NOT NULL,
            ui_graph      TEXT,
            form_values   TEXT NOT NULL,
            search_text   TEXT NOT NULL,     -- lower-cased workflow name + string values, for text search
            seed          INTEGER,
            status        TEXT NOT NULL,
            error         TEXT,
            execution_id  TEXT,
            created_at    REAL NOT NULL,
            submitted_at  REAL,
            finished_at   REAL
        );
        CREATE INDEX runs_by_profile_status ON runs (profile_id, status);
        CREATE INDEX runs_by_execution ON runs (execution_id);

        CREATE TABLE outputs (
            id            INTEGER PRIMARY KEY,
            run_id        INTEGER NOT NULL REFERENCES runs (id),
            node_id       TEXT NOT NULL,
            kind          TEXT NOT NULL,
            source        TEXT NOT NULL,     -- the server's reference (or the imported file), one row per run
            filename      TEXT NOT NULL,
            blob          TEXT,              -- path relative to the blobs dir; NULL for text
            text          TEXT,
            sha256        TEXT NOT NULL,
            size          INTEGER NOT NULL,
            width         INTEGER,
            height        INTEGER,
            mime          TEXT NOT NULL,
            created_at    REAL NOT NULL,
            starred       INTEGER NOT NULL DEFAULT 0,
            deleted       INTEGER NOT NULL DEFAULT 0,
            workflow_name TEXT NOT NULL,     -- denormalised from the run: the grid filters without a join
            server        TEXT NOT NULL,
            UNIQUE (run_id, source)
        );
        -- The gallery's queries: newest first, optionally narrowed by workflow, server or star.
        CREATE INDEX outputs_newest ON outputs (deleted, created_at DESC, id DESC);
        CREATE INDEX outputs_by_workflow ON outputs (workflow_name, created_at DESC);
        CREATE INDEX outputs_by_server ON outputs (server, created_at DESC);
        CREATE INDEX outputs_starred ON outputs (starred, created_at DESC) WHERE starred = 1;
        CREATE INDEX outputs_by_run ON outputs (run_id);
        CREATE INDEX outputs_by_sha ON outputs (sha256);

        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(
    db: sqlite3.Connection, migrations: list[Callable[[sqlite3.Connection], None]] | None = None
) -> int:
    """Bring `db` (opened with isolation_level=None) to the newest version; returns the version reached."""
    steps = MIGRATIONS if migrations is None else migrations
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(steps):
        raise JournalVersionError(
            f"the journal has schema version {version}; this comfydesk knows up to {len(steps)}"
        )
    while version < len(steps):
        db.execute("BEGIN IMMEDIATE")
        try:
            # executescript commits first; a migration runs its statements one by one instead when it
            # needs to stay inside this transaction, so split the script here.
            _run_in_transaction(db, steps[version])
            version += 1
            db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return version


class _Transactional:
    """A connection stand-in whose `executescript` runs statement by statement (no implicit COMMIT)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)  # type: ignore[arg-type]

    def executescript(self, script: str) -> None:
        statement = ""
        for line in script.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                self._db.execute(statement)
                statement = ""
        if statement.strip():
            self._db.execute(statement)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def _run_in_transaction(db: sqlite3.Connection, step: Callable[[sqlite3.Connection], None]) -> None:
    step(_Transactional(db))  # type: ignore[arg-type]
