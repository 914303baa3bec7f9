"""What the user does with results: save as, copy, drag out, reveal, open, delete (undo), star, re-run, use as
input.

Every disk and journal access runs off the UI thread (the journal's worker, `asyncio.to_thread`, Qt's thread
pool). Saved files carry the metadata ComfyUI writes (`comfydesk.core.savemeta`), so ComfyUI's frontend opens
them with their graph and comfydesk restores their form values too.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QMimeData, QObject, QProcess, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage, QUndoCommand, QUndoStack

from comfydesk.app.images import decode_image
from comfydesk.app.library import CurrentWorkflow, LibraryModel, safe_stem, unique_path
from comfydesk.app.media import media_class
from comfydesk.app.tasks import TaskRunner
from comfydesk.core.errors import ComfyDeskError, UnsafeInputError, WorkflowFormatError
from comfydesk.core.graph import is_link
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.pngmeta import PNG_SIGNATURE, read_embedded_workflow
from comfydesk.core.savemeta import embed_png, exif_strings, patch_ui_widgets
from comfydesk.core.templates import FieldKind, FormSpec, SeedControl
from comfydesk.store.atomic import atomic_write_bytes, json_bytes
from comfydesk.store.journal import OutputRecord, RunRecord

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "SAVE_FORMATS",
    "FormTarget",
    "GalleryActions",
    "comfydesk_meta",
    "export_bytes",
    "run_values",
    "suggested_name",
]

log = logging.getLogger(__name__)
SAVE_FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}


def suggested_name(record: OutputRecord, suffix: str = ".png") -> str:
    """A file name for a saved copy: workflow, seed and output id ("Portrait-1234-17.png")."""
    parts = [safe_stem(record.workflow_name or "comfydesk")]
    if record.seed is not None:
        parts.append(str(record.seed))
    parts.append(str(record.id))
    return "-".join(parts) + suffix


def comfydesk_meta(run: RunRecord) -> dict[str, Any]:
    """The `comfydesk` chunk: what restores the form (values, seed) beyond the graph ComfyUI reads."""
    return {
        "version": 1,
        "workflow_name": run.workflow_name,
        "workflow_id": run.workflow_id,
        "values": run.values,
        "seed": run.seed,
        "server": run.server,
        "created_at": run.created_at,
    }


def _open_pillow(data: bytes) -> Image.Image:
    from PIL import Image  # imported when first needed, not at start-up

    decode_image(data, max_size=(1, 1))  # the bomb guard and a full decode test, cheaply scaled
    return Image.open(io.BytesIO(data))


def export_bytes(
    data: bytes, suffix: str, run: RunRecord | None, *, catalog: NodeCatalog | None = None
) -> bytes:
    """`data` (an output's file) as `suffix` with ComfyUI's metadata and comfydesk's values; blocking.

    With a `catalog`, the run's UI graph gets the widget values the run sent (the seed used...), so
    ComfyUI's frontend shows the settings that made the image rather than the workflow file's."""
    fmt = SAVE_FORMATS.get(suffix.lower())
    if fmt is None:
        raise ComfyDeskError(
            f"cannot save as {suffix or 'a file without extension'}", hint="Use .png, .webp or .jpg."
        )
    embedded: dict[str, Any] = {}
    with contextlib.suppress(WorkflowFormatError):
        embedded = read_embedded_workflow(data)
    prompt = (run.api_graph if run is not None and run.api_graph else None) or embedded.get("prompt")
    workflow = (run.ui_graph if run is not None else None) or embedded.get("workflow")
    if run is not None and run.ui_graph and prompt and catalog is not None:
        workflow, _changed = patch_ui_widgets(run.ui_graph, prompt, catalog)
    meta = comfydesk_meta(run) if run is not None else None
    if fmt == "PNG":
        png = data if data.startswith(PNG_SIGNATURE) else _encode(data, "PNG", {})
        return embed_png(png, prompt=prompt, workflow=workflow, comfydesk=meta)
    return _encode(data, fmt, exif_strings(prompt=prompt, workflow=workflow, comfydesk=meta))


def _encode(data: bytes, fmt: str, exif_values: Mapping[int, str]) -> bytes:
    try:
        image = _open_pillow(data)
    except UnsafeInputError:
        raise
    with image:
        image.load()
        if fmt == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        elif image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA")
        from PIL import Image

        exif = Image.Exif()
        for tag, text in exif_values.items():
            exif[tag] = text
        out = io.BytesIO()
        options: dict[str, Any] = {"exif": exif.tobytes()} if exif_values else {}
        if fmt == "JPEG":
            options.update(quality=95)
        elif fmt == "WEBP":
            options.update(lossless=True, quality=80, method=4)  # ComfyUI's SaveAnimatedWEBP defaults
        image.save(out, fmt, **options)
        return out.getvalue()


# ------------------------------------------------------------------------------------------------ actions


class JournalPort(Protocol):
    async def run(self, run_id: int) -> RunRecord | None: ...
    async def star(self, ids: Sequence[int], on: bool) -> None: ...
    async def delete(self, ids: Sequence[int]) -> list[int]: ...
    async def undo_delete(self, ids: Sequence[int]) -> None: ...
    async def import_folder(self, folder: Path) -> int: ...


class FormTarget(Protocol):
    """What the actions need of the form (the FormView)."""

    def spec(self) -> FormSpec | None: ...
    def values(self) -> dict[str, Any]: ...
    def set_value(self, key: str, value: Any) -> None: ...
    def set_seed_control(self, key: str, control: SeedControl) -> None: ...


class _DeleteCommand(QUndoCommand):
    def __init__(self, actions: GalleryActions, ids: list[int], text: str) -> None:
        super().__init__(text)
        self._actions, self._ids = actions, ids

    def redo(self) -> None:
        self._actions._start(self._actions._delete(self._ids), "Deleting results")

    def undo(self) -> None:
        self._actions._start(self._actions._undelete(self._ids), "Restoring results")


class GalleryActions(QObject):
    """The actions on results; the ui wraps them in QActions (`comfydesk.ui.viewer_actions`)."""

    message_changed = Signal(str)
    run_loaded = Signal(object)  # RunRecord
    values_restored = Signal(object)  # dict: the form's values after a re-run / use as input / open
    saved = Signal(object)  # Path
    deleted = Signal(object)  # list[int]
    restored = Signal(object)  # list[int]

    def __init__(
        self,
        tasks: TaskRunner,
        journal: JournalPort | None,
        *,
        library: LibraryModel | None = None,
        form: FormTarget | None = None,
        memory: Any = None,
        catalog: Callable[[], NodeCatalog | None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._catalog = catalog
        self._tasks = tasks
        self._journal = journal
        self._library = library
        self._form = form
        self._memory = memory
        self.undo_stack = QUndoStack(self)

    def bind_form(self, form: FormTarget | None) -> None:
        self._form = form

    def _start(self, coro: Any, what: str) -> asyncio.Task[Any]:
        return self._tasks.start(coro, what=what)

    def _require_journal(self) -> JournalPort:
        if self._journal is None:
            raise ComfyDeskError("the run journal is not open")
        return self._journal

    # -- reading -----------------------------------------------------------------------------------
    def fetch_run(self, run_id: int) -> None:
        """Read a run from the journal; `run_loaded` answers."""
        self._start(self._fetch_run(run_id), "Reading the run")

    async def _fetch_run(self, run_id: int) -> RunRecord | None:
        if self._journal is None:
            return None
        run = await self._journal.run(run_id)
        if run is not None:
            self.run_loaded.emit(run)
        return run

    # -- files -------------------------------------------------------------------------------------
    def save_as(self, record: OutputRecord, target: Path) -> asyncio.Task[Any]:
        """Write a copy of the output at `target` (.png/.webp/.jpg) with the run's metadata."""
        return self._start(self._save_as(record, target), f"Saving {target.name}")

    async def _save_as(self, record: OutputRecord, target: Path) -> Path:
        if record.path is None:
            if record.text is None:
                raise ComfyDeskError("this output has no file to save")
            await asyncio.to_thread(atomic_write_bytes, target, record.text.encode("utf-8"))
        else:
            run = await self._journal.run(record.run_id) if self._journal is not None else None
            source = record.path
            catalog = self._catalog() if self._catalog is not None else None
            if target.suffix.lower() in SAVE_FORMATS and media_class(record) == "image":
                data = await asyncio.to_thread(
                    lambda: export_bytes(source.read_bytes(), target.suffix, run, catalog=catalog)
                )
            else:
                data = await asyncio.to_thread(source.read_bytes)
            await asyncio.to_thread(atomic_write_bytes, target, data)
        self.saved.emit(target)
        self.message_changed.emit(f"Saved {target}")
        return target

    def copy(self, record: OutputRecord, image: QImage | None = None) -> None:
        """The image (and its file) to the clipboard; decoded off the UI thread unless `image` is given."""
        if image is not None and not image.isNull():
            self._set_clipboard(record, image)
        else:
            self._start(self._copy(record), "Copying the image")

    async def _copy(self, record: OutputRecord) -> None:
        if record.path is None:
            mime = QMimeData()
            mime.setText(record.text or "")
            QGuiApplication.clipboard().setMimeData(mime)
            return
        path = record.path
        image = await asyncio.to_thread(lambda: decode_image(path.read_bytes()))
        self._set_clipboard(record, image)

    def _set_clipboard(self, record: OutputRecord, image: QImage) -> None:
        QGuiApplication.clipboard().setMimeData(self.mime_data([record], image))
        self.message_changed.emit("Image copied")

    def mime_data(self, records: Sequence[OutputRecord], image: QImage | None = None) -> QMimeData:
        """For the clipboard and for dragging out: the files' URLs, and the image when one is decoded."""
        mime = QMimeData()
        urls = [QUrl.fromLocalFile(str(r.path)) for r in records if r.path is not None]
        if urls:
            mime.setUrls(urls)
        if image is not None and not image.isNull():
            mime.setImageData(image)
        texts = [r.text for r in records if r.text]
        if texts:
            mime.setText("\n\n".join(t for t in texts if t))
        return mime

    def import_folder(self, folder: Path) -> asyncio.Task[Any]:
        """Bring a folder of ComfyUI outputs (PNGs with their workflow) into the gallery."""
        return self._start(self._import_folder(folder), "Importing ComfyUI outputs")

    async def _import_folder(self, folder: Path) -> int:
        count = await self._require_journal().import_folder(folder)
        found = f"{count} image{'s' if count != 1 else ''}" if count else "no new images"
        self.message_changed.emit(f"Imported {found} from {folder}")
        return count

    def reveal(self, record: OutputRecord) -> None:
        """Show the file in the system's file manager (selected where the platform allows)."""
        if record.path is None:
            return
        path = record.path
        if sys.platform == "win32":
            QProcess.startDetached("explorer", ["/select,", str(path)])
        elif sys.platform == "darwin":
            QProcess.startDetached("open", ["-R", str(path)])
        else:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def open_external(self, record: OutputRecord) -> None:
        """Open the file with the system's application (video and audio players)."""
        if record.path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(record.path)))

    # -- journal -----------------------------------------------------------------------------------
    def delete(self, records: Sequence[OutputRecord]) -> None:
        """Soft-delete in the journal; Ctrl+Z (the undo stack) brings them back while the app runs."""
        ids = [r.id for r in records]
        if ids:
            n = len(ids)
            self.undo_stack.push(_DeleteCommand(self, ids, f"Delete {n} result{'s' if n != 1 else ''}"))

    async def _delete(self, ids: list[int]) -> None:
        gone = await self._require_journal().delete(ids)
        self.deleted.emit(list(gone))
        n = len(gone)
        self.message_changed.emit(f"Deleted {n} result{'s' if n != 1 else ''} (Ctrl+Z to undo)")

    async def _undelete(self, ids: list[int]) -> None:
        await self._require_journal().undo_delete(ids)
        self.restored.emit(list(ids))
        self.message_changed.emit(f"Restored {len(ids)} result{'s' if len(ids) != 1 else ''}")

    def star(self, records: Sequence[OutputRecord], on: bool | None = None) -> None:
        """Star (or, when all are starred and `on` is None, unstar) the outputs."""
        if not records:
            return
        value = (not all(r.starred for r in records)) if on is None else on
        ids = [r.id for r in records]
        self._start(self._require_journal().star(ids, value), "Starring results")

    # -- into the form -----------------------------------------------------------------------------
    def image_fields(self) -> list[tuple[str, str]]:
        """(key, label) of the current form's image fields."""
        spec = self._form.spec() if self._form is not None else None
        return [(f.key, f.label) for f in spec.fields() if f.kind is FieldKind.IMAGE] if spec else []

    def use_as_input(self, record: OutputRecord, key: str | None = None) -> None:
        """Put the output's file into an image field of the current form (the first one unless `key`)."""
        fields = [k for k, _label in self.image_fields()]
        if self._form is None or record.path is None or not fields:
            self.message_changed.emit("The current workflow has no image input")
            return
        target = key if key in fields else fields[0]
        self._form.set_value(target, record.path)
        self.values_restored.emit(self._form.values())
        self.message_changed.emit(f"Using {record.path.name} as input")

    def rerun(self, record: OutputRecord) -> asyncio.Task[Any]:
        """The run's workflow and values back into the form, the seed as it was and fixed."""
        return self._start(self._rerun(record), "Restoring the run")

    async def _rerun(self, record: OutputRecord) -> None:
        run = await self._require_journal().run(record.run_id)
        if run is None:
            raise ComfyDeskError("this run is no longer in the journal")
        library = self._library
        if library is None:
            raise ComfyDeskError("no workflow library")
        key = self._library_key(run)
        if key is None:
            key = await self._add_to_library(run)
        current = await self._select(key)
        if current.spec is None:
            raise ComfyDeskError(current.error or "the workflow cannot be shown", hint="Connect to a server.")
        self.apply_run(run, current.spec, fixed=True)
        if self._memory is not None:
            controls = {
                f.key: str(SeedControl.FIXED) for f in current.spec.fields() if f.kind is FieldKind.SEED
            }
            self._memory.remember(key, seed_controls=controls)
        self.message_changed.emit(f"{run.workflow_name}: values of the run restored, seed fixed")

    def _library_key(self, run: RunRecord) -> str | None:
        assert self._library is not None
        entries = self._library.entries
        if run.workflow_id:
            if self._library.entry(run.workflow_id) is not None:
                return run.workflow_id
            by_id = next((e for e in entries if e.workflow_id == run.workflow_id), None)
            if by_id is not None:
                return by_id.key
        by_name = next((e for e in entries if e.name == run.workflow_name and not e.error), None)
        return by_name.key if by_name is not None else None

    async def _add_to_library(self, run: RunRecord) -> str:
        """A run whose workflow is not in the library any more: its graph becomes a local workflow."""
        assert self._library is not None
        folder = self._library.library_dir
        doc = run.ui_graph or run.api_graph
        stem = safe_stem(run.workflow_name or "Re-run")

        def write() -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            target = unique_path(folder, stem, ".json")
            atomic_write_bytes(target, json_bytes(doc))
            return target

        path = await asyncio.to_thread(write)
        self._library.refresh()
        return f"local:{path.name}"

    async def _select(self, key: str, timeout: float = 30.0) -> CurrentWorkflow:
        library = self._library
        assert library is not None
        form = self._form

        def ready() -> CurrentWorkflow | None:
            cur = library.current
            if cur is None or cur.key != key:
                return None
            if cur.spec is not None and form is not None and form.spec() is not cur.spec:
                return None  # the window has not shown it yet
            return cur if cur.spec is not None or cur.error else None

        if (cur := ready()) is not None:
            return cur
        done: asyncio.Future[CurrentWorkflow] = asyncio.get_running_loop().create_future()

        def changed(_current: object) -> None:
            found = ready()
            if found is not None and not done.done():
                done.set_result(found)

        library.current_changed.connect(changed)
        try:
            library.select(key)
            changed(None)
            return await asyncio.wait_for(done, timeout)
        finally:
            library.current_changed.disconnect(changed)

    def apply_run(self, run: RunRecord, spec: FormSpec, *, fixed: bool) -> None:
        """Set the form's fields from the run: what the graph got for images and seeds, else the values."""
        form = self._form
        if form is None:
            return
        for key, value in run_values(run, spec).items():
            form.set_value(key, value)
        if fixed:
            for f in spec.fields():
                if f.kind is FieldKind.SEED:
                    form.set_seed_control(f.key, SeedControl.FIXED)
        self.values_restored.emit(form.values())

    def apply_embedded(self, current: CurrentWorkflow) -> bool:
        """An opened image's comfydesk values into the form, once (when nothing is remembered for it)."""
        values = current.embedded_values
        form = self._form
        if not values or form is None or current.spec is None or form.spec() is not current.spec:
            return False
        if self._memory is not None and self._memory.prefs(current.key).values:
            return False
        keys = {f.key for f in current.spec.fields()}
        for key, value in values.items():
            if key in keys and not isinstance(value, dict | list):
                form.set_value(key, value)
        self.values_restored.emit(form.values())
        return True


def run_values(run: RunRecord, spec: FormSpec) -> dict[str, Any]:
    """The value of each field of `spec` in `run`: images and seeds as sent (the graph), else the form's."""
    out: dict[str, Any] = {}
    first_seed = True
    for f in spec.fields():
        sent: Any = None
        node = run.api_graph.get(f.node_id or "") if f.node_id else None
        if isinstance(node, dict) and f.input_name is not None:
            raw = (node.get("inputs") or {}).get(f.input_name)
            sent = None if is_link(raw) else raw
        if f.kind in (FieldKind.IMAGE, FieldKind.SEED) and sent is not None:
            out[f.key] = sent
        elif f.key in run.values and not isinstance(run.values[f.key], dict | list):
            out[f.key] = run.values[f.key]
        elif sent is not None:
            out[f.key] = sent
        if f.kind is FieldKind.SEED and first_seed and f.key not in out and run.seed is not None:
            out[f.key] = run.seed
        first_seed = first_seed and f.kind is not FieldKind.SEED
    return out
