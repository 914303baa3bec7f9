"""RunCanvas: the centre of the window, where the image is.

The canvas is the gallery's viewer (`ImageViewer`, the same widget: zoom around the cursor, pan, fit/100%,
Left/Right through a batch) showing, in turn: the live preview of a run at full size, the final output as
soon as it lands, or a batch as a grid (`BatchGrid`) whose tiles open large (Enter, double-click; G or the
Grid button goes back). Under it, the run's progress as one fixed-height bar; banners (errors) float over
its top edge, so nothing under the pointer moves when a run starts, fails or ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QKeyEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.media import MediaLoader
from comfydesk.app.run_state import ResultItem
from comfydesk.ui.progress import ProgressPanel
from comfydesk.ui.results import result_records
from comfydesk.ui.theme import BACKDROP
from comfydesk.ui.viewer import ImageViewer
from comfydesk.ui.window_layout import CANVAS_MIN_SIZE

__all__ = ["EMPTY_TEXT", "BatchGrid", "RunCanvas"]

EMPTY_TEXT = "Run the workflow to see its image here."
ITEM_ROLE = Qt.ItemDataRole.UserRole
GAP = 8  # px between grid tiles


class BatchGrid(QListWidget):
    """A batch's images as tiles as large as the room allows; Enter or a double-click: `open_requested(i)`."""

    open_requested = Signal(int)

    def __init__(self, loader: MediaLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("batchGrid")
        self.setAccessibleName("Images of the batch")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setFrameShape(QListWidget.Shape.NoFrame)
        self.setStyleSheet(
            f"QListWidget#batchGrid {{ background: {BACKDROP.name()}; border: none; }}"
            "QListWidget#batchGrid::item { border: 2px solid transparent; border-radius: 3px; }"
            "QListWidget#batchGrid::item:selected { background: transparent;"
            " border-color: palette(highlight); }"
        )
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self._loader = loader
        self._images: dict[Path, QImage] = {}
        loader.image_loaded.connect(self._loaded)
        self.itemActivated.connect(lambda item: self.open_requested.emit(self.row(item)))

    def set_items(self, items: Sequence[ResultItem]) -> None:
        self.clear()
        for i, result in enumerate(items):
            item = QListWidgetItem()
            item.setData(ITEM_ROLE, result)
            item.setToolTip(
                f"Image {i + 1} of {len(items)} · {result.path.name}\nEnter or double-click: open"
            )
            self.addItem(item)
            self._loader.load(result.path)
        self._relayout()
        if self.count():
            self.setCurrentRow(0)

    def results(self) -> list[ResultItem]:
        return [self.item(i).data(ITEM_ROLE) for i in range(self.count())]

    def tile_size(self) -> QSize:
        return self.gridSize()

    def _loaded(self, path: object, result: object) -> None:
        if (
            isinstance(path, Path)
            and isinstance(result, QImage)
            and any(r.path == path for r in self.results())
        ):
            self._images[path] = result
            self._set_icons()

    def _relayout(self) -> None:
        n = max(1, self.count())
        width, height = self.width() - 2 * GAP, self.height() - 2 * GAP  # the viewport, without a scroll bar
        best = 64
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            best = max(best, min(width // cols, height // rows))
        self.setGridSize(QSize(best, best))
        self.setIconSize(QSize(best - GAP, best - GAP))
        for i in range(self.count()):  # the tile's size, whether its image is decoded yet or not
            self.item(i).setSizeHint(QSize(best - 2, best - 2))
        self._set_icons()

    def _set_icons(self) -> None:
        size = self.iconSize()
        for i in range(self.count()):
            item = self.item(i)
            result = item.data(ITEM_ROLE)
            image = self._images.get(result.path) if isinstance(result, ResultItem) else None
            if image is None:
                continue
            pixmap = QPixmap.fromImage(
                image.scaled(
                    size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )
            icon = QIcon(pixmap)
            icon.addPixmap(pixmap, QIcon.Mode.Selected)  # the selection is a frame, not a tint
            item.setIcon(icon)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._relayout()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self.open_requested.emit(self.currentRow())
            event.accept()
            return
        super().keyPressEvent(event)


class RunCanvas(QWidget):
    """See the module docstring. `mode()` says what is shown: "empty", "preview", "image" or "grid"."""

    compare_requested = Signal(object, object)  # OutputRecord, OutputRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runCanvas")
        # An explicit minimum: what the bar and the toolbar show (a node's name, a title) never widens the
        # centre, which would squeeze the docks (the form and its Run button would move).
        self.setMinimumSize(*CANVAS_MIN_SIZE)
        self.loader = MediaLoader(self)
        self.viewer = ImageViewer(self.loader, self)
        self.viewer.details.hide()
        self.viewer.details_button.setChecked(False)
        self.grid = BatchGrid(self.loader, self)
        self.grid.open_requested.connect(self.open_item)
        self.grid_button = self._tool("Grid", "Every image of the batch side by side (G)", self.show_grid)
        self.compare_button = self._tool("Compare", "Compare with the image made before it", self._compare)
        self.viewer.toolbar.insertWidget(0, self.grid_button)
        self.viewer.toolbar.insertWidget(1, self.compare_button)
        self.grid_caption = QLabel(self)
        self.grid_caption.setObjectName("batchCaption")
        self.grid_caption.setContentsMargins(8, 4, 8, 4)
        grid_page = QWidget(self)
        grid_layout = QVBoxLayout(grid_page)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.setSpacing(0)
        grid_layout.addWidget(self.grid_caption)
        grid_layout.addWidget(self.grid, 1)
        self.grid_page = grid_page
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.viewer)
        self.pages.addWidget(grid_page)
        self.progress = ProgressPanel(self)
        self._overlays: list[QWidget] = []
        self._items: list[ResultItem] = []
        self._others: list[ResultItem] = []
        self._mode = "empty"

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.progress)
        self.add_overlay(self.progress.error_view)
        self.setFocusProxy(self.viewer)
        self.show_empty()

    def _tool(self, text: str, tip: str, slot: object) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(tip.split(" (")[0])
        button.setAutoRaise(True)
        button.clicked.connect(lambda _checked=False: slot())  # type: ignore[operator]
        return button

    # ------------------------------------------------------------------------------------ content
    def mode(self) -> str:
        return self._mode

    def items(self) -> list[ResultItem]:
        """The results shown (one image, or the batch of the grid)."""
        return list(self._items)

    def current_item(self) -> ResultItem | None:
        if self._mode not in ("image", "grid") or not self._items:
            return None
        if self._mode == "grid":
            return self._items[max(0, self.grid.currentRow())]
        index = self.viewer.current_index()
        return self._items[index] if 0 <= index < len(self._items) else None

    def show_empty(self, text: str = EMPTY_TEXT) -> None:
        self._items = []
        self._mode = "empty"
        self.viewer.show_image(None, message=text)
        self.pages.setCurrentWidget(self.viewer)
        self._update_tools()

    def show_preview(self, image: QImage) -> None:
        """A live frame of the run, scaled to fit (the user's zoom is kept between frames)."""
        keep = self._mode == "preview"
        self._mode = "preview"
        self.viewer.show_image(image, "Live preview", keep_view=keep)
        if self.pages.currentWidget() is not self.viewer:
            self.pages.setCurrentWidget(self.viewer)
        self._update_tools()

    def show_results(self, items: Sequence[ResultItem], others: Sequence[ResultItem] = ()) -> None:
        """The final images of a run or a batch: one large, several as a grid. `others` are the workflow's
        earlier results (to compare with)."""
        self._others = [r for r in others if r not in items]
        if not items:
            self.show_empty()
            return
        self._items = list(items)
        self.viewer.set_sequence(result_records(self._items), 0)
        if len(self._items) > 1:
            self.grid.set_items(self._items)
            self.grid_caption.setText(
                f"Batch of {len(self._items)} · double-click an image (or Enter) to see it large, "
                "then ◀ ▶ to step through"
            )
            self._mode = "grid"
            self.pages.setCurrentWidget(self.grid_page)
        else:
            self._mode = "image"
            self.pages.setCurrentWidget(self.viewer)
        self._update_tools()

    def open_item(self, index: int) -> None:
        """One image of the batch, large (Left/Right step through the others)."""
        if not 0 <= index < len(self._items):
            return
        if self.viewer.current_index() != index or not self.viewer.records():
            self.viewer.set_sequence(result_records(self._items), index)
        self._mode = "image"
        self.pages.setCurrentWidget(self.viewer)
        self.viewer.setFocus(Qt.FocusReason.OtherFocusReason)
        self._update_tools()

    def show_grid(self) -> None:
        if len(self._items) > 1:
            self.grid.setCurrentRow(max(0, self.viewer.current_index()))
            self._mode = "grid"
            self.pages.setCurrentWidget(self.grid_page)
            self.grid.setFocus(Qt.FocusReason.OtherFocusReason)
            self._update_tools()

    def _compare(self) -> None:
        records = result_records([*self._others, *self._items])
        current = self.current_item()
        if current is None or len(records) < 2:
            return
        at = len(self._others) + self._items.index(current)
        other = at - 1 if at > 0 else at + 1
        self.compare_requested.emit(records[other], records[at])

    def _update_tools(self) -> None:
        self.grid_button.setEnabled(len(self._items) > 1 and self._mode == "image")
        self.compare_button.setEnabled(
            self._mode in ("image", "grid") and len(self._others) + len(self._items) > 1
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_G and not event.modifiers():
            self.show_grid()
            event.accept()
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------------------------ overlays
    def add_overlay(self, widget: QWidget) -> None:
        """A banner floating over the top of the canvas (its own height, the canvas's width)."""
        widget.setParent(self)
        widget.installEventFilter(self)
        self._overlays.append(widget)
        self._place_overlays()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched in self._overlays and event.type() in (
            QEvent.Type.Show,
            QEvent.Type.Hide,
            QEvent.Type.LayoutRequest,
        ):
            self._place_overlays()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_overlays()

    def _place_overlays(self) -> None:
        top = self.viewer.canvas.mapTo(self, self.viewer.canvas.rect().topLeft()).y() + 8
        width = max(200, self.width() - 32)
        for widget in self._overlays:
            if widget.isHidden():
                continue
            height = widget.heightForWidth(width) if widget.hasHeightForWidth() else -1
            height = max(height, widget.sizeHint().height(), widget.minimumSizeHint().height())
            height = min(height, max(60, self.progress.y() - top - 8))
            widget.setGeometry(16, top, width, height)
            widget.raise_()
            top += height + 6
