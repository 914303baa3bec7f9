"""The run controller's side of the journal: record runs, save outputs as they come, reconcile.

`RunRecorder` records each run before it is submitted, downloads every output as soon as it is announced
(a temporary file the server forgets later is safe already), follows the run's status, and, on start-up and
after every reconnect, asks the server about the journal's unfinished runs of the current profile that this
process is not following (a run left by a crash or a kill): finished ones get their outputs and status, runs
the server no longer knows end as failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from comfydesk.app.connection import ConnectionModel
from comfydesk.app.journal import JournalModel
from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend, ConnectionState, ConnectionStatus, HistoryEntry
from comfydesk.backends.comfyui_protocol import safe_output_name
from comfydesk.core.errors import BackendError, ComfyDeskError, ServerResponseError, UnsafeInputError
from comfydesk.core.events import OutputRef
from comfydesk.core.graph import ApiGraph
from comfydesk.core.pngmeta import read_embedded_workflow
from comfydesk.core.templates import FieldKind, FormSpec
from comfydesk.store.journal import OutputRecord, RunRecord

__all__ = [
    "LOST_REASON",
    "NOT_SUBMITTED_REASON",
    "RunRecorder",
    "first_seed",
    "missing_outputs",
    "output_source",
    "ui_graph_of",
]

log = logging.getLogger(__name__)

LOST_REASON = "server restarted before the run finished"
NOT_SUBMITTED_REASON = "comfydesk stopped before the run was submitted"
_POLL_START, _POLL_MAX = 0.5, 5.0  # seconds between asking about a run left queued on the server


def first_seed(spec: FormSpec, values: Mapping[str, Any]) -> int | None:
    """The value of the form's first seed field."""
    for f in spec.fields():
        seed = values.get(f.key)
        if f.kind is FieldKind.SEED and isinstance(seed, int) and not isinstance(seed, bool):
            return seed
    return None


def ui_graph_of(current: CurrentWorkflow) -> dict[str, Any] | None:
    """The UI-format document a workflow came from (a UI JSON file, or a PNG's `workflow`); blocking."""
    wf = current.workflow
    if wf is None or wf.format not in ("ui", "png") or not wf.source:
        return None
    path = Path(wf.source)
    try:
        if wf.format == "png":
            doc = read_embedded_workflow(path.read_bytes(), source=str(path)).get("workflow")
        else:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and "nodes" not in doc and isinstance(doc.get("workflow"), dict):
                doc = doc["workflow"]
    except (OSError, ValueError, ComfyDeskError) as exc:
        log.info("no UI graph for %s: %s", wf.name, exc)
        return None
    return doc if isinstance(doc, dict) else None


def output_source(ref: OutputRef, index: int) -> str:
    """A stable key of an output within its run (`index` counts the node's inline values of that kind)."""
    if ref.url:
        return ref.url
    if ref.is_file:
        return f"{ref.type}/{ref.subfolder}/{ref.filename}"
    return f"{ref.node_id}/{ref.kind}/{index}"


def _keyed(refs: Sequence[OutputRef]) -> list[tuple[str, OutputRef]]:
    counts: dict[tuple[str, str], int] = {}
    out = []
    for ref in refs:
        key = (ref.node_id, ref.kind)
        index = counts.get(key, 0)
        if not ref.is_file:
            counts[key] = index + 1
        out.append((output_source(ref, index), ref))
    return out


def missing_outputs(failed: Sequence[str]) -> str | None:
    """The error a completed run keeps when some outputs could not be downloaded."""
    if not failed:
        return None
    return f"{len(failed)} output(s) could not be downloaded: " + "; ".join(failed)[:2000]


def _failure_text(entry: HistoryEntry) -> str:
    for _name, body in entry.messages:
        for key in ("exception_message", "message"):
            text = body.get(key) if isinstance(body, Mapping) else None
            if isinstance(text, str) and text:
                return text
    return "the run failed on the server"


class RunRecorder(QObject):
    """Writes this window's runs to the journal and settles runs an earlier session left open."""

    reconciled = Signal(object)  # list[RunRecord]: runs a reconcile settled (status as it is now)

    def __init__(
        self,
        journal: JournalModel,
        connection: ConnectionModel,
        tasks: TaskRunner,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.journal = journal
        self._connection = connection
        self._tasks = tasks
        self.live: set[int] = set()  # journal runs this process follows: a reconcile leaves them alone
        self._watching: set[int] = set()
        self._reconciling = False
        self._again = False
        connection.status_changed.connect(self._on_status)

    # -- recording ---------------------------------------------------------------------------------
    async def record(
        self,
        current: CurrentWorkflow,
        spec: FormSpec,
        graph: ApiGraph,
        values: Mapping[str, Any],
        *,
        execution_id: str | None = None,
    ) -> int | None:
        """Record a run about to be submitted (with the prompt id it will be posted under, when chosen
        here); None (logged) when the journal cannot take it."""
        profile = self._connection.profile
        try:
            ui = await asyncio.to_thread(ui_graph_of, current)
            run = await self.journal.record_run(
                profile_id=profile.id if profile else "",
                server=(profile.name or profile.url) if profile else "",
                workflow_name=current.entry.name,
                workflow_id=current.workflow.workflow_id if current.workflow else None,
                api_graph=graph.to_prompt(),
                ui_graph=ui,
                values=values,
                seed=first_seed(spec, values),
                execution_id=execution_id,
            )
        except Exception as exc:
            log.error("could not record the run in the journal: %s", exc)
            return None
        self.live.add(run.id)
        return run.id

    async def submitted(self, run_id: int | None, execution_id: str) -> None:
        if run_id is not None:
            await self.journal.mark_submitted(run_id, execution_id)

    async def set_status(self, run_id: int | None, status: str, error: str | None = None) -> None:
        if run_id is None:
            return
        if status not in ("recorded", "queued", "running"):
            self.live.discard(run_id)
        await self.journal.set_status(run_id, status, error=error)

    async def save_outputs(
        self,
        backend: Backend,
        run_id: int,
        refs: Sequence[OutputRef],
        saved: dict[str, OutputRecord | None],
        *,
        fetch: Callable[[OutputRef], Awaitable[bytes]] | None = None,
    ) -> list[str]:
        """Download and store each output not in `saved` yet (by `output_source`); returns what failed.
        A failed one stays out of `saved`, so a later call tries it again. `fetch` replaces
        `backend.fetch_output` (a download shared with the results strip)."""
        failed: list[str] = []
        for source, ref in _keyed(refs):
            if source in saved:
                continue
            try:
                saved[source] = await self._save_one(fetch or backend.fetch_output, run_id, source, ref)
            except (BackendError, UnsafeInputError) as exc:
                log.warning("output %s of run %d not saved: %s", source, run_id, exc)
                failed.append(f"{ref.filename or source}: {exc}")
        return failed

    async def _save_one(
        self, fetch: Callable[[OutputRef], Awaitable[bytes]], run_id: int, source: str, ref: OutputRef
    ) -> OutputRecord | None:
        if ref.is_file:
            filename = safe_output_name(ref) if ref.filename else ref.url.rsplit("/", 1)[-1]
            data = await fetch(ref)
            return await self.journal.add_output(
                run_id,
                node_id=ref.node_id,
                kind=ref.kind,
                data=data,
                source=source,
                filename=filename,
                width=ref.width,
                height=ref.height,
            )
        if isinstance(ref.data, str | int | float):
            return await self.journal.add_output(
                run_id,
                node_id=ref.node_id,
                kind=ref.kind,
                data=None,
                text=str(ref.data),
                source=source,
                filename="",
            )
        return None  # flags such as "animated": not outputs

    # -- reconciling -------------------------------------------------------------------------------
    def _on_status(self, status: object) -> None:
        if isinstance(status, ConnectionStatus) and status.state is ConnectionState.CONNECTED:
            self.reconcile_soon()

    def reconcile_soon(self) -> None:
        """Reconcile in the background (coalesced: one more pass when asked during one)."""
        if self._reconciling:
            self._again = True
            return
        self._reconciling = True
        self._tasks.start(self._reconcile_loop(), what="Checking unfinished runs", on_error=self._log_error)

    @staticmethod
    def _log_error(exc: BaseException) -> None:
        log.warning("reconciling the journal failed: %s", exc)

    async def _reconcile_loop(self) -> None:
        try:
            while True:
                self._again = False
                await self.reconcile()
                if not self._again:
                    return
        finally:
            self._reconciling = False

    async def reconcile(self) -> list[RunRecord]:
        """Ask the server about the profile's unfinished runs no one here follows; returns those settled."""
        backend, profile = self._connection.backend, self._connection.profile
        if backend is None or profile is None:
            return []
        runs = [
            r
            for r in await self.journal.unfinished_runs(profile.id)
            if r.id not in self.live and r.id not in self._watching
        ]
        if not runs:
            return []
        queued = {q.execution_id for q in await backend.queue()}
        settled: list[RunRecord] = []
        for run in runs:
            if run.execution_id is None:
                await self.set_status(run.id, "failed", NOT_SUBMITTED_REASON)
            elif run.execution_id in queued or not await self._settle(backend, run):
                self._watch(backend, run)
                continue
            now = await self.journal.run(run.id)
            if now is not None:
                settled.append(now)
        if settled:
            self.reconciled.emit(settled)
        return settled

    async def _settle(self, backend: Backend, run: RunRecord) -> bool:
        """Finish `run` from the server's record; False when the server still has it unfinished."""
        assert run.execution_id is not None
        try:
            entries = await backend.history(run.execution_id)
        except ServerResponseError as exc:
            if exc.status != 404:
                raise
            entries = []  # a gateway that forgot the execution
        entry = next((e for e in entries if e.execution_id == run.execution_id), None)
        if entry is None:
            # Recorded with its prompt id but never marked submitted: the POST did not reach the server.
            reason = NOT_SUBMITTED_REASON if run.status == "recorded" else LOST_REASON
            await self.set_status(run.id, "failed", reason)
            return True
        if entry.status == "interrupted":
            await self.set_status(run.id, "cancelled")
            return True
        if entry.status == "error":
            await self.set_status(run.id, "failed", _failure_text(entry))
            return True
        if not entry.completed and entry.status != "success":
            return False
        failed = await self.save_outputs(backend, run.id, entry.outputs, {})  # stored sources are skipped
        await self.set_status(run.id, "completed", missing_outputs(failed))
        return True

    def _watch(self, backend: Backend, run: RunRecord) -> None:
        """A run another session submitted is still on the server: ask again until it ends."""
        self._watching.add(run.id)
        self._tasks.start(self._poll(backend, run), what="Following an earlier run", on_error=self._log_error)

    async def _poll(self, backend: Backend, run: RunRecord) -> None:
        delay = _POLL_START
        try:
            while self._connection.backend is backend:
                await asyncio.sleep(delay)
                delay = min(_POLL_MAX, delay * 2)
                queued = {q.execution_id for q in await backend.queue()}
                if run.execution_id in queued:
                    continue
                if await self._settle(backend, run):
                    now = await self.journal.run(run.id)
                    if now is not None:
                        self.reconciled.emit([now])
                    return
        finally:
            self._watching.discard(run.id)
