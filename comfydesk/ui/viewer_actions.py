"""The QActions on results (for the gallery's context menu and the viewer), the viewer and compare windows,
and `install_gallery_actions(window, ctx)`, the one call that wires them into the main window.

Actions apply to the viewer's image when the focus is in a viewer, else to the gallery's selection. The work
behind each one is `comfydesk.app.gallery_actions.GalleryActions`; here are only dialogs and windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QStandardPaths, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from comfydesk.app.gallery_actions import GalleryActions, suggested_name
from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.media import MediaLoader, media_class
from comfydesk.store.journal import OutputRecord
from comfydesk.ui.viewer import ImageViewer

if TYPE_CHECKING:
    from comfydesk.ui.compare import CompareView

__all__ = ["GalleryActionSet", "install_gallery_actions"]

RECORD_ROLE = Qt.ItemDataRole.UserRole + 1
SAVE_FILTER = "PNG image (*.png);;WebP image (*.webp);;JPEG image (*.jpg *.jpeg)"


class GalleryActionSet(QObject):
    """QActions with their shortcuts, the viewer and compare windows, over one `GalleryActions`."""

    def __init__(self, actions: GalleryActions, parent_widget: QWidget, *, journal: Any = None) -> None:
        super().__init__(parent_widget)
        self.actions = actions
        self.parent_widget = parent_widget
        self.loader = MediaLoader(self)
        self.selection: list[OutputRecord] = []
        self.sequence_source: Callable[[], list[OutputRecord]] | None = None
        self.follow: Callable[[OutputRecord], object] | None = (
            None  # the gallery selects what the viewer shows
        )
        self.viewer: ImageViewer | None = None
        self.compare: CompareView | None = None
        self.dialog: QFileDialog | None = None
        self.last_folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)

        self.save_action = self._make("Save &as…", self.save_as, QKeySequence.StandardKey.Save, "Ctrl+S")
        self.copy_action = self._make("&Copy image", self.copy, QKeySequence.StandardKey.Copy, "Ctrl+C")
        self.delete_action = self._make("&Delete", self.delete, QKeySequence.StandardKey.Delete, "Del")
        self.star_action = self._make("&Star", self.star, "S")
        self.reveal_action = self._make("&Reveal in folder", self.reveal)
        self.open_action = self._make("&Open with the system player", self.open_external)
        self.rerun_action = self._make("Re-&run with these values", self.rerun, "Ctrl+Shift+R")
        self.use_input_action = self._make("Use as &input", self.use_as_input, "Ctrl+I")
        self.compare_action = self._make("Co&mpare", self.compare_selected)
        self.undo_action = actions.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts(_keys(QKeySequence.StandardKey.Undo, "Ctrl+Z"))
        self.undo_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.redo_action = actions.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts(_keys(QKeySequence.StandardKey.Redo, "Ctrl+Shift+Z"))
        self.redo_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        if journal is not None:
            journal.outputs_removed.connect(self._removed)
            journal.outputs_changed.connect(self._changed)
        actions.run_loaded.connect(self._run_loaded)
        app = QApplication.instance()
        if isinstance(app, QApplication):  # the targets follow the focus (gallery or viewer)
            app.focusChanged.connect(self._focus_changed)
        self._update_enabled()

    def _make(self, text: str, slot: Callable[[], None], *keys: str | QKeySequence.StandardKey) -> QAction:
        action = QAction(text, self)
        action.setShortcuts(_keys(*keys))
        if action.shortcuts():
            shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{text.replace('&', '').rstrip('…')} ({shortcut})")
        # Only where results have the focus: Ctrl+C and Delete mean other things in the form and the library.
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def menu_actions(self) -> list[QAction]:
        """For a context menu, in order, with separators."""
        out: list[QAction] = []
        groups = (
            [self.save_action, self.copy_action, self.reveal_action, self.open_action],
            [self.star_action, self.rerun_action, self.use_input_action, self.compare_action],
            [self.delete_action, self.undo_action],
        )
        for i, group in enumerate(groups):
            if i:
                separator = QAction(self)
                separator.setSeparator(True)
                out.append(separator)
            out.extend(group)
        return out

    def all_actions(self) -> list[QAction]:
        return [
            self.save_action,
            self.copy_action,
            self.star_action,
            self.delete_action,
            self.reveal_action,
            self.open_action,
            self.rerun_action,
            self.use_input_action,
            self.compare_action,
            self.undo_action,
            self.redo_action,
        ]

    def attach(self, widget: QWidget) -> None:
        """Make the shortcuts work while `widget` (the gallery, a viewer) or a child of it has the focus."""
        widget.addActions(self.all_actions())

    # -- targets -----------------------------------------------------------------------------------
    def set_selection(self, records: Sequence[OutputRecord]) -> None:
        self.selection = list(records)
        self._update_enabled()

    def targets(self) -> list[OutputRecord]:
        """The viewer's image when the focus is in it (or it is the active window), else the selection."""
        viewer = self.viewer
        if viewer is not None and viewer.isVisible():
            focus = QApplication.focusWidget()
            in_viewer = focus is not None and (focus is viewer or viewer.isAncestorOf(focus))
            if in_viewer or QApplication.activeWindow() is viewer:
                current = viewer.current()
                return [current] if current is not None else []
        return list(self.selection)

    def _focus_changed(self, _old: object, _new: object) -> None:
        self._update_enabled()

    def _update_enabled(self) -> None:
        records = self.targets()
        one = len(records) == 1
        files = [r for r in records if r.path is not None]
        self.save_action.setEnabled(bool(records))
        self.copy_action.setEnabled(one)
        self.star_action.setEnabled(bool(records))
        self.delete_action.setEnabled(bool(records))
        self.reveal_action.setEnabled(one and bool(files))
        self.open_action.setEnabled(one and media_class(records[0]) in ("video", "audio"))
        self.rerun_action.setEnabled(one)
        self.use_input_action.setEnabled(one and bool(files) and media_class(records[0]) == "image")
        self.compare_action.setEnabled(len(files) == 2)
        if one and records[0].starred:
            self.star_action.setText("Un&star")
        else:
            self.star_action.setText("&Star")

    # -- slots -------------------------------------------------------------------------------------
    def save_as(self) -> None:
        records = self.targets()
        if not records:
            return
        if len(records) == 1:
            record = records[0]
            suffix = (
                record.path.suffix if record.path is not None and media_class(record) != "image" else ".png"
            )
            if record.path is None:
                suffix = ".txt"
            start = str(Path(self.last_folder) / suggested_name(record, suffix))
            dialog = QFileDialog(self.parent_widget.window(), "Save result as", start, SAVE_FILTER)
            dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
            dialog.fileSelected.connect(lambda name: self._save_one(record, Path(name)))
        else:
            dialog = QFileDialog(self.parent_widget.window(), "Save results into", self.last_folder)
            dialog.setFileMode(QFileDialog.FileMode.Directory)
            dialog.fileSelected.connect(lambda name: self._save_many(records, Path(name)))
        dialog.setObjectName("saveResultDialog")
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()

    def _save_one(self, record: OutputRecord, path: Path) -> None:
        if not path.suffix and record.path is not None:
            path = path.with_suffix(".png")
        self.last_folder = str(path.parent)
        self.actions.save_as(record, path)

    def _save_many(self, records: Sequence[OutputRecord], folder: Path) -> None:
        self.last_folder = str(folder)
        for record in records:
            suffix = (
                ".png" if media_class(record) == "image" else (record.path.suffix if record.path else ".txt")
            )
            self.actions.save_as(record, folder / suggested_name(record, suffix))

    def copy(self) -> None:
        records = self.targets()
        if len(records) == 1:
            viewer = self.viewer
            image = viewer.current_image() if viewer is not None and viewer.current() == records[0] else None
            self.actions.copy(records[0], image)

    def delete(self) -> None:
        self.actions.delete(self.targets())

    def star(self) -> None:
        self.actions.star(self.targets())

    def reveal(self) -> None:
        for record in self.targets()[:1]:
            self.actions.reveal(record)

    def open_external(self) -> None:
        for record in self.targets()[:1]:
            self.actions.open_external(record)

    def rerun(self) -> None:
        for record in self.targets()[:1]:
            self.actions.rerun(record)

    def use_as_input(self, key: str | None = None) -> None:
        for record in self.targets()[:1]:
            self.actions.use_as_input(record, key)

    def compare_selected(self) -> None:
        files = [r for r in self.targets() if r.path is not None]
        if len(files) == 2:
            self.open_compare(files[0], files[1])

    # -- windows -----------------------------------------------------------------------------------
    def open_viewer(
        self, record: OutputRecord, sequence: Sequence[OutputRecord] | None = None
    ) -> ImageViewer:
        """The viewer window on `record`, walking `sequence` (the gallery's rows by default)."""
        viewer = self._viewer()
        records = list(sequence) if sequence is not None else self._sequence()
        ids = [r.id for r in records]
        if record.id in ids:
            viewer.set_sequence(records, ids.index(record.id))
        else:
            viewer.show_record(record)
        viewer.show()
        viewer.raise_()
        viewer.activateWindow()
        viewer.setFocus()
        self._update_enabled()
        return viewer

    def open_compare(self, a: OutputRecord, b: OutputRecord) -> CompareView:
        if self.compare is None:
            from comfydesk.ui.compare import CompareView  # imported when first opened

            self.compare = CompareView(self.loader, self.parent_widget)
            self.compare.setWindowFlag(Qt.WindowType.Window)
        self.compare.set_records(a, b)
        self.compare.show()
        self.compare.raise_()
        return self.compare

    def _viewer(self) -> ImageViewer:
        if self.viewer is None:
            viewer = ImageViewer(self.loader, self.parent_widget)
            viewer.setWindowFlag(Qt.WindowType.Window)
            viewer.add_actions([self.star_action, self.copy_action, self.save_action, self.delete_action])
            self.attach(viewer)
            viewer.current_changed.connect(self._viewer_moved)
            viewer.open_external_requested.connect(self.actions.open_external)
            viewer.reveal_requested.connect(self.actions.reveal)
            viewer.mime_provider = lambda: self._viewer_mime(viewer)
            self.viewer = viewer
        return self.viewer

    def _viewer_mime(self, viewer: ImageViewer) -> Any:
        record = viewer.current()
        return self.actions.mime_data([record], viewer.current_image()) if record is not None else None

    def _viewer_moved(self, record: object) -> None:
        if isinstance(record, OutputRecord):
            self.actions.fetch_run(record.run_id)
            if self.follow is not None and self.viewer is not None and self.viewer.isVisible():
                self.follow(record)
        self._update_enabled()

    def _run_loaded(self, run: object) -> None:
        if self.viewer is not None:
            self.viewer.set_run(run)  # type: ignore[arg-type]

    def _sequence(self) -> list[OutputRecord]:
        return self.sequence_source() if self.sequence_source is not None else list(self.selection)

    def _removed(self, ids: object) -> None:
        if isinstance(ids, list):
            gone = set(ids)
            self.selection = [r for r in self.selection if r.id not in gone]
            if self.viewer is not None:
                self.viewer.remove_records(ids)
            self._update_enabled()

    def _changed(self, records: object) -> None:
        if not isinstance(records, list):
            return
        fresh = {r.id: r for r in records if isinstance(r, OutputRecord)}
        self.selection = [fresh.get(r.id, r) for r in self.selection]
        if self.viewer is not None:
            for record in fresh.values():
                self.viewer.update_record(record)
        self._update_enabled()


def _keys(*keys: str | QKeySequence.StandardKey) -> list[QKeySequence]:
    """Each sequence once: a standard key and its spelled-out twin are often equal (twice is ambiguous)."""
    out: list[QKeySequence] = []
    for key in keys:
        seq = QKeySequence(key)
        if not seq.isEmpty() and seq not in out:
            out.append(seq)
    return out


def _suffix(record: OutputRecord) -> str:
    """Images are saved as PNG (with the metadata); other files keep their kind; text as .txt."""
    if record.path is None:
        return ".txt"
    return ".png" if media_class(record) == "image" else record.path.suffix


def _model_records(view: Any) -> list[OutputRecord]:
    model = view.model() if view is not None else None
    if model is None:
        return []
    out: list[OutputRecord] = []
    for row in range(model.rowCount()):
        record = model.data(model.index(row, 0), RECORD_ROLE)
        if isinstance(record, OutputRecord):
            out.append(record)
    return out


def bind_gallery(action_set: GalleryActionSet, gallery: Any) -> None:
    """The gallery's context menu and shortcuts, its selection, opening the viewer, following it."""
    if hasattr(gallery, "add_actions"):
        gallery.add_actions(action_set.menu_actions())
    else:
        action_set.attach(gallery)
    action_set.sequence_source = lambda: _model_records(gallery)
    if hasattr(gallery, "open_requested"):
        gallery.open_requested.connect(action_set.open_viewer)
    if hasattr(gallery, "selection_changed"):
        gallery.selection_changed.connect(action_set.set_selection)
    if hasattr(gallery, "context_menu_requested"):
        gallery.context_menu_requested.connect(lambda records, _pos: action_set.set_selection(records))
    select = getattr(gallery, "select_record", None)
    if callable(select):
        action_set.follow = lambda record: select(record.id)


def install_gallery_actions(window: Any, ctx: Any) -> GalleryActionSet:
    """Wire the actions, the viewer and opening images with comfydesk values into the main window."""
    journal = getattr(ctx, "journal", None)
    actions = GalleryActions(
        ctx.tasks,
        journal,
        library=ctx.library,
        form=window.form,
        memory=ctx.memory,
        catalog=lambda: ctx.catalog.catalog,
        parent=window,
    )
    actions.values_restored.connect(window.form.values_changed)
    if hasattr(window, "_show_message"):
        actions.message_changed.connect(window._show_message)
    action_set = GalleryActionSet(actions, window, journal=journal)

    def current_changed(current: object) -> None:
        if isinstance(current, CurrentWorkflow):
            actions.apply_embedded(current)

    ctx.library.current_changed.connect(current_changed)
    gallery = window.findChild(QWidget, "gallery")
    if gallery is not None:
        bind_gallery(action_set, gallery)
    file_menu = getattr(window, "file_menu", None)
    if file_menu is not None and journal is not None:
        import_action = QAction("&Import ComfyUI outputs…", window)
        import_action.setObjectName("importOutputsAction")
        import_action.setToolTip(
            "Add a folder of images saved by ComfyUI (with their workflows) to the gallery"
        )
        import_action.triggered.connect(lambda: _ask_import_folder(window, actions))
        file_menu.insertAction(file_menu.actions()[-1], import_action)  # above Quit
        window.import_outputs_action = import_action
    window.gallery_actions = action_set
    return action_set


def _ask_import_folder(window: QWidget, actions: GalleryActions) -> None:
    folder = QFileDialog.getExistingDirectory(window, "Import ComfyUI outputs")
    if folder:
        actions.import_folder(Path(folder))
