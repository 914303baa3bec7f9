"""The run journal as app state: a `Journal` driven from ONE worker thread, awaited from the qasync loop.

Every database and disk call (opening and migrating included) runs on a single-thread executor, in the order
it was asked for, so the UI thread never waits on SQLite or fsync. Writes that change what the gallery shows
come out as signals, emitted on the loop (UI) thread after the write is on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from comfydesk.store.journal import Journal, OutputFilter, OutputRecord, RunRecord

__all__ = ["JournalModel"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_ALL = OutputFilter()


class JournalModel(QObject):
    """The journal of runs and outputs; see `comfydesk.store.journal` for the data."""

    outputs_added = Signal(object)  # list[OutputRecord], newest last
    outputs_removed = Signal(object)  # list[int]
    outputs_changed = Signal(object)  # list[OutputRecord]
    facets_changed = Signal(object)  # dict[str, list[str]]
    runs_changed = Signal(object)  # list[RunRecord]: a run's status changed

    def __init__(self, db_path: Path, blobs_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.db_path = db_path
        self.blobs_dir = blobs_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._journal: Journal | None = None
        self._open_error: BaseException | None = None
        self._facets: dict[str, list[str]] | None = None
        self._closed = False
        self._executor.submit(self._open)  # first in the queue: every later call finds it open

    # -- the worker thread -------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self._journal = Journal(self.db_path, self.blobs_dir)
        except BaseException as exc:  # reported by every call, never raised on the UI thread here
            log.error("the journal at %s could not be opened: %s", self.db_path, exc)
            self._open_error = exc

    def _require(self) -> Journal:
        if self._journal is None:
            raise RuntimeError(f"the journal is not open: {self._open_error or 'closed'}")
        return self._journal

    async def _call(self, fn: Callable[[Journal], T]) -> T:
        if self._closed:
            raise RuntimeError("the journal is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._require()))

    def call_blocking(self, fn: Callable[[Journal], T]) -> T:
        """Run `fn` on the worker and wait (scripts, tests, shutdown without a loop; never the UI thread)."""
        return self._executor.submit(lambda: fn(self._require())).result()

    # -- reads (the gallery) -----------------------------------------------------------------------
    async def outputs(
        self, flt: OutputFilter = _ALL, limit: int = 200, offset: int = 0
    ) -> list[OutputRecord]:
        return await self._call(lambda j: j.outputs(flt, limit=limit, offset=offset))

    async def count(self, flt: OutputFilter = _ALL) -> int:
        return await self._call(lambda j: j.count(flt))

    async def run(self, run_id: int) -> RunRecord | None:
        return await self._call(lambda j: j.run(run_id))

    async def output(self, output_id: int) -> OutputRecord | None:
        return await self._call(lambda j: j.output(output_id))

    async def outputs_of_run(self, run_id: int) -> list[OutputRecord]:
        return await self._call(lambda j: j.outputs_of_run(run_id))

    async def facets(self) -> dict[str, list[str]]:
        return await self._call(lambda j: j.facets())

    # -- user actions ------------------------------------------------------------------------------
    async def star(self, ids: Sequence[int], on: bool) -> None:
        ids = list(ids)

        def work(j: Journal) -> list[OutputRecord]:
            j.set_starred(ids, on)
            return [r for r in (j.output(i) for i in ids) if r is not None]

        changed = await self._call(work)
        if changed:
            self.outputs_changed.emit(changed)

    async def delete(self, ids: Sequence[int]) -> list[int]:
        ids = list(ids)
        removed = await self._call(lambda j: j.delete_outputs(ids))
        if removed:
            self.outputs_removed.emit(removed)
            await self._refresh_facets()
        return removed

    async def undo_delete(self, ids: Sequence[int]) -> None:
        ids = list(ids)

        def work(j: Journal) -> list[OutputRecord]:
            j.restore_outputs(ids)
            return [r for r in (j.output(i) for i in ids) if r is not None]

        restored = await self._call(work)
        if restored:
            restored.sort(key=lambda r: (r.created_at, r.id))
            self.outputs_added.emit(restored)
            await self._refresh_facets()

    async def import_folder(self, folder: Path) -> int:
        """Import a folder of ComfyUI outputs; the new outputs come out on `outputs_added`."""
        added = await self._call(lambda j: _imported(j, j.import_folder(folder)))
        return await self._publish_imported(added)

    async def import_results_dir(self, folder: Path) -> int:
        """Import an earlier version's results folder (once: the journal remembers)."""
        added = await self._call(lambda j: _imported(j, j.import_results_dir(folder)))
        return await self._publish_imported(added)

    async def _publish_imported(self, added: list[OutputRecord]) -> int:
        if added:
            added.sort(key=lambda r: (r.created_at, r.id))
            self.outputs_added.emit(added)
            await self._refresh_facets()
        return len(added)

    # -- the run controller ------------------------------------------------------------------------
    async def record_run(
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
        execution_id: str | None = None,
    ) -> RunRecord:
        return await self._call(
            lambda j: j.record_run(
                profile_id=profile_id,
                server=server,
                workflow_name=workflow_name,
                workflow_id=workflow_id,
                api_graph=api_graph,
                ui_graph=ui_graph,
                values=values,
                seed=seed,
                execution_id=execution_id,
            )
        )

    async def mark_submitted(self, run_id: int, execution_id: str) -> None:
        await self._call(lambda j: j.mark_submitted(run_id, execution_id))

    async def set_status(self, run_id: int, status: str, *, error: str | None = None) -> None:
        def work(j: Journal) -> tuple[RunRecord | None, list[OutputRecord]]:
            j.set_status(run_id, status, error=error)
            return j.run(run_id), j.outputs_of_run(run_id)

        run, outputs = await self._call(work)
        if run is not None:
            self.runs_changed.emit([run])
        if outputs:
            self.outputs_changed.emit(outputs)  # their denormalised status changed

    async def unfinished_runs(self, profile_id: str) -> list[RunRecord]:
        return await self._call(lambda j: j.unfinished_runs(profile_id))

    async def add_output(
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
    ) -> OutputRecord | None:
        """Store an output (blob, then row) and announce it; None when the run has it already."""
        record = await self._call(
            lambda j: j.add_output(
                run_id,
                node_id=node_id,
                kind=kind,
                data=data,
                text=text,
                source=source,
                filename=filename,
                width=width,
                height=height,
                mime=mime,
            )
        )
        if record is not None:
            self.outputs_added.emit([record])
            facets = self._facets
            if (
                facets is None
                or record.workflow_name not in facets["workflow"]
                or (record.server and record.server not in facets["server"])
            ):
                await self._refresh_facets()
        return record

    async def _refresh_facets(self) -> None:
        facets = await self._call(lambda j: j.facets())
        if facets != self._facets:
            self._facets = facets
            self.facets_changed.emit(facets)

    # -- shutdown ----------------------------------------------------------------------------------
    async def aclose(self, *, purge: bool = True) -> None:
        """Purge soft-deleted outputs (the undo window ends with the app), close the database."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._closed = True
        await loop.run_in_executor(self._executor, lambda: self._close(purge))
        self._executor.shutdown(wait=False)

    def close(self, *, purge: bool = True, wait: bool = True) -> None:
        """As `aclose`, without a loop: blocking, or (`wait=False`) finished by the worker before exit."""
        if self._closed:
            return
        self._closed = True
        done = self._executor.submit(lambda: self._close(purge))
        self._executor.shutdown(wait=False)
        if wait:
            done.result()

    def _close(self, purge: bool) -> None:
        journal, self._journal = self._journal, None
        if journal is None:
            return
        try:
            if purge:
                journal.purge_deleted()
        except Exception as exc:
            log.warning("could not purge deleted outputs: %s", exc)
        finally:
            journal.close()


def _imported(journal: Journal, count: int) -> list[OutputRecord]:
    return list(journal.last_import[:count]) if count else []
