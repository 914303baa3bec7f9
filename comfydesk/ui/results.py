"""ResultsStrip: a horizontal strip of result thumbnails, newest first (under the canvas: the workflow's
recent results, a click shows one on the canvas); alone, it can open the viewer as a window."""

from __future__ import annotations

import contextlib
import functools
import mimetypes
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.images import make_thumbnail
from comfydesk.app.run_state import ResultItem
from comfydesk.core.errors import UnsafeInputError
from comfydesk.core.messages import CATALOGUE
from comfydesk.store.journal import OutputRecord
from comfydesk.ui.viewer import ImageViewer

__all__ = ["ImageViewer", "ResultsStrip", "result_records"]

THUMB_SIZE = 112
EMPTY_HINT = "Results of this workflow appear here"
ITEM_ROLE = Qt.ItemDataRole.UserRole


class _Relay(QObject):
    done = Signal(object, object)  # key, QImage | str (error)


def _in_pool(relay: _Relay, key: object, job: Callable[[], QImage]) -> None:
    """Run `job` on Qt's thread pool; its QImage (or error text) comes back on the UI thread via `relay`."""

    def work() -> None:
        try:
            result: object = job()
        except (UnsafeInputError, OSError) as exc:
            result = str(exc)
        with contextlib.suppress(RuntimeError):  # the receiver may be gone
            relay.done.emit(key, result)

    QThreadPool.globalInstance().start(work)


class ResultsStrip(QListWidget):
    """Thumbnails of results, newest first; a click, double-click or Enter emits `open_requested(ResultItem)`
    (with `open_in_viewer`, Enter and double-click also open a viewer window)."""

    open_requested = Signal(object)  # ResultItem

    def __init__(
        self, parent: QWidget | None = None, *, open_in_viewer: bool = True, thumb: int = THUMB_SIZE
    ) -> None:
        super().__init__(parent)
        self.thumb = thumb
        self.setObjectName("resultsStrip")
        self.open_in_viewer = open_in_viewer
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(thumb, thumb))
        self.setGridSize(QSize(thumb + 16, thumb + 28))
        self.setUniformItemSizes(True)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setFixedHeight(thumb + 28 + 2 * self.frameWidth() + 8)
        self.setAccessibleName("Results of this session")
        # Shown over the empty strip, so it does not read as a blank box.
        self.hint = QLabel(EMPTY_HINT, self.viewport())
        self.hint.setObjectName("resultsHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setEnabled(False)  # the palette's disabled text: quiet, and readable light or dark
        self.hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        hint_layout = QVBoxLayout(self.viewport())
        hint_layout.addWidget(self.hint)
        self._placeholder = self._make_placeholder()
        self._relay = _Relay(self)
        self._relay.done.connect(self._thumbnail_ready)
        self._pending: dict[Path, QListWidgetItem] = {}
        self.viewer: ImageViewer | None = None
        self.itemActivated.connect(self._activated)
        self.itemClicked.connect(self._clicked)

    def set_results(self, items: Sequence[ResultItem]) -> None:
        """Show these results only (newest first), e.g. another workflow's."""
        self.clear()
        self._pending.clear()
        self.add_results(items)
        self.hint.setVisible(self.count() == 0)

    def add_results(self, items: Sequence[ResultItem]) -> None:
        """Add results at the front (newest first); missing thumbnails are made off the UI thread."""
        for result in sorted(items, key=lambda r: r.created):
            item = QListWidgetItem(self._placeholder, result.created.strftime("%H:%M:%S"))
            item.setData(ITEM_ROLE, result)
            item.setToolTip(
                f"{result.workflow_name}\n{result.created:%Y-%m-%d %H:%M:%S} · node {result.node_id}\n"
                f"{result.path.name}"
            )
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.insertItem(0, item)
            if result.thumbnail is not None and not result.thumbnail.isNull():
                item.setIcon(QIcon(QPixmap.fromImage(result.thumbnail)))
            else:
                self._pending[result.path] = item
                _in_pool(self._relay, result.path, functools.partial(make_thumbnail, result.path, self.thumb))
        if items:
            self.scrollToTop()
        self.hint.setVisible(self.count() == 0)

    def results(self) -> list[ResultItem]:
        """The results shown, newest first."""
        out: list[ResultItem] = []
        for row in range(self.count()):
            item = self.item(row)
            if item is not None:
                out.append(item.data(ITEM_ROLE))
        return out

    def _thumbnail_ready(self, key: object, result: object) -> None:
        item = self._pending.pop(key, None) if isinstance(key, Path) else None
        if item is None:
            return
        data = item.data(ITEM_ROLE)
        if isinstance(result, QImage) and isinstance(data, ResultItem):
            data.thumbnail = result
            item.setIcon(QIcon(QPixmap.fromImage(result)))
        else:
            item.setToolTip(f"{item.toolTip()}\n{CATALOGUE['no_thumbnail']}")

    def _clicked(self, item: QListWidgetItem) -> None:
        result = item.data(ITEM_ROLE)
        if isinstance(result, ResultItem) and not self.open_in_viewer:
            self.open_requested.emit(result)

    def _activated(self, item: QListWidgetItem) -> None:
        result = item.data(ITEM_ROLE)
        if not isinstance(result, ResultItem):
            return
        self.open_requested.emit(result)
        if self.open_in_viewer:
            results = self.results()
            viewer = ImageViewer(parent=self.window())
            viewer.setWindowFlag(Qt.WindowType.Window)
            viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            viewer.set_sequence(result_records(results), results.index(result))
            self.viewer = viewer
            viewer.show()

    def _make_placeholder(self) -> QIcon:
        pixmap = QPixmap(self.thumb, self.thumb)
        pixmap.fill(self.palette().color(self.backgroundRole()).darker(110))
        return QIcon(pixmap)


def result_records(results: Sequence[ResultItem]) -> list[OutputRecord]:
    """This session's results as journal-less output records, for the viewer (ids are their positions)."""
    return [
        OutputRecord(
            id=i,
            run_id=-1,
            node_id=r.node_id,
            kind="images",
            path=r.path,
            text=None,
            sha256="",
            size=0,
            width=None,
            height=None,
            mime=mimetypes.guess_type(r.path.name)[0] or "image/png",
            created_at=r.created.timestamp(),
            starred=False,
            workflow_name=r.workflow_name,
            server="",
            status="completed",
            seed=None,
        )
        for i, r in enumerate(results)
    ]
