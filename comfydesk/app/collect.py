"""A run's outputs, from the server to the journal, the results folder and the results strip.

`OutputCollector` writes the run's journal row before it is submitted (the row its outputs hang on), then
downloads each announced result image once (ComfyUI's `executed` message) and makes its thumbnail from those
bytes in a worker thread at once, while the journal stores the same bytes. When the run completes, the copy
into `results/<date>/` runs beside the thumbnail and beside the journal's last writes (any output still
missing, then the run's status); the results are published as soon as their thumbnails and copies exist, and
the collect ends once the journal has every output and the status. The journal's writes of a run keep their
order (outputs, then status) under the run's save lock, whatever the strip does. A download that failed when
announced is tried once more when the run completes (one retry, shared by the journal and the strip).

The downloaded bytes are kept until the run ends (a completed run's copy takes them from memory); past
`KEEP_BYTES` in one run, the bytes of outputs the journal has stored are let go and the copy reads the
journal's file instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtGui import QImage

from comfydesk.app.images import read_thumbnail_async
from comfydesk.app.journal_runs import RunRecorder, missing_outputs, output_source
from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.run_state import ResultItem
from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend
from comfydesk.backends.comfyui_protocol import safe_output_name
from comfydesk.core.errors import UnsafeInputError
from comfydesk.core.events import OutputRef
from comfydesk.core.graph import ApiGraph
from comfydesk.core.templates import FormSpec
from comfydesk.store.atomic import write_new_file
from comfydesk.store.journal import OutputRecord

__all__ = [
    "KEEP_BYTES",
    "THUMB_SIZE",
    "OutputCollector",
    "RunOutputs",
    "is_result",
    "write_unique",
]

log = logging.getLogger(__name__)

THUMB_SIZE = 160
"""Edge of the box the results strip's thumbnails fit in."""
KEEP_BYTES = 128 * 1024 * 1024
"""Downloaded bytes one run keeps in memory for its copy into the results folder, at most."""


def is_result(ref: OutputRef) -> bool:
    """An output the results folder and strip take: an image (or animation) file."""
    return ref.is_file and ref.kind in ("images", "gifs")


def write_unique(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` as `folder/name`, or `name-2`, `name-3`... never overwriting; blocking."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    n = 1
    while True:
        candidate = folder / (name if n == 1 else f"{stem}-{n}{dot}{suffix}")
        try:
            write_new_file(candidate, data)  # via a temporary file: never a partial file under this name
        except FileExistsError:
            n += 1
            continue
        return candidate


def _copy_all(folder: Path, files: Sequence[tuple[str, bytes | Path]]) -> list[Path]:
    """Write each file (bytes, or the journal's copy read now) under a free name in `folder`; blocking."""
    return [
        write_unique(folder, name, source.read_bytes() if isinstance(source, Path) else source)
        for name, source in files
    ]


_Fetched = bytes | Exception | None  # a download's outcome: the bytes, its error, or None (the task failed)


@dataclass(slots=True)
class _Download:
    """One result image: its bytes, downloaded once (None once let go), and the thumbnail made of them."""

    data: asyncio.Task[_Fetched] | None
    thumb: asyncio.Task[QImage | None]

    def failed(self) -> bool:
        if self.data is None or not self.data.done():
            return False
        return self.data.cancelled() or not isinstance(self.data.result(), bytes)

    def kept(self) -> int:
        if self.data is None or not self.data.done() or self.data.cancelled():
            return 0
        result = self.data.result()
        return len(result) if isinstance(result, bytes) else 0


@dataclass(slots=True)
class RunOutputs:
    """One run's outputs: its journal row, what the journal stored (by `output_source`), downloads."""

    journal_id: int | None = None
    saved: dict[str, OutputRecord | None] = field(default_factory=dict)
    save_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one journal writer per run at a time
    downloads: dict[str, _Download] = field(default_factory=dict)


class OutputCollector:
    """Downloads, thumbnails, journal writes and results-folder copies of the runs' outputs."""

    def __init__(
        self,
        tasks: TaskRunner,
        recorder: RunRecorder | None,
        *,
        clock: Callable[[], datetime] = datetime.now,
        thumb_size: int = THUMB_SIZE,
        keep_bytes: int = KEEP_BYTES,
    ) -> None:
        self._tasks = tasks
        self.recorder = recorder
        self._clock = clock
        self.thumb_size = thumb_size
        self.keep_bytes = keep_bytes

    async def record(
        self,
        current: CurrentWorkflow,
        spec: FormSpec,
        graph: ApiGraph,
        values: Mapping[str, Any],
        prompt_id: str | None,
    ) -> int | None:
        """Write a run to the journal before it is submitted: the row its outputs go to (None: no journal)."""
        if self.recorder is None:
            return None
        return await self.recorder.record(current, spec, graph, values, execution_id=prompt_id)

    # -- announced outputs -------------------------------------------------------------------------
    def announced(self, backend: Backend, run: RunOutputs, outputs: Sequence[OutputRef]) -> None:
        """Outputs were announced: download the images and make their thumbnails now, and store the outputs
        in the journal (when the run has a journal row)."""
        for ref in outputs:
            if is_result(ref):
                self._download(backend, run, ref)
        if self.recorder is not None and run.journal_id is not None:
            self._tasks.start(self.save(backend, run, outputs), what="Saving the results")

    async def save(self, backend: Backend, run: RunOutputs, outputs: Sequence[OutputRef]) -> list[str]:
        """Store the outputs not stored yet in the journal; returns what could not be downloaded."""
        if self.recorder is None or run.journal_id is None:
            return []
        async with run.save_lock:
            failed = await self.recorder.save_outputs(
                backend, run.journal_id, outputs, run.saved, fetch=self._fetcher(backend, run)
            )
        self._let_go(run)
        return failed

    async def end(self, run: RunOutputs, status: str, error: str | None = None) -> None:
        """The run failed or was cancelled: its status, after the outputs announced before the end."""
        async with run.save_lock:
            await self.journal_status(run.journal_id, status, error)
        run.downloads.clear()

    async def journal_status(self, journal_id: int | None, status: str, error: str | None = None) -> None:
        """Write a run's status to the journal; a failure is logged (the run itself goes on)."""
        if self.recorder is not None and journal_id is not None:
            try:
                await self.recorder.set_status(journal_id, status, error)
            except Exception as exc:
                log.error("could not write the run's status to the journal: %s", exc)

    # -- a completed run ---------------------------------------------------------------------------
    async def collect(
        self,
        backend: Backend,
        run: RunOutputs,
        outputs: Sequence[OutputRef],
        folder: Path,
        template: ResultItem,
        publish: Callable[[list[ResultItem]], None],
    ) -> None:
        """The run completed: copy its images into `folder` and `publish` them (`template` with each one's
        path, node, time and thumbnail) as soon as their thumbnails exist, while the journal gets any output
        still missing and then the status. Returns when the journal has them; raises the first download or
        copy error after publishing what could be."""
        refs = [ref for ref in outputs if is_result(ref)]
        for ref in refs:  # those not announced (or not downloaded) start now, side by side
            self._download(backend, run, ref)
        journal = self._tasks.start(self._complete(backend, run, outputs), what="Recording the run")
        error: BaseException | None = None
        try:
            collected, error = await self._results(backend, run, refs, folder)
            if collected:
                publish(
                    [
                        replace(
                            template, path=path, node_id=ref.node_id, created=self._clock(), thumbnail=thumb
                        )
                        for ref, path, thumb in collected
                    ]
                )
        finally:
            await asyncio.shield(journal)  # `journal` goes on if this is cancelled; the runner waits for it
            run.downloads.clear()
        if error is not None:
            raise error

    async def _complete(self, backend: Backend, run: RunOutputs, outputs: Sequence[OutputRef]) -> None:
        if self.recorder is None or run.journal_id is None:
            return
        async with run.save_lock:
            # The outputs an earlier announcement could not fetch are tried once more here.
            failed = await self.recorder.save_outputs(
                backend, run.journal_id, outputs, run.saved, fetch=self._fetcher(backend, run, retry=True)
            )
            await self.journal_status(run.journal_id, "completed", missing_outputs(failed))

    async def _results(
        self, backend: Backend, run: RunOutputs, refs: Sequence[OutputRef], folder: Path
    ) -> tuple[list[tuple[OutputRef, Path, QImage | None]], BaseException | None]:
        error: BaseException | None = None
        ready: list[tuple[OutputRef, bytes | Path, _Download]] = []
        for ref in refs:
            try:
                download = await self._settled(backend, run, ref)
                ready.append((ref, await self._source(backend, run, ref, download), download))
            except Exception as exc:
                log.warning("result %s not saved: %s", ref.filename, exc)
                error = error or exc
        if not ready:
            return [], error
        files = [(safe_output_name(ref), source) for ref, source, _d in ready]
        # The copy (a write and an fsync) runs while the thumbnails are made: both in worker threads.
        copying = asyncio.ensure_future(asyncio.to_thread(_copy_all, folder, files))
        thumbs = [await d.thumb for _r, _s, d in ready]
        try:
            paths = await copying
        except OSError as exc:
            return [], error or exc
        together = zip(ready, paths, thumbs, strict=True)
        return [(ref, path, thumb) for (ref, _s, _d), path, thumb in together], error

    @staticmethod
    async def _source(backend: Backend, run: RunOutputs, ref: OutputRef, download: _Download) -> bytes | Path:
        """The image's bytes, or the journal's file of it once the bytes were let go."""
        fetched = await download.data if download.data is not None else None
        if isinstance(fetched, bytes):
            return fetched
        stored = run.saved.get(output_source(ref, 0))
        if stored is not None and stored.path is not None:
            return stored.path
        if isinstance(fetched, Exception):
            raise fetched
        return await backend.fetch_output(ref)

    # -- downloads ---------------------------------------------------------------------------------
    def _download(
        self, backend: Backend, run: RunOutputs, ref: OutputRef, *, retry: bool = False
    ) -> _Download:
        """The download of `ref` under way or done; started now if none is (`retry`: or if it failed)."""
        source = output_source(ref, 0)
        known = run.downloads.get(source)
        if known is not None and not (retry and known.failed()):
            return known
        data = self._tasks.start(self._fetch(backend, ref), what="Downloading a result")
        thumb = self._tasks.start(self._thumbnail(ref, data), what="Making a thumbnail", on_error=_log_thumb)
        download = _Download(data, thumb)
        run.downloads[source] = download
        return download

    async def _settled(self, backend: Backend, run: RunOutputs, ref: OutputRef) -> _Download:
        """Once the run completed: the download of `ref` when it is over, or a second one when it failed
        (the journal's and the results' retries share it)."""
        download = self._download(backend, run, ref)
        if download.data is not None:
            await asyncio.wait([download.data])
        return self._download(backend, run, ref, retry=True)

    @staticmethod
    async def _fetch(backend: Backend, ref: OutputRef) -> _Fetched:
        try:
            return await backend.fetch_output(ref)
        except Exception as exc:  # for whoever needs the bytes: the journal notes it, the collect raises it
            return exc

    async def _thumbnail(self, ref: OutputRef, data: asyncio.Task[_Fetched]) -> QImage | None:
        fetched = await data
        if not isinstance(fetched, bytes):
            return None
        try:
            return await read_thumbnail_async(fetched, self.thumb_size)
        except UnsafeInputError as exc:
            log.warning("no thumbnail for %s: %s", ref.filename, exc)
            return None

    def _fetcher(
        self, backend: Backend, run: RunOutputs, *, retry: bool = False
    ) -> Callable[[OutputRef], Awaitable[bytes]]:
        """`fetch_output` for the journal: a result image's shared download (`retry`: a second one when it
        failed), anything else downloaded now."""

        async def fetch(ref: OutputRef) -> bytes:
            if not is_result(ref):
                return await backend.fetch_output(ref)
            if retry:
                download = await self._settled(backend, run, ref)
            else:
                download = self._download(backend, run, ref)
            fetched = await download.data if download.data is not None else None
            if isinstance(fetched, bytes):
                return fetched
            if isinstance(fetched, Exception):
                raise fetched
            return await backend.fetch_output(ref)

        return fetch

    def _let_go(self, run: RunOutputs) -> None:
        """Past `keep_bytes`, forget the bytes of images the journal has stored (the copy reads its file)."""
        kept = sum(d.kept() for d in run.downloads.values())
        for source, download in run.downloads.items():
            if kept <= self.keep_bytes:
                return
            stored = run.saved.get(source)
            size = download.kept()
            if size and stored is not None and stored.path is not None:
                download.data = None
                kept -= size


def _log_thumb(exc: BaseException) -> None:
    log.warning("no thumbnail for a result: %s", exc)
