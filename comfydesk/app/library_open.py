"""The library's entries, and opening one: a local file or a server's document read, converted, checked
against the server's catalog and given its form, all in one call for a worker thread.

`OpenedCache` keeps the last local workflows opened, so that going back to one the user has just looked
at skips reading and converting the file again: an entry is used only while its file is unchanged (same
modification time, size and inode), the catalog is the same object and the entry is the same."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfydesk.core.errors import ComfyDeskError, WorkflowFormatError
from comfydesk.core.messages import for_exception
from comfydesk.core.missing import (
    WorkflowNeeds,
    build_partial_form,
    open_workflow,
    open_workflow_file,
    ui_document,
    workflow_needs,
)
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.savemeta import read_comfydesk
from comfydesk.core.templates import FormSpec
from comfydesk.core.workflow import Workflow, load_workflow, load_workflow_file

log = logging.getLogger(__name__)

__all__ = ["CurrentWorkflow", "LibraryEntry", "OpenedCache", "failed", "open_document", "open_local"]

#: How many opened local workflows are kept for going back to them.
KEEP_OPENED = 12


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """One workflow in the library. `key` is stable: "local:<file>", "server:<id>", "template:<id>"..."""

    key: str
    name: str
    source: str  # "local" | "server" | "template" | "sample"
    description: str = ""
    path: Path | None = None
    workflow_id: str | None = None
    problems: tuple[str, ...] = ()
    error: str = ""  # set when the workflow cannot be read at all
    origin: str = ""  # the server's word for a server entry: "userdata", "template" or "v1" (a gateway's)

    @property
    def editable(self) -> bool:
        return self.source == "local"

    @property
    def runs_on_server(self) -> bool:
        """A gateway's workflow: the server runs its stored graph, only its {placeholder}s are inputs."""
        return self.origin == "v1"

    @property
    def has_problems(self) -> bool:
        return bool(self.problems or self.error)


@dataclass(frozen=True, slots=True)
class CurrentWorkflow:
    """The selected workflow, loaded; `spec` is None (with `error`) when no form can be built yet."""

    entry: LibraryEntry
    workflow: Workflow | None
    spec: FormSpec | None
    #: Why there is no form, in plain words (no file path, no exception name); "" when there is one.
    error: str = ""
    #: The technical side of `error` (the file, the reader's own message), for a "Details" box or a report.
    error_details: str = ""
    #: Form values embedded by comfydesk in an opened image (its `comfydesk` metadata), None for the rest.
    embedded_values: Mapping[str, Any] | None = None
    #: What the workflow needs that the server lacks (node types, models...); None without a form.
    needs: WorkflowNeeds | None = None

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def runs_on_server(self) -> bool:
        return self.entry.runs_on_server


Stamp = tuple[int, int, int]  # st_mtime_ns, st_size, st_ino


@dataclass(frozen=True, slots=True)
class _Opened:
    entry: LibraryEntry
    catalog: NodeCatalog | None
    stamp: Stamp
    result: CurrentWorkflow


class OpenedCache:
    """The last local workflows opened (see the module's docstring). Read and written on the UI thread
    only: the record for a file is looked up there and handed to `open_local` on the worker (`known`),
    which returns a new one to put; a record is frozen and replaced whole."""

    def __init__(self, size: int = KEEP_OPENED) -> None:
        self._size = size
        self._items: OrderedDict[str, _Opened] = OrderedDict()

    def get(self, key: str) -> _Opened | None:
        return self._items.get(key)

    def put(self, opened: _Opened) -> None:
        self._items[opened.entry.key] = opened
        self._items.move_to_end(opened.entry.key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _embedded_values(path: Path) -> Mapping[str, Any] | None:
    """The form values comfydesk wrote into an image it saved (None for other files); blocking."""
    if path.suffix.lower() not in (".png", ".webp"):
        return None
    try:
        meta = read_comfydesk(path.read_bytes(), source=str(path))
    except (OSError, WorkflowFormatError) as exc:
        log.info("no comfydesk values in %s: %s", path.name, exc)
        return None
    values = meta.get("values") if meta else None
    return values if isinstance(values, dict) else None


def _open_file(entry: LibraryEntry, catalog: NodeCatalog | None) -> CurrentWorkflow:
    """A library file opened with its form (blocking: for a worker thread)."""
    assert entry.path is not None
    try:
        ui_doc: dict[str, Any] | None = None
        if catalog is not None:  # missing node types too: the form shows them read-only
            wf, ui_doc = open_workflow_file(entry.path, catalog)
        else:
            wf = load_workflow_file(entry.path, catalog=catalog)
        if entry.source == "local":
            wf.name = entry.name
        return _with_form(entry, wf, catalog, ui_doc, _embedded_values(entry.path))
    except ComfyDeskError as exc:
        return failed(entry, catalog, exc)


def open_document(entry: LibraryEntry, doc: Any, catalog: NodeCatalog | None) -> CurrentWorkflow:
    """A server's workflow document opened with its form (blocking: for a worker thread)."""
    try:
        if catalog is None:
            wf = load_workflow(doc, name=entry.name, catalog=catalog, source=entry.name)
            return _with_form(entry, wf, catalog, None, None)
        wf = open_workflow(doc, catalog=catalog, name=entry.name, source=entry.name)
        return _with_form(entry, wf, catalog, ui_document(doc), None)
    except ComfyDeskError as exc:
        return failed(entry, catalog, exc)


def _with_form(
    entry: LibraryEntry,
    wf: Workflow,
    catalog: NodeCatalog | None,
    ui_doc: dict[str, Any] | None,
    embedded: Mapping[str, Any] | None,
) -> CurrentWorkflow:
    if catalog is None:
        return CurrentWorkflow(entry, wf, None, "Connect to a server to see this workflow's form.")
    needs = workflow_needs(wf, catalog, ui_doc)
    spec = build_partial_form(wf, catalog, needs, ui_doc)
    return CurrentWorkflow(entry, wf, spec, embedded_values=embedded, needs=needs)


def failed(entry: LibraryEntry, catalog: NodeCatalog | None, exc: ComfyDeskError) -> CurrentWorkflow:
    wait = catalog is None and not isinstance(exc, WorkflowFormatError)
    message = for_exception(exc, what=f"Opening {entry.name}")
    text = "Connect to a server to see this workflow's form." if wait else message.text
    return CurrentWorkflow(entry, None, None, text, error_details=message.details)


def open_local(
    entry: LibraryEntry, catalog: NodeCatalog | None, known: _Opened | None
) -> tuple[CurrentWorkflow, _Opened | None]:
    """A library file opened with its form (blocking: for a worker thread): `known` (from an
    `OpenedCache`) when the file, the catalog and the entry are the same, else read anew. Returns the
    workflow and the record to keep (None for a file that could not be opened)."""
    assert entry.path is not None
    stamp = _stamp(entry.path)
    if known is not None and known.stamp == stamp and known.catalog is catalog and known.entry == entry:
        return known.result, known
    result = _open_file(entry, catalog)
    if stamp is None or result.workflow is None or (result.spec is None and catalog is not None):
        return result, None
    return result, _Opened(entry, catalog, stamp, result)
