"""The gallery: a virtualised grid of every output (`gallery`) under its filter bar (`galleryFilter`).

`GalleryView` is a QListView in icon mode painted by `GalleryDelegate` (no widget per image); it binds to a
`GalleryModel`, which pages rows in from the journal and makes thumbnails off the UI thread. The view never
starts work itself: it asks the model for data, and the model decides what to load.

Signals for the viewer and the actions: `open_requested(OutputRecord)` (Enter, double-click),
`selection_changed(list[OutputRecord])`, `context_menu_requested(list[OutputRecord], QPoint)`; actions given
to `add_actions` fill the context menu and their shortcuts work while the grid has focus.

When a run adds outputs at the top while the user has scrolled down, the grid keeps the tiles they were
looking at where they were; at the top, the new outputs come into view.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QItemSelection,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QContextMenuEvent, QKeyEvent, QKeySequence, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.gallery import GalleryModel, RecordRole
from comfydesk.store.journal import OutputRecord
from comfydesk.ui.gallery_delegate import GalleryDelegate
from comfydesk.ui.gallery_filter import GalleryFilterBar
from comfydesk.ui.window_layout import set_dock_pane

__all__ = ["GalleryPane", "GalleryView", "add_gallery_dock"]

EMPTY_TEXT = "Every result of every run lands here"
NO_MATCH_TEXT = "No outputs match these filters"


class GalleryView(QListView):
    """See the module docstring."""

    open_requested = Signal(object)  # OutputRecord
    selection_changed = Signal(object)  # list[OutputRecord]
    context_menu_requested = Signal(object, QPoint)  # list[OutputRecord], global position

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gallery")
        self.setAccessibleName("Gallery")
        self.delegate = GalleryDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(400)
        self.setGridSize(self.delegate.cell_size())
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setDragEnabled(True)  # tiles drag out to other applications as files
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setMouseTracking(True)
        self._model: GalleryModel | None = None
        self._actions: list[QAction] = []
        self._anchor: QPersistentModelIndex | None = None
        self._anchor_top = 0
        self._adjusting = False
        self.activated.connect(self._activated)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)

    # -- binding -----------------------------------------------------------------------------------
    def bind(self, model: GalleryModel | None) -> None:
        """Show `model` (None unbinds)."""
        old = self._model
        if old is not None:
            old.rowsAboutToBeInserted.disconnect(self._before_insert)
            old.rowsInserted.disconnect(self._after_insert)
        self._model = model
        self.setModel(model)
        if model is not None:
            pixmap = QPixmap(self.delegate.tile, self.delegate.tile)
            pixmap.fill(QColor(self.palette().color(self.backgroundRole()).darker(110)))
            model.set_placeholder(pixmap)
            model.rowsAboutToBeInserted.connect(self._before_insert)
            model.rowsInserted.connect(self._after_insert)
            self.selectionModel().selectionChanged.connect(self._selection)

    def gallery_model(self) -> GalleryModel | None:
        return self._model

    def set_tile_size(self, px: int) -> None:
        """The picture's box in each tile, px (Settings -> thumbnail size); the grid reflows at once."""
        if px == self.delegate.tile:
            return
        self.delegate.tile = px
        self.setGridSize(self.delegate.cell_size())
        self._fit_columns()
        if self._model is not None:
            pixmap = QPixmap(px, px)
            pixmap.fill(QColor(self.palette().color(self.backgroundRole()).darker(110)))
            self._model.set_placeholder(pixmap)
        self.scheduleDelayedItemsLayout()
        self.viewport().update()

    # -- the viewer and the actions ----------------------------------------------------------------
    def add_actions(self, actions: Sequence[QAction]) -> None:
        """Actions for the context menu (in this order); their shortcuts work while the grid has focus."""
        for action in actions:
            if action not in self._actions:
                self._actions.append(action)
                if action.shortcutContext() == Qt.ShortcutContext.WindowShortcut:
                    action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.addAction(action)

    def menu_actions(self) -> list[QAction]:
        return list(self._actions)

    def selected_records(self) -> list[OutputRecord]:
        """The selected outputs, in grid order (newest first)."""
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes()) if self.model() else []
        out: list[OutputRecord] = []
        for row in rows:
            record = self.model().index(row, 0).data(RecordRole)
            if isinstance(record, OutputRecord):
                out.append(record)
        return out

    def current_record(self) -> OutputRecord | None:
        record = self.currentIndex().data(RecordRole) if self.currentIndex().isValid() else None
        return record if isinstance(record, OutputRecord) else None

    def select_record(self, output_id: int) -> bool:
        """Make the output with this id current and selected (the viewer's next/previous follow it)."""
        if self._model is None:
            return False
        row = self._model.row_of(output_id)
        if row is None:
            return False
        index = self._model.index(row, 0)
        self.setCurrentIndex(index)
        self.scrollTo(index)
        return True

    def _activated(self, index: QModelIndex) -> None:
        record = index.data(RecordRole)
        if isinstance(record, OutputRecord):
            self.open_requested.emit(record)

    def _selection(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self.selection_changed.emit(self.selected_records())

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        index = self.indexAt(event.pos())
        if index.isValid() and not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)  # right-click on an unselected tile acts on that tile
        records = self.selected_records()
        self.context_menu_requested.emit(records, event.globalPos())
        if records and self._actions:
            menu = QMenu(self)
            menu.setObjectName("galleryMenu")
            menu.addActions(self._actions)
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            menu.popup(event.globalPos())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Enter opens the current tile even when the platform's "activate" key is a double-click only.
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._activated(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    # -- keeping the user's place while outputs arrive at the top ----------------------------------
    def _before_insert(self, parent: QModelIndex, first: int, _last: int) -> None:
        if parent.isValid() or first != 0:
            return
        if self.verticalScrollBar().value() == 0:
            self._anchor = None  # at the top, the new outputs simply come into view
            return
        if self._anchor is None or not self._anchor.isValid():
            # The tile at the top left when the user stopped scrolling; kept across several inserts, so a
            # run adding its outputs one by one moves the grid by whole lines, as one block would.
            index = self.indexAt(QPoint(self.gridSize().width() // 2, self.gridSize().height() // 2))
            if index.isValid():
                self._anchor = QPersistentModelIndex(index)
                self._anchor_top = self.visualRect(index).top()

    def _after_insert(self, parent: QModelIndex, first: int, _last: int) -> None:
        anchor = self._anchor
        if parent.isValid() or first != 0 or anchor is None or not anchor.isValid():
            return
        self.executeDelayedItemsLayout()
        moved = self.visualRect(self.model().index(anchor.row(), 0)).top() - self._anchor_top
        if moved:
            bar = self.verticalScrollBar()
            self._adjusting = True
            try:
                bar.setValue(bar.value() + moved)
            finally:
                self._adjusting = False

    def _scrolled(self, _value: int) -> None:
        if not self._adjusting:
            self._anchor = None  # the user moved: the next insert anchors on what they see then

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._anchor = None
        self._fit_columns()
        super().resizeEvent(event)

    def _fit_columns(self) -> None:
        """Spread the columns over the whole width (no ragged empty band on the right)."""
        cell = self.delegate.cell_size()
        bar = self.verticalScrollBar()
        # Leave room for the scroll bar even before it shows, or the last column wraps once it does.
        width = self.viewport().width() - (0 if bar.isVisible() else bar.sizeHint().width()) - 2
        columns = max(1, width // cell.width())
        grid = QSize(max(cell.width(), width // columns), cell.height())
        if grid != self.gridSize():
            self.setGridSize(grid)


class GalleryPane(QWidget):
    """The filter bar over the grid, with a line saying how many outputs match."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryPane")
        self.filter_bar = GalleryFilterBar()
        self.view = GalleryView()
        self.summary = QLabel()
        self.summary.setObjectName("gallerySummary")
        self.summary.setEnabled(False)  # the quiet, disabled text colour
        self.hint = QLabel(EMPTY_TEXT, self.view.viewport())
        self.hint.setObjectName("galleryHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setEnabled(False)
        self.hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        hint_layout = QVBoxLayout(self.view.viewport())
        hint_layout.addWidget(self.hint)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.summary)
        self.model: GalleryModel | None = None
        # The pane forwards the grid's signals, so the viewer can connect to either.
        self.open_requested = self.view.open_requested
        self.selection_changed = self.view.selection_changed

    def bind(self, model: GalleryModel | None) -> None:
        old = self.model
        if old is not None:
            self.filter_bar.filter_changed.disconnect(old.set_filter)
            old.facets_changed.disconnect(self.filter_bar.set_facets)
            old.total_changed.disconnect(self._update_summary)
            old.loading_changed.disconnect(self._update_summary)
            old.modelReset.disconnect(self._update_summary)
        self.model = model
        self.view.bind(model)
        if model is not None:
            self.filter_bar.set_facets(model.facets)
            self.filter_bar.filter_changed.connect(model.set_filter)
            model.facets_changed.connect(self.filter_bar.set_facets)
            model.total_changed.connect(self._update_summary)
            model.loading_changed.connect(self._update_summary)
            model.modelReset.connect(self._update_summary)
        self._update_summary()

    def add_actions(self, actions: Sequence[QAction]) -> None:
        self.view.add_actions(actions)

    def _update_summary(self, *_args: object) -> None:
        model = self.model
        total = model.total if model is not None else 0
        loading = model is not None and model.loading
        filtered = model is not None and model.filter != type(model.filter)()
        if total is None or (loading and not total):
            self.summary.setText("Loading…")
        else:
            noun = "output" if total == 1 else "outputs"
            self.summary.setText(f"{total:,} {noun}" + (" match" if filtered else ""))
        empty = not loading and not total
        self.hint.setText(NO_MATCH_TEXT if filtered else EMPTY_TEXT)
        self.hint.setVisible(empty)


def add_gallery_dock(
    window: QMainWindow, model: GalleryModel, *, width: int = 440, dock: QDockWidget | None = None
) -> QDockWidget:
    """The gallery pane bound to `model` in a dock on the right of `window` (toggle: Ctrl+Shift+G); in
    `dock` when given (a dock of the window already placed: the main window's frame makes its docks)."""
    pane = GalleryPane()
    pane.bind(model)
    if dock is None:
        dock = QDockWidget("Gallery", window)
        dock.setObjectName("galleryDock")
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    set_dock_pane(dock, pane)
    toggle = dock.toggleViewAction()
    toggle.setText("Show &gallery")
    toggle.setShortcut(QKeySequence("Ctrl+Shift+G"))
    return dock
