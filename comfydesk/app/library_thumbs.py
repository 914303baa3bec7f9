"""Thumbnails of the library's workflows: the latest picture made with the workflow (from the run journal),
else the image its file is (a PNG/WebP carrying the workflow), else none.

The journal is asked on its own worker thread, files are looked at in a worker thread, and the pictures are
made by a `ThumbnailCache` of this model's own (one pool thread; its disk cache may be the gallery's, the
keys are the same content hashes). A new result of a workflow replaces its thumbnail as it lands. A picture
that cannot be shown is simply no thumbnail: logged, never an error on screen.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from comfydesk.app.gallery_records import has_picture, thumb_key
from comfydesk.app.journal import JournalModel
from comfydesk.app.library import LibraryEntry
from comfydesk.app.tasks import TaskRunner
from comfydesk.app.thumbnails import BROKEN, READY, ThumbnailCache
from comfydesk.store.journal import OutputFilter, OutputRecord

__all__ = ["LIBRARY_THUMB_SIZE", "LibraryThumbnails", "Thumb"]

log = logging.getLogger(__name__)

LIBRARY_THUMB_SIZE = 96
"""Edge of the box library thumbnails fit in: twice the pane's icons, sharp on HiDPI screens."""
IMAGE_SUFFIXES = (".png", ".webp")
SOURCES = ("local", "sample")  # the entries with a file of their own
RESULTS_LOOKED_AT = 16  # a workflow's newest outputs searched for a picture (text outputs are skipped)


@dataclass(frozen=True, slots=True)
class Thumb:
    """What an entry's thumbnail shows: a journal output (`output_id`) or the workflow file itself."""

    cache_id: str
    path: Path
    created_at: float = 0.0
    output_id: int | None = None

    @property
    def is_result(self) -> bool:
        return self.output_id is not None


class _Entry:
    __slots__ = ("key", "name", "path")

    def __init__(self, key: str, name: str, path: Path) -> None:
        self.key, self.name, self.path = key, name, path


def file_thumb(path: Path) -> Thumb | None:
    """The workflow file as its own thumbnail (PNG/WebP), keyed by path, size and time; blocking."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    ident = hashlib.sha256(f"library-file\0{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    return Thumb(ident, path)


def result_thumb(record: OutputRecord) -> Thumb | None:
    """A journal output as a thumbnail, when it is a picture with a file."""
    if not has_picture(record) or record.path is None:
        return None
    return Thumb(thumb_key(record), record.path, record.created_at, record.id)


def _newer(a: Thumb, b: Thumb | None) -> bool:
    return b is None or (a.created_at, a.output_id or 0) >= (b.created_at, b.output_id or 0)


class LibraryThumbnails(QObject):
    """Which picture each local (and sample) workflow shows; `changed(key)` when one appears, changes or goes.

    `image(key)` answers at once: the thumbnail when it is made, else None (and it is made in the background,
    `changed(key)` following)."""

    changed = Signal(str)

    def __init__(
        self,
        tasks: TaskRunner,
        journal: JournalModel | None,
        cache: ThumbnailCache,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._journal = journal
        self.cache = cache
        self._entries: dict[str, _Entry] = {}
        self._results: dict[str, Thumb | None] = {}  # workflow name -> its newest picture (None: none yet)
        self._files: dict[str, Thumb | None] = {}  # entry key -> its file as a picture
        self._shown: dict[str, Thumb] = {}  # entry key -> what its thumbnail shows
        self._told_broken: set[str] = set()
        self._generation = 0
        self._resolving = False
        self._again = False
        cache.thumbnail_ready.connect(self._on_ready)
        if journal is not None:
            journal.outputs_added.connect(self._on_added)
            journal.outputs_removed.connect(self._on_removed)

    # -- read access -------------------------------------------------------------------------------
    def source(self, key: str) -> Thumb | None:
        """What the entry's thumbnail is made from (None: it has none)."""
        return self._shown.get(key)

    def image(self, key: str) -> QImage | None:
        thumb = self._shown.get(key)
        if thumb is None:
            return None
        state = self.cache.request(thumb.cache_id, thumb.path)
        if state == READY:
            return self.cache.image(thumb.cache_id)
        return None

    @property
    def busy(self) -> bool:
        """True while the pictures are being looked up (tests wait on it)."""
        return self._resolving

    # -- inputs ------------------------------------------------------------------------------------
    def set_entries(self, entries: object) -> None:
        """The library's entries (a list of LibraryEntry); those with a file of their own get a thumbnail."""
        fresh: dict[str, _Entry] = {}
        for e in entries if isinstance(entries, list) else ():
            if isinstance(e, LibraryEntry) and e.path is not None and e.source in SOURCES:
                fresh[e.key] = _Entry(e.key, e.name, e.path)
        self._entries = fresh
        for key in [k for k in self._shown if k not in fresh]:
            del self._shown[key]
        if fresh:
            self._resolve_soon()

    def close(self) -> None:
        self.cache.close()

    # -- internals ---------------------------------------------------------------------------------
    def _resolve_soon(self) -> None:
        """Look the pictures up in the background (coalesced: one more pass when asked during one)."""
        if self._resolving:
            self._again = True
            return
        self._resolving = True
        self._tasks.start(self._resolve_loop(), what="Finding workflow thumbnails", on_error=self._log_error)

    def _log_error(self, exc: BaseException) -> None:
        log.info("workflow thumbnails not looked up: %s", exc)

    async def _resolve_loop(self) -> None:
        try:
            again = True
            while again:
                self._again = False
                await self._resolve()
                again = self._again
        finally:
            self._resolving = False

    async def _resolve(self) -> None:
        entries = list(self._entries.values())
        files = await asyncio.to_thread(lambda: {e.key: file_thumb(e.path) for e in entries})
        self._files = files
        if self._journal is not None:
            for name in sorted({e.name for e in entries} - set(self._results)):
                records = await self._journal.outputs(OutputFilter(workflow=name), limit=RESULTS_LOOKED_AT)
                found = next((t for r in records if (t := result_thumb(r)) is not None), None)
                if name not in self._results:  # a result that landed meanwhile is newer
                    self._results[name] = found
        self._update()

    def _update(self) -> None:
        for key, entry in self._entries.items():
            # A result whose file is gone or unreadable gives way to the workflow's own image, that to none.
            self._show(key, self._usable(self._results.get(entry.name)) or self._usable(self._files.get(key)))

    def _usable(self, thumb: Thumb | None) -> Thumb | None:
        if thumb is None or self.cache.state(thumb.cache_id).startswith(BROKEN):
            return None
        return thumb

    def _show(self, key: str, thumb: Thumb | None) -> None:
        if self._shown.get(key) == thumb:
            return
        if thumb is None:
            self._shown.pop(key, None)
        else:
            self._shown[key] = thumb
        self.changed.emit(key)

    def _on_ready(self, cache_id: str) -> None:
        keys = [k for k, t in self._shown.items() if t.cache_id == cache_id]
        if not keys:
            return
        state = self.cache.state(cache_id)
        if state.startswith(BROKEN):
            if cache_id not in self._told_broken:
                self._told_broken.add(cache_id)
                log.info("no thumbnail for %s: %s", ", ".join(keys), state[len(BROKEN) :])
            self._update()  # these entries fall back to another picture, or none
            return
        for key in keys:
            self.changed.emit(key)

    def _on_added(self, records: object) -> None:
        if not isinstance(records, list):
            return
        names = {e.name for e in self._entries.values()}
        unknown = False
        for record in records:
            thumb = result_thumb(record) if isinstance(record, OutputRecord) else None
            if thumb is None or not isinstance(record, OutputRecord):
                continue
            name = record.workflow_name
            if name in self._results:
                if _newer(thumb, self._results[name]):
                    self._results[name] = thumb
            elif name in names:
                unknown = True  # never looked up: the journal says which is newest
        self._update()
        if unknown:
            self._resolve_soon()

    def _on_removed(self, ids: object) -> None:
        gone = set(ids) if isinstance(ids, list | tuple | set) else set()
        stale = [n for n, t in self._results.items() if t is not None and t.output_id in gone]
        for name in stale:
            del self._results[name]
        if stale:
            self._resolve_soon()
