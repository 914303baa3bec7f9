"""The template browser's state: the server's template catalogue, its thumbnails, filters, and "runs here".

`TemplateCatalogModel` loads `/templates/index.json` through the connected ComfyUI backend (a TaskRunner task)
and publishes it with `catalog_changed`. Thumbnails are asked for by name (`request_thumbnail`): read from the
disk cache (`<cache_dir>/<server>/<name>.webp`, one folder per server URL) or fetched from the server and
written there, then decoded to a QImage off the UI thread; `thumbnail_ready(name)` follows.

"Runs on this server" is judged from the template's own UI file (fetched once per template per connection,
`check_runnable`): every node type it uses (subgraph instances and frontend-only nodes such as notes aside)
is in the node catalog, and every model of its `properties.models` is installed. The backends offer no model
list, so "installed" means the file name is among the choices of some combo input of the node catalog: the
loader nodes (CheckpointLoaderSimple, LoraLoader, VAELoader, ...) list exactly the files of their folders.
Templates not checked yet count as not runnable while the filter is on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from comfydesk.app.library import LibraryModel, safe_stem, unique_path
from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import Backend
from comfydesk.backends.comfyui_templates import TemplateCategory, TemplateInfo, template_requirements
from comfydesk.core.nodes import NodeCatalog

__all__ = ["Runnable", "TemplateCatalogModel", "TemplateFilter", "installed_models"]

MAX_FETCHES = 4  # thumbnails and template files fetched at once


def installed_models(catalog: NodeCatalog) -> frozenset[str]:
    """Every string choice of every combo input: the model files the loader nodes offer (see module doc)."""
    out: set[str] = set()
    for node in catalog.values():
        for spec in node.inputs:
            if spec.choices:
                out.update(c for c in spec.choices if isinstance(c, str))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Runnable:
    """Whether a template runs here, and what it lacks."""

    missing_nodes: tuple[str, ...] = ()
    missing_models: tuple[str, ...] = ()  # "folder/file"
    error: str = ""  # the template file could not be read

    @property
    def ok(self) -> bool:
        return not (self.missing_nodes or self.missing_models or self.error)


@dataclass(frozen=True, slots=True)
class TemplateFilter:
    search: str = ""
    category: str = ""  # a category title; "" for all
    media_type: str = ""  # image, video, audio, 3d; "" for all
    runs_here: bool = False


class TemplateCatalogModel(QObject):
    """See the module docstring."""

    catalog_changed = Signal(object)  # list[TemplateCategory]
    loading_changed = Signal(bool)
    thumbnail_ready = Signal(str)  # template name
    runnable_changed = Signal(str)  # template name
    saved = Signal(str)  # library key of a template saved locally

    def __init__(self, tasks: TaskRunner, cache_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self.cache_root = Path(cache_dir)
        self._backend: Backend | None = None
        self._server = ""
        self._catalog: NodeCatalog | None = None
        self._categories: list[TemplateCategory] = []
        self._thumbs: dict[str, QImage] = {}
        self._asked: set[str] = set()
        self._runnable: dict[str, Runnable] = {}
        self._checking: set[str] = set()
        self._generation = 0
        self._loading = False
        self._wanted = False  # the catalogue was asked for: load it again on each new connection
        self._limit: asyncio.Semaphore | None = None

    # -- inputs -------------------------------------------------------------------------------------
    def set_backend(self, backend: Backend | None, server: str = "") -> None:
        """A new connection: forget what the old server said (its disk thumbnails stay)."""
        if backend is self._backend:
            return
        self._backend = backend
        self._server = server or (getattr(backend, "url", "") if backend is not None else "")
        self._generation += 1
        self._categories = []
        self._thumbs.clear()
        self._asked.clear()
        self._runnable.clear()
        self._checking.clear()
        self._set_loading(False)
        self.catalog_changed.emit([])
        if backend is not None and self._wanted:
            self.reload()

    def set_catalog(self, catalog: NodeCatalog | None) -> None:
        if catalog is not self._catalog:
            self._catalog = catalog
            self._runnable.clear()
            self._checking.clear()

    # -- queries ------------------------------------------------------------------------------------
    @property
    def categories(self) -> list[TemplateCategory]:
        return list(self._categories)

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def cache_dir(self) -> Path:
        """This server's thumbnail folder."""
        return self.cache_root / hashlib.sha256(self._server.encode()).hexdigest()[:16]

    def templates(self) -> list[TemplateInfo]:
        """Every template once (a template may sit in two categories), in catalogue order."""
        seen: dict[str, TemplateInfo] = {}
        for category in self._categories:
            for tpl in category.templates:
                seen.setdefault(tpl.name, tpl)
        return list(seen.values())

    def template(self, name: str) -> TemplateInfo | None:
        return next((t for t in self.templates() if t.name == name), None)

    def media_types(self) -> list[str]:
        return sorted({t.media_type for t in self.templates() if t.media_type})

    def filtered(self, flt: TemplateFilter) -> list[TemplateInfo]:
        """The templates matching every word of the search (title, description, tags, models) and filters."""
        if flt.category:
            pool = [t for c in self._categories if c.title == flt.category for t in c.templates]
        else:
            pool = self.templates()
        words = flt.search.lower().split()
        out = []
        for tpl in pool:
            if flt.media_type and tpl.media_type != flt.media_type:
                continue
            if words and not all(w in tpl.text() for w in words):
                continue
            if flt.runs_here:
                verdict = self._runnable.get(tpl.name)
                if verdict is None or not verdict.ok:
                    continue
            out.append(tpl)
        return out

    def runnable(self, name: str) -> Runnable | None:
        """The verdict for `name`, None until checked."""
        return self._runnable.get(name)

    def thumbnail(self, name: str) -> QImage | None:
        return self._thumbs.get(name)

    # -- work ---------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Load the catalogue of the connected server (empty for servers without one), and on reconnects."""
        self._wanted = True
        backend = self._backend
        if backend is None:
            return
        self._set_loading(True)
        self._tasks.start(
            self._load(backend, self._generation),
            what="Loading the template catalogue",
            on_error=self._failed,
        )

    def request_thumbnail(self, name: str) -> None:
        """Load `name`'s thumbnail (disk cache, else the server); `thumbnail_ready(name)` when there."""
        if name in self._asked or self._backend is None:
            return
        self._asked.add(name)
        tpl = self.template(name)
        if tpl is not None and tpl.thumbnail_media != "image":
            return  # audio templates have an mp3 where the others have a picture
        ext = tpl.thumbnail_ext if tpl is not None else "webp"
        self._tasks.start(
            self._thumbnail(self._backend, name, ext, self._generation),
            what="Loading a template thumbnail",
            on_error=lambda _exc: None,  # a missing thumbnail is a blank tile, not an error to show
        )

    def check_runnable(self, names: list[str] | None = None) -> None:
        """Work out "runs on this server" for `names` (every template when None); `runnable_changed` each."""
        backend, catalog = self._backend, self._catalog
        if backend is None or catalog is None:
            return
        models = None
        for name in names if names is not None else [t.name for t in self.templates()]:
            if name in self._runnable or name in self._checking:
                continue
            self._checking.add(name)
            models = models if models is not None else installed_models(catalog)
            self._tasks.start(
                self._check(backend, catalog, models, name, self._generation),
                what="Checking a template",
                on_error=lambda _exc: None,
            )

    def save_to_library(self, name: str, library: LibraryModel) -> None:
        """Copy the template's file into the local library; `saved(key)` when written."""
        if self._backend is not None:
            self._tasks.start(self._save(self._backend, name, library), what="Saving the template")

    # -- coroutines ---------------------------------------------------------------------------------
    def _semaphore(self) -> asyncio.Semaphore:
        if self._limit is None:
            self._limit = asyncio.Semaphore(MAX_FETCHES)
        return self._limit

    async def _load(self, backend: Backend, generation: int) -> None:
        from comfydesk.backends.comfyui import ComfyUIBackend  # httpx: not needed for the first frame

        categories = await backend.template_catalog() if isinstance(backend, ComfyUIBackend) else []
        if generation != self._generation:
            return
        self._categories = categories
        self._set_loading(False)
        self.catalog_changed.emit(list(categories))

    def _failed(self, exc: BaseException) -> None:
        self._set_loading(False)
        self._tasks.errors.report_exception(exc, what="Loading the template catalogue")

    def _set_loading(self, loading: bool) -> None:
        if loading != self._loading:
            self._loading = loading
            self.loading_changed.emit(loading)

    async def _thumbnail(self, backend: Backend, name: str, ext: str, generation: int) -> None:
        from comfydesk.backends.comfyui import ComfyUIBackend

        path = self.cache_dir / f"{safe_stem(name)}.{safe_stem(ext)}"
        async with self._semaphore():
            data = await asyncio.to_thread(_read, path)
            if generation != self._generation:
                return  # that connection is gone: its client may be closed
            if data is None and isinstance(backend, ComfyUIBackend):
                data = await backend.fetch_template_thumbnail(name, ext=ext)
                if data is not None:
                    await asyncio.to_thread(_write, path, data)
        if data is None:
            return
        image = await asyncio.to_thread(_decode, data)
        if generation == self._generation and not image.isNull():
            self._thumbs[name] = image
            self.thumbnail_ready.emit(name)

    async def _check(
        self, backend: Backend, catalog: NodeCatalog, models: frozenset[str], name: str, generation: int
    ) -> None:
        try:
            async with self._semaphore():
                if generation != self._generation:
                    return
                doc = await backend.get_workflow(f"template:{name}")
            needs = template_requirements(doc)
            verdict = Runnable(
                missing_nodes=tuple(sorted(t for t in needs.node_types if t not in catalog)),
                missing_models=tuple(
                    sorted(f"{d}/{f}" if d else f for d, f in needs.models if f not in models)
                ),
            )
        except Exception as exc:  # a template file missing or broken: it does not run here
            verdict = Runnable(error=str(exc) or type(exc).__name__)
        if generation == self._generation:
            self._checking.discard(name)
            self._runnable[name] = verdict
            self.runnable_changed.emit(name)

    async def _save(self, backend: Backend, name: str, library: LibraryModel) -> None:
        doc = await backend.get_workflow(f"template:{name}")
        tpl = self.template(name)
        stem = safe_stem(tpl.title if tpl is not None else name)
        path = await asyncio.to_thread(_save_json, library.library_dir, stem, doc)
        key = f"local:{path.name}"
        library.refresh()
        self.saved.emit(key)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass  # only means it is fetched again next time


def _decode(data: bytes) -> QImage:
    image = QImage()
    image.loadFromData(data)
    return image


def _save_json(folder: Path, stem: str, doc: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = unique_path(folder, stem, ".json")
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path
