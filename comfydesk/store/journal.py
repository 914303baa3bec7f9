"""The run journal: every execution and every output, in SQLite (WAL) plus a content-addressed blob store.

A run is recorded before it is submitted (the exact API graph, the UI graph, the form values, the seed),
marked submitted with the server's execution id, and ended with a status. Each output's bytes are written once
to `blobs/<sha[:2]>/<sha>.<ext>` (temp file, fsync, rename) and only then get their row, so a row always
points at a complete file; the same bytes twice share one blob. Deletes are soft (undo) until `purge_deleted`.

Blocking, and safe to call from any one thread at a time (a lock serialises callers); the app calls it from
one worker thread (`comfydesk.app.journal.JournalModel`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from comfydesk.store.journal_files import (
    IMAGE_SUFFIXES,
    form_values_of,
    probe,
    read_import,
    seed_of,
    workflow_label,
    write_blob,
)
from comfydesk.store.journal_records import OutputFilter, OutputRecord, RunRecord
from comfydesk.store.journal_schema import SCHEMA_VERSION, JournalVersionError, migrate

__all__ = [
    "FINISHED",
    "SCHEMA_VERSION",
    "UNFINISHED",
    "Journal",
    "JournalVersionError",
    "OutputFilter",
    "OutputRecord",
    "RunRecord",
]

log = logging.getLogger(__name__)

UNFINISHED = ("recorded", "queued", "running")
FINISHED = ("completed", "failed", "cancelled", "imported")
_STATUSES = UNFINISHED + FINISHED
_RESULTS_IMPORTED = "results_dir_imported"
_ALL = OutputFilter()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    """What JSON cannot hold as is: paths as text, bytes (a pasted image) as a marker."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)[:1000]


def _search_text(workflow_name: str, values: Mapping[str, Any]) -> str:
    texts = [workflow_name] + [v for v in values.values() if isinstance(v, str)]
    return "\n".join(texts).lower()


_RUN_COLUMNS = (
    "id, profile_id, server, workflow_name, workflow_id, api_graph, ui_graph, form_values, seed, status, "
    "error, execution_id, created_at, finished_at"
)
_OUTPUT_COLUMNS = (
    "o.id, o.run_id, o.node_id, o.kind, o.blob, o.text, o.sha256, o.size, o.width, o.height, o.mime, "
    "o.created_at, o.starred, o.workflow_name, o.server, r.status, r.seed"
)


_U64 = 1 << 64


def _seed_to_db(seed: int | None) -> int | None:
    """ComfyUI seeds run to 2**64 - 1, SQLite integers to 2**63 - 1: the upper half is stored as the
    negative number with the same 64 bits (seeds are never negative), so every seed round-trips exactly.
    A value no seed can hold is not kept (the graph and the form values still have it)."""
    if seed is None or not 0 <= seed < _U64:
        return None
    return seed - _U64 if seed >= 1 << 63 else seed


def _seed_from_db(value: object) -> int | None:
    if not isinstance(value, int):
        return None
    return value + _U64 if value < 0 else value


class Journal:
    """The journal database at `db_path`, its output files under `blobs_dir`."""

    def __init__(self, db_path: Path, blobs_dir: Path, *, clock: Any = time.time) -> None:
        self.db_path = Path(db_path)
        self.blobs_dir = Path(blobs_dir)
        self._clock = clock
        self._lock = threading.RLock()
        self.last_import: list[OutputRecord] = []
        """The outputs the last `import_*` call added."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(
                "PRAGMA synchronous = NORMAL"
            )  # WAL + NORMAL: durable at checkpoints, never torn
            self._db.execute("PRAGMA foreign_keys = ON")
            self.version = migrate(self._db)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- helpers -----------------------------------------------------------------------------------
    def _tx(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    def _run_record(self, row: sqlite3.Row | tuple[Any, ...]) -> RunRecord:
        ui = json.loads(row[6]) if row[6] else None
        return RunRecord(
            id=row[0],
            profile_id=row[1],
            server=row[2],
            workflow_name=row[3],
            workflow_id=row[4],
            api_graph=json.loads(row[5]),
            ui_graph=ui,
            values=json.loads(row[7]),
            seed=_seed_from_db(row[8]),
            status=row[9],
            error=row[10],
            execution_id=row[11],
            created_at=row[12],
            finished_at=row[13],
        )

    def _output_record(self, row: tuple[Any, ...]) -> OutputRecord:
        return OutputRecord(
            id=row[0],
            run_id=row[1],
            node_id=row[2],
            kind=row[3],
            path=self.blobs_dir / row[4] if row[4] else None,
            text=row[5],
            sha256=row[6],
            size=row[7],
            width=row[8],
            height=row[9],
            mime=row[10],
            created_at=row[11],
            starred=bool(row[12]),
            workflow_name=row[13],
            server=row[14],
            status=row[15],
            seed=_seed_from_db(row[16]),
        )

    # -- runs --------------------------------------------------------------------------------------
    def record_run(
        self,
        *,
        profile_id: str,
        server: str,
        workflow_name: str,
        workflow_id: str | None,
        api_graph: Mapping[str, Any],
        ui_graph: Mapping[str, Any] | None,
        values: Mapping[str, Any],
        seed: int | None,
        status: str = "recorded",
        created_at: float | None = None,
        execution_id: str | None = None,
    ) -> RunRecord:
        """Record a run before it is submitted. `execution_id`, when the caller chose it (a ComfyUI prompt
        id), is written now, so a run whose POST reached the server just before comfydesk was killed is
        still found there; the status stays "recorded" until `mark_submitted`."""
        when = self._clock() if created_at is None else created_at
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (profile_id, server, workflow_name, workflow_id, api_graph, ui_graph, "
                "form_values, search_text, seed, status, created_at, finished_at, execution_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    profile_id,
                    server,
                    workflow_name,
                    workflow_id,
                    _json(dict(api_graph)),
                    _json(dict(ui_graph)) if ui_graph is not None else None,
                    _json(dict(values)),
                    _search_text(workflow_name, values),
                    _seed_to_db(seed),
                    status,
                    when,
                    when if status in FINISHED else None,
                    execution_id,
                ),
            )
            run_id = int(cur.lastrowid or 0)
        record = self.run(run_id)
        assert record is not None
        return record

    def mark_submitted(self, run_id: int, execution_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET execution_id = ?, submitted_at = ?, "
                "status = CASE status WHEN 'recorded' THEN 'queued' ELSE status END WHERE id = ?",
                (execution_id, self._clock(), run_id),
            )

    def set_status(self, run_id: int, status: str, *, error: str | None = None) -> None:
        if status not in _STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        finished = self._clock() if status in FINISHED else None
        # A late "running" never reopens an ended run (events and writes may cross).
        guard = f" AND status NOT IN ({', '.join('?' for _ in FINISHED)})" if finished is None else ""
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = COALESCE(?, finished_at) WHERE id = ?"
                + guard,
                (status, error, finished, run_id, *(FINISHED if guard else ())),
            )

    def run(self, run_id: int) -> RunRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._run_record(row) if row else None

    def run_by_execution(self, execution_id: str) -> RunRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE execution_id = ? ORDER BY id DESC LIMIT 1",
                (execution_id,),
            ).fetchone()
        return self._run_record(row) if row else None

    def unfinished_runs(self, profile_id: str) -> list[RunRecord]:
        marks = ", ".join("?" for _ in UNFINISHED)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE profile_id = ? AND status IN ({marks}) ORDER BY id",
                (profile_id, *UNFINISHED),
            ).fetchall()
        return [self._run_record(r) for r in rows]

    # -- outputs -----------------------------------------------------------------------------------
    def add_output(
        self,
        run_id: int,
        *,
        node_id: str,
        kind: str,
        data: bytes | None,
        text: str | None = None,
        source: str,
        filename: str,
        width: int | None = None,
        height: int | None = None,
        mime: str = "",
        created_at: float | None = None,
    ) -> OutputRecord | None:
        """Store an output of a run: the blob first, then the row. None when `source` is stored already."""
        with self._lock:
            known = self._db.execute(
                "SELECT 1 FROM outputs WHERE run_id = ? AND source = ?", (run_id, source)
            ).fetchone()
            run = self._db.execute(
                "SELECT workflow_name, server FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        if known:
            return None
        if run is None:
            raise KeyError(f"no run {run_id} in the journal")
        rel: str | None = None
        sha = ""
        size = 0
        if data is not None:
            info = probe(data, filename)
            if info.problem:
                log.warning("output %s of run %d: %s", filename, run_id, info.problem)
            width = width if width is not None else info.width
            height = height if height is not None else info.height
            mime = mime or info.mime
            sha, rel = self._store_blob(data, info.ext)
            size = len(data)
        else:
            mime = mime or "text/plain"
            size = len((text or "").encode("utf-8"))
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO outputs (run_id, node_id, kind, source, filename, blob, text, sha256, "
                "size, width, height, mime, created_at, workflow_name, server) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    node_id,
                    kind,
                    source,
                    filename,
                    rel,
                    text,
                    sha,
                    size,
                    width,
                    height,
                    mime,
                    self._clock() if created_at is None else created_at,
                    run[0],
                    run[1],
                ),
            )
            if not cur.rowcount:
                return None
            output_id = int(cur.lastrowid or 0)
        return self.output(output_id)

    def _store_blob(self, data: bytes, ext: str) -> tuple[str, str]:
        """Write the bytes once; bytes stored already (under any extension) reuse that blob."""
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            row = self._db.execute(
                "SELECT blob FROM outputs WHERE sha256 = ? AND blob IS NOT NULL LIMIT 1", (sha,)
            ).fetchone()
        if row and (self.blobs_dir / row[0]).is_file():
            return sha, str(row[0])
        return write_blob(self.blobs_dir, data, ext)

    def _where(self, flt: OutputFilter) -> tuple[str, list[Any]]:
        clauses = ["o.deleted = 0"]
        params: list[Any] = []
        if flt.workflow is not None:
            clauses.append("o.workflow_name = ?")
            params.append(flt.workflow)
        if flt.server is not None:
            clauses.append("o.server = ?")
            params.append(flt.server)
        if flt.since is not None:
            clauses.append("o.created_at >= ?")
            params.append(flt.since)
        if flt.until is not None:
            clauses.append("o.created_at < ?")
            params.append(flt.until)
        if flt.status is not None:
            clauses.append("r.status = ?")
            params.append(flt.status)
        if flt.starred is not None:
            clauses.append("o.starred = ?")
            params.append(1 if flt.starred else 0)
        if flt.text.strip():
            escaped = flt.text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("r.search_text LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        return " AND ".join(clauses), params

    def outputs(self, flt: OutputFilter = _ALL, *, limit: int = 200, offset: int = 0) -> list[OutputRecord]:
        """Outputs matching `flt`, newest first."""
        where, params = self._where(flt)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_OUTPUT_COLUMNS} FROM outputs o JOIN runs r ON r.id = o.run_id WHERE {where} "
                "ORDER BY o.created_at DESC, o.id DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset)),
            ).fetchall()
        return [self._output_record(r) for r in rows]

    def count(self, flt: OutputFilter = _ALL) -> int:
        where, params = self._where(flt)
        with self._lock:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM outputs o JOIN runs r ON r.id = o.run_id WHERE {where}", params
            ).fetchone()
        return int(row[0])

    def output(self, output_id: int) -> OutputRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_OUTPUT_COLUMNS} FROM outputs o JOIN runs r ON r.id = o.run_id "
                "WHERE o.id = ? AND o.deleted = 0",
                (output_id,),
            ).fetchone()
        return self._output_record(row) if row else None

    def outputs_of_run(self, run_id: int) -> list[OutputRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_OUTPUT_COLUMNS} FROM outputs o JOIN runs r ON r.id = o.run_id "
                "WHERE o.run_id = ? AND o.deleted = 0 ORDER BY o.id",
                (run_id,),
            ).fetchall()
        return [self._output_record(r) for r in rows]

    def facets(self) -> dict[str, list[str]]:
        """The workflow names and servers that have outputs, for the filter menus."""
        with self._lock:
            workflows = self._db.execute(
                "SELECT DISTINCT workflow_name FROM outputs WHERE deleted = 0 ORDER BY workflow_name"
            ).fetchall()
            servers = self._db.execute(
                "SELECT DISTINCT server FROM outputs WHERE deleted = 0 AND server != '' ORDER BY server"
            ).fetchall()
        return {"workflow": [r[0] for r in workflows], "server": [r[0] for r in servers]}

    def set_starred(self, output_ids: Sequence[int], starred: bool) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE outputs SET starred = ? WHERE id = ?", [(1 if starred else 0, i) for i in output_ids]
            )

    def delete_outputs(self, output_ids: Sequence[int]) -> list[int]:
        """Hide outputs (undo with `restore_outputs`); returns the ids that were visible."""
        done: list[int] = []
        with self._tx() as db:
            for i in output_ids:
                if db.execute("UPDATE outputs SET deleted = 1 WHERE id = ? AND deleted = 0", (i,)).rowcount:
                    done.append(i)
        return done

    def restore_outputs(self, output_ids: Sequence[int]) -> None:
        with self._tx() as db:
            db.executemany("UPDATE outputs SET deleted = 0 WHERE id = ?", [(i,) for i in output_ids])

    def purge_deleted(self) -> int:
        """Remove soft-deleted rows, then the blobs no row refers to any more; returns the rows removed."""
        with self._tx() as db:
            blobs = {
                r[0] for r in db.execute("SELECT blob FROM outputs WHERE deleted = 1 AND blob IS NOT NULL")
            }
            removed = db.execute("DELETE FROM outputs WHERE deleted = 1").rowcount
            kept = {
                r[0]
                for r in db.execute(
                    "SELECT blob FROM outputs WHERE blob IN (SELECT value FROM json_each(?))",
                    (_json(list(blobs)),),
                )
            }
        for rel in blobs - kept:
            try:
                (self.blobs_dir / rel).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove %s: %s", rel, exc)
        return int(removed)

    # -- imports -----------------------------------------------------------------------------------
    def import_results_dir(self, folder: Path) -> int:
        """Import earlier versions' `results/<date>/*` files, once (remembered in the journal)."""
        with self._lock:
            done = self._db.execute("SELECT 1 FROM meta WHERE key = ?", (_RESULTS_IMPORTED,)).fetchone()
        if done:
            return 0
        files = (
            sorted(p for p in Path(folder).glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if folder.is_dir()
            else []
        )
        count = self._import_files(files)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (_RESULTS_IMPORTED, str(self._clock())),
            )
        return count

    def import_folder(self, folder: Path) -> int:
        """Import a folder of ComfyUI outputs (images carrying `prompt`/`workflow`), one run per file.
        Files whose bytes the journal holds already are skipped; returns the number imported."""
        files = sorted(
            p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        return self._import_files(files)

    def _import_files(self, files: list[Path]) -> int:
        self.last_import = [r for r in (self._import_file(p) for p in files) if r is not None]
        return len(self.last_import)

    def _import_file(self, path: Path) -> OutputRecord | None:
        try:
            item = read_import(path)
            if item is None:
                return None
            sha = hashlib.sha256(item.data).hexdigest()
            with self._lock:
                seen = self._db.execute(
                    "SELECT 1 FROM outputs WHERE sha256 = ? AND deleted = 0 LIMIT 1", (sha,)
                ).fetchone()
            if seen:
                return None
            values = form_values_of(item.prompt)
            run = self.record_run(
                profile_id="",
                server="",
                workflow_name=workflow_label(path),
                workflow_id=None,
                api_graph=item.prompt,
                ui_graph=item.workflow,
                values=values,
                seed=seed_of(item.prompt),
                status="imported",
                created_at=item.mtime,
            )
            return self.add_output(
                run.id,
                node_id="",
                kind="images",
                data=item.data,
                source=f"file:{path}",
                filename=path.name,
                created_at=item.mtime,
            )
        except (OSError, sqlite3.Error, ValueError) as exc:
            log.warning("import: skipped %s: %s", path, exc)
            return None


class _Transaction:
    """`with journal._tx() as db:` holds the lock and runs one IMMEDIATE transaction."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self._lock.release()
