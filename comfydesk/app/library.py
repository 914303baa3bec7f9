"""The workflow library: local files in `data_dir/workflows`, the server's workflows and templates, samples.

Every entry carries its name, description, where it comes from, and its problems against the connected
server's catalog (unknown node types, choice values such as model names the server does not have). Selecting
an entry loads it and builds its form; the result is `current_changed`. All disk I/O runs in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices

from comfydesk.app.library_open import (
    CurrentWorkflow,
    LibraryEntry,
    OpenedCache,
    failed,
    open_document,
    open_local,
)
from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend, WorkflowSummary
from comfydesk.core.errors import (
    AuthenticationError,
    ComfyDeskError,
    UnknownNodeTypeError,
    WorkflowError,
    WorkflowFormatError,
)
from comfydesk.core.graph import ApiGraph, is_link
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.workflow import PLACEHOLDER_RE, Workflow, load_workflow, load_workflow_file

if TYPE_CHECKING:
    from comfydesk.app.library_thumbs import LibraryThumbnails

__all__ = ["WORKFLOW_SUFFIXES", "CurrentWorkflow", "LibraryEntry", "LibraryModel", "workflow_problems"]

log = logging.getLogger(__name__)

WORKFLOW_SUFFIXES = (".json", ".png", ".webp")
SOURCES = ("local", "server", "template", "sample")
_BAD_CHARS = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')


def workflow_problems(graph: ApiGraph, catalog: NodeCatalog) -> tuple[str, ...]:
    """Unknown node types and choice values (models, samplers...) the server does not offer."""
    problems: list[str] = []
    unknown = sorted({n.class_type for n in graph.values() if n.class_type not in catalog})
    if unknown:
        problems.append("unknown node types: " + ", ".join(unknown))
    missing: list[str] = []
    for node in graph.values():
        ndef = catalog.get(node.class_type)
        if ndef is None:
            continue
        for spec in ndef.inputs:
            value = node.inputs.get(spec.name)
            if spec.choices is None or not spec.choices or spec.remote or spec.multiselect or spec.upload:
                continue
            if not isinstance(value, str) or is_link(value) or PLACEHOLDER_RE.search(value):
                continue
            if value not in spec.choices:
                missing.append(f"{value} ({node.title or ndef.title} › {spec.name})")
    if missing:
        problems.append("missing on the server: " + "; ".join(missing))
    return tuple(problems)


def safe_stem(name: str) -> str:
    """A file name stem from a user-given name (no path separators, no control characters)."""
    stem = _BAD_CHARS.sub("_", name).strip(" .")
    return stem[:120] or "workflow"


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem} {n}{suffix}"
        n += 1
    return candidate


def _scan_local(folder: Path, source: str, catalog: NodeCatalog | None) -> list[LibraryEntry]:
    entries: list[LibraryEntry] = []
    if not folder.is_dir():
        return entries
    for path in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if not path.is_file() or path.suffix.lower() not in WORKFLOW_SUFFIXES or path.name.startswith("."):
            continue
        # Local files are named after the file (rename renames it); samples keep their own names.
        key = f"{source}:{path.name}"
        name = path.stem
        try:
            wf = load_workflow_file(path, catalog=catalog)
        except UnknownNodeTypeError as exc:
            entries.append(LibraryEntry(key, name, source, path=path, problems=(exc.message,)))
            continue
        except WorkflowError as exc:
            needs_catalog = catalog is None and not isinstance(exc, WorkflowFormatError)
            entries.append(
                LibraryEntry(key, name, source, path=path, error="" if needs_catalog else exc.message)
            )
            continue
        except Exception as exc:  # one unreadable file must never hide the others (reliability probe)
            log.warning("library: cannot read %s: %s: %s", path, type(exc).__name__, exc)
            entries.append(LibraryEntry(key, name, source, path=path, error=f"cannot read this file: {exc}"))
            continue
        if source != "local":
            name = wf.name
        problems = workflow_problems(wf.graph, catalog) if catalog is not None else ()
        entries.append(LibraryEntry(key, name, source, wf.description, path, wf.workflow_id, problems))
    return entries


def _import_files(
    paths: list[Path], folder: Path, catalog: NodeCatalog | None
) -> tuple[list[Path], list[str]]:
    """Copy workflow files into the library; returns (new paths, error messages)."""
    folder.mkdir(parents=True, exist_ok=True)
    added: list[Path] = []
    errors: list[str] = []
    for src in paths:
        try:
            data = src.read_bytes()
        except OSError as exc:
            errors.append(f"{src.name}: cannot read it ({exc.strerror or exc})")
            continue
        suffix = src.suffix.lower() if src.suffix.lower() in WORKFLOW_SUFFIXES else ".json"
        stem = src.stem
        try:
            wf = load_workflow(data, catalog=catalog, source=str(src))
            if wf.format == "v1" and wf.name:
                stem = wf.name  # the document names itself; the copy keeps that name
        except WorkflowFormatError as exc:
            errors.append(exc.message)
            continue
        except WorkflowError:
            pass  # readable, but needs the server (UI format without a catalog, unknown nodes): keep it
        target = unique_path(folder, safe_stem(stem), suffix)
        target.write_bytes(data)
        added.append(target)
    return added, errors


class LibraryModel(QObject):
    """Every workflow the user can pick, and the one picked."""

    entries_changed = Signal(object)  # list[LibraryEntry]
    current_changed = Signal(object)  # CurrentWorkflow | None
    message_changed = Signal(str)  # a short note for the status bar (files added, refused...)
    renamed = Signal(str, str)  # old key, new key (settings follow the workflow)

    def __init__(self, tasks: TaskRunner, library_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self.library_dir = library_dir
        self._samples_dir: Path | None = None
        self._catalog: NodeCatalog | None = None
        self._backend: Backend | None = None
        self._local: list[LibraryEntry] = []
        self._samples: list[LibraryEntry] = []
        self._server: list[LibraryEntry] = []
        self._entries: list[LibraryEntry] = []
        self._wanted: str | None = None
        self._current: CurrentWorkflow | None = None
        self._opened = OpenedCache()  # the local workflows opened last, for going back to them
        self._scan_generation = 0
        self._load_generation = 0
        self._list_generation = 0
        #: The entries' thumbnails (latest result, else the file's own image), once `attach_thumbnails`.
        self.thumbnails: LibraryThumbnails | None = None

    # -- read access -------------------------------------------------------------------------------
    @property
    def entries(self) -> list[LibraryEntry]:
        return list(self._entries)

    def entry(self, key: str) -> LibraryEntry | None:
        return next((e for e in self._entries if e.key == key), None)

    @property
    def current(self) -> CurrentWorkflow | None:
        return self._current

    @property
    def selected_key(self) -> str | None:
        return self._wanted

    # -- inputs from the rest of the app -----------------------------------------------------------
    def set_catalog(self, catalog: NodeCatalog | None) -> None:
        self._catalog = catalog
        self._opened.clear()  # forms of the catalog replaced: never shown again
        self.refresh(recheck_server=True)
        if self._wanted is not None:
            self._load_current()

    def set_backend(self, backend: Backend | None) -> None:
        self._backend = backend
        if backend is None:
            return  # keep showing the server's entries while reconnecting
        self._tasks.start(self._list_server(backend), what="Listing the server's workflows")

    def refresh_server(self) -> None:
        """List the server's workflows again (after one was published, changed or deleted)."""
        if self._backend is not None:
            self._tasks.start(self._list_server(self._backend), what="Listing the server's workflows")

    def set_samples_dir(self, folder: Path | None) -> None:
        """List the sample workflows of this folder (the demo engine's), or none."""
        if folder == self._samples_dir:
            return
        self._samples_dir = folder
        self.refresh()

    def attach_thumbnails(self, thumbnails: LibraryThumbnails) -> None:
        """Give the entries thumbnails; they follow the entries from now on."""
        self.thumbnails = thumbnails
        self.entries_changed.connect(thumbnails.set_entries)
        thumbnails.set_entries(self.entries)

    def close(self) -> None:
        """Stop making thumbnails (the app quits)."""
        if self.thumbnails is not None:
            self.thumbnails.close()

    # -- slots -------------------------------------------------------------------------------------
    def refresh(self, *, recheck_server: bool = False) -> None:
        """Rescan local files (and samples), recompute problems; in the background."""
        self._scan_generation += 1
        self._tasks.start(
            self._scan(self._scan_generation, recheck_server), what="Reading the workflow library"
        )

    def select(self, key: str | None) -> None:
        """Load `key` and build its form (when the catalog is there)."""
        if key == self._wanted and self._current is not None and self._current.key == key:
            return
        self._wanted = key
        self._load_current()

    def reload_current(self) -> None:
        self._load_current()

    def add_files(self, paths: list[Path]) -> None:
        """Copy workflow files (API/UI JSON, PNG/WebP carrying one) into the library; select the first."""
        self._tasks.start(self._add(list(paths)), what="Adding workflows")

    def rename(self, key: str, new_name: str) -> None:
        self._tasks.start(self._rename(key, new_name), what="Renaming the workflow")

    def duplicate(self, key: str) -> None:
        self._tasks.start(self._duplicate(key), what="Duplicating the workflow")

    def delete(self, key: str) -> None:
        self._tasks.start(self._delete(key), what="Deleting the workflow")

    def reveal(self, key: str | None = None) -> None:
        """Open the folder holding the workflow (the library folder for non-local entries)."""
        entry = self.entry(key) if key else None
        folder = entry.path.parent if entry is not None and entry.path is not None else self.library_dir
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # -- internals ---------------------------------------------------------------------------------
    def _publish(self) -> None:
        entries = [*self._local, *self._server, *self._samples]
        if entries != self._entries:
            self._entries = entries
            self.entries_changed.emit(list(entries))
        if self._current is not None:
            fresh = self.entry(self._current.key)
            if fresh is not None and fresh != self._current.entry:
                self._current = replace(self._current, entry=fresh)

    async def _scan(self, generation: int, recheck_server: bool = False) -> None:
        catalog = self._catalog
        local = await asyncio.to_thread(_scan_local, self.library_dir, "local", catalog)
        samples: list[LibraryEntry] = []
        if self._samples_dir is not None:
            samples = await asyncio.to_thread(_scan_local, self._samples_dir, "sample", catalog)
        if generation != self._scan_generation:
            return
        self._local, self._samples = local, samples
        if recheck_server:
            server = await self._check_server(self._server)
            if generation != self._scan_generation:
                return
            self._server = server
        self._publish()
        if self._wanted is not None and (self._current is None or self._current.key != self._wanted):
            self._load_current()

    async def _list_server(self, backend: Backend) -> None:
        self._list_generation += 1
        generation = self._list_generation
        try:
            summaries = await backend.list_workflows()
        except Exception as exc:
            if backend is not self._backend or generation != self._list_generation:
                log.debug("a replaced connection's workflow list failed: %s", exc)
                return  # the user moved on to another server (its client may be closed under us)
            if isinstance(exc, AuthenticationError) or not isinstance(exc, ComfyDeskError):
                raise  # the user has to act on this one: it takes the road to the screen
            log.info("cannot list the server's workflows: %s", exc)
            summaries = None
        if backend is not self._backend or generation != self._list_generation:
            return  # a newer listing (after a publish, a reconnect) answers instead
        server = await self._check_server([self._summary_entry(s) for s in summaries or []])
        if generation != self._list_generation:
            return
        self._server = server
        self._publish()
        if self._wanted is not None and self._wanted.split(":", 1)[0] in ("server", "template"):
            if summaries is not None and self.entry(self._wanted) is None:  # deleted on the server
                self._wanted = None
                self._set_current(None)
            else:
                self._load_current()

    @staticmethod
    def _summary_entry(s: WorkflowSummary) -> LibraryEntry:
        source = "template" if s.source == "template" else "server"
        return LibraryEntry(
            f"{source}:{s.id}", s.name, source, s.description, workflow_id=s.id, origin=s.source
        )

    async def _check_server(self, entries: list[LibraryEntry]) -> list[LibraryEntry]:
        backend, catalog = self._backend, self._catalog
        if backend is None or catalog is None:
            return entries
        checked: list[LibraryEntry] = []
        for entry in entries:
            try:
                wf = await self._fetch(backend, entry, catalog)
            except UnknownNodeTypeError as exc:
                checked.append(replace(entry, problems=(exc.message,), error=""))
                continue
            except ComfyDeskError as exc:
                checked.append(replace(entry, error=exc.message))
                continue
            except Exception:
                if backend is not self._backend:
                    return entries  # connected elsewhere meanwhile (this client closed): nothing to check
                raise
            desc = entry.description or wf.description
            checked.append(replace(entry, description=desc, problems=workflow_problems(wf.graph, catalog)))
        return checked

    @staticmethod
    async def _fetch(backend: Backend, entry: LibraryEntry, catalog: NodeCatalog | None) -> Workflow:
        assert entry.workflow_id is not None
        doc = await backend.get_workflow(entry.workflow_id)
        return load_workflow(doc, name=entry.name, catalog=catalog, source=entry.name)

    def _load_current(self) -> None:
        self._load_generation += 1
        key = self._wanted
        if key is None:
            self._set_current(None)
            return
        entry = self.entry(key)
        if entry is None:
            return  # not listed yet: loaded when the scan or the server list brings it
        known = self._opened.get(key)
        if known is not None and known.entry == entry and known.catalog is self._catalog:
            # Opened a moment ago: shown at once; _load then checks that the file is unchanged (and shows
            # it again, read anew, if it is not).
            self._set_current(known.result)
        self._tasks.start(self._load(entry, self._load_generation), what=f"Opening {entry.name}")

    async def _load(self, entry: LibraryEntry, generation: int) -> None:
        catalog = self._catalog
        result: CurrentWorkflow
        try:
            if entry.path is not None:
                # Read, convert, check against the server and build the form in one trip to a worker:
                # nothing of it needs the UI thread, and each trip waits for a turn of the event loop.
                # A file opened a moment ago and unchanged since comes from the cache.
                known = self._opened.get(entry.key)
                result, opened = await asyncio.to_thread(open_local, entry, catalog, known)
                if opened is not None and opened is not known:
                    self._opened.put(opened)
            elif self._backend is not None:
                assert entry.workflow_id is not None
                doc = await self._backend.get_workflow(entry.workflow_id)
                result = await asyncio.to_thread(open_document, entry, doc, catalog)
            else:
                raise WorkflowError("connect to the server to open its workflows", source=entry.name)
        except ComfyDeskError as exc:
            result = failed(entry, catalog, exc)
        if generation == self._load_generation:
            self._set_current(result)

    def _set_current(self, current: CurrentWorkflow | None) -> None:
        if current != self._current:
            self._current = current
            self.current_changed.emit(current)

    async def _add(self, paths: list[Path]) -> None:
        added, errors = await asyncio.to_thread(_import_files, paths, self.library_dir, self._catalog)
        if errors:
            raise WorkflowFormatError("; ".join(errors), hint="Only ComfyUI workflows can be added.")
        self.message_changed.emit(f"Added {len(added)} workflow{'s' if len(added) != 1 else ''}")
        await self._scan(self._scan_generation)
        if added:
            self.select(f"local:{added[0].name}")

    def _local_path(self, key: str) -> Path:
        entry = self.entry(key)
        if entry is None or entry.path is None or not entry.editable:
            raise WorkflowError("only workflows in the local library can be changed", source=key)
        return entry.path

    async def _rename(self, key: str, new_name: str) -> Path:
        path = self._local_path(key)
        stem = safe_stem(new_name)
        if stem == path.stem:
            return path
        target = unique_path(path.parent, stem, path.suffix)
        await asyncio.to_thread(path.rename, target)
        new_key = f"local:{target.name}"
        if self._wanted == key:
            self._wanted = new_key
        self.renamed.emit(key, new_key)
        await self._scan(self._scan_generation)
        return target

    async def _duplicate(self, key: str) -> None:
        entry = self.entry(key)
        if entry is None or entry.path is None:
            raise WorkflowError("this workflow has no file to copy", source=key)
        stem = safe_stem(f"{entry.name} copy")
        target = unique_path(self.library_dir, stem, entry.path.suffix)
        await asyncio.to_thread(shutil.copyfile, entry.path, target)
        await self._scan(self._scan_generation)
        self.select(f"local:{target.name}")

    async def _delete(self, key: str) -> None:
        path = self._local_path(key)
        await asyncio.to_thread(path.unlink, True)
        if self._wanted == key:
            self._wanted = None
            self._set_current(None)
        await self._scan(self._scan_generation)
