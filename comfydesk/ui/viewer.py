"""ImageViewer: one result at a time, crisp, with the run that made it beside it.

A plain widget (`imageViewer`): the gallery opens it as a window, and it can sit inside another window as its
canvas (the main window's canvas is one, `comfydesk.ui.canvas`: `show_image` puts a live preview in it).
Left/Right (Home/End) walk the sequence it was given; F fits, 1 shows 100 %, +/- zoom, I toggles the
details, Esc closes its window. Images come decoded from a `MediaLoader` (app; off the UI thread) and the run
from whoever listens to `current_changed` (the gallery actions read it from the journal and call `set_run`).
Text shows as text; video and audio offer the system player; other files offer their folder. A file that
cannot be decoded shows the reason in place of the image.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPointF, Qt, Signal
from PySide6.QtGui import QAction, QDrag, QImage, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.media import MediaLoader, media_class
from comfydesk.store.journal import OutputRecord, RunRecord
from comfydesk.ui.viewer_canvas import ImageCanvas

__all__ = ["ImageViewer", "describe_run"]

ZOOM_STEP = 1.25
MUTED = "color:#8a8f98"  # readable on light and dark panels


class DragHandle(QToolButton):
    """Drag this to another application to drop the file (and the image)."""

    def __init__(self, provider: Callable[[], QMimeData | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewerDragOut")
        self.setText("⇱ Drag")
        self.setToolTip("Drag the image into another application")
        self._provider = provider
        self._press: QPointF | None = None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is not None and (event.position() - self._press).manhattanLength() > 6:
            self._press = None
            mime = self._provider()
            if mime is not None:
                drag = QDrag(self)
                drag.setMimeData(mime)
                drag.exec(Qt.DropAction.CopyAction)
            return
        super().mouseMoveEvent(event)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def _short(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _field_label(key: str, graph: dict[str, Any]) -> str:
    node_id, dot, name = key.partition(".")
    node = graph.get(node_id) if dot else None
    if not isinstance(node, dict):
        return key
    title = (node.get("_meta") or {}).get("title") or node.get("class_type") or node_id
    return f"{title} #{node_id} › {name}"


def describe_run(record: OutputRecord, run: RunRecord | None) -> str:
    """The details panel's HTML: the output, then the run (workflow, server, times, seed, every value)."""
    rows: list[tuple[str, str]] = []
    if record.width and record.height:
        rows.append(("Size", f"{record.width} × {record.height} px"))
    if record.size:
        rows.append(("File", f"{record.size / 1024:,.1f} KB · {record.mime or record.kind}"))
    rows.append(("Created", _when(record.created_at)))
    seed = run.seed if run is not None and run.seed is not None else record.seed
    if seed is not None:
        rows.append(("Seed", str(seed)))
    rows.append(("Server", (run.server if run is not None else record.server) or "—"))
    if run is not None:
        rows.append(("Status", run.status + (f": {run.error}" if run.error else "")))
        if run.finished_at:
            rows.append(("Took", f"{max(0.0, run.finished_at - run.created_at):.1f} s"))
        rows.append(("Nodes", str(len(run.api_graph))))
    if record.path is not None:
        rows.append(("Path", str(record.path)))
    out = [f"<h3>{html.escape(record.workflow_name or 'Result')}</h3>", "<table cellspacing='3'>"]
    out += [f"<tr><td style='{MUTED}'>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows]
    out.append("</table>")
    if run is not None and run.values:
        out.append("<h4>Values</h4><table cellspacing='3'>")
        for key, value in run.values.items():
            label = _field_label(key, run.api_graph)
            out.append(
                f"<tr><td valign='top' style='{MUTED}'>{html.escape(label)}</td>"
                f"<td>{html.escape(_short(value))}</td></tr>"
            )
        out.append("</table>")
    elif run is None:
        out.append("<p><i>The run that made this is not known.</i></p>")
    return "".join(out)


class ImageViewer(QWidget):
    """See the module docstring."""

    current_changed = Signal(object)  # OutputRecord (the one shown now)
    open_external_requested = Signal(object)  # OutputRecord: a video/audio for the system player
    reveal_requested = Signal(object)  # OutputRecord: a file of an unknown kind

    def __init__(self, loader: MediaLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.setWindowTitle("Viewer")
        self.loader = loader if loader is not None else MediaLoader(self)
        self.loader.image_loaded.connect(self._image_loaded)
        self._records: list[OutputRecord] = []
        self._index = -1
        self._run: RunRecord | None = None
        self._image: QImage | None = None
        self.mime_provider: Callable[[], QMimeData | None] | None = None

        self.canvas = ImageCanvas(self)
        self.canvas.view_changed.connect(self._update_zoom_label)
        self.text = QPlainTextEdit(self)
        self.text.setObjectName("viewerText")
        self.text.setReadOnly(True)
        self.media = QWidget(self)
        self.media_label = QLabel(self.media)
        self.media_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.media_label.setWordWrap(True)
        self.media_button = QPushButton(self.media)
        self.media_button.setObjectName("viewerOpenExternal")
        self.media_button.clicked.connect(self._media_clicked)
        media_layout = QVBoxLayout(self.media)
        media_layout.addStretch(1)
        media_layout.addWidget(self.media_label)
        media_layout.addWidget(self.media_button, 0, Qt.AlignmentFlag.AlignHCenter)
        media_layout.addStretch(1)
        self.stack = QStackedWidget(self)
        for page in (self.canvas, self.text, self.media):
            self.stack.addWidget(page)

        self.details = QTextBrowser(self)
        self.details.setObjectName("viewerDetails")
        self.details.setOpenLinks(False)
        self.details.setMinimumWidth(220)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setSizes([760, 300])

        self.toolbar = QHBoxLayout()
        self.toolbar.setSpacing(4)
        self.prev_button = self._tool("◀", "Previous (Left)", self.previous)
        self.next_button = self._tool("▶", "Next (Right)", self.next)
        self.position_label = QLabel(self)
        self.position_label.setObjectName("viewerPosition")
        self.fit_button = self._tool("Fit", "Fit the image in the window (F)", self.fit)
        self.actual_button = self._tool("100%", "Actual size (1)", self.actual_size)
        self.zoom_label = QLabel(self)
        self.zoom_label.setObjectName("viewerZoom")
        self.zoom_label.setMinimumWidth(48)
        self.title_label = QLabel(self)
        self.title_label.setObjectName("viewerTitle")
        self.title_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        for w in (self.prev_button, self.position_label, self.next_button):
            self.toolbar.addWidget(w)
        self.toolbar.addSpacing(12)
        for w in (self.fit_button, self.actual_button, self.zoom_label):
            self.toolbar.addWidget(w)
        self.toolbar.addSpacing(12)
        self.toolbar.addWidget(self.title_label, 1)
        self._action_slot = QHBoxLayout()
        self._action_slot.setSpacing(4)
        self.toolbar.addLayout(self._action_slot)
        self.drag_handle = DragHandle(self._drag_mime, self)
        self.toolbar.addWidget(self.drag_handle)
        self.details_button = self._tool("Info", "Show the run's details (I)", self.toggle_details)
        self.details_button.setCheckable(True)
        self.details_button.setChecked(True)
        self.toolbar.addWidget(self.details_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(self.toolbar)
        layout.addWidget(self.splitter, 1)
        self.setFocusProxy(self.canvas)
        self.resize(1100, 760)
        self._update_nav()

    def _tool(self, text: str, tip: str, slot: Callable[[], None]) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(tip.split(" (")[0])
        button.setAutoRaise(True)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    # ------------------------------------------------------------------------------------ public API
    def add_actions(self, actions: Sequence[QAction]) -> None:
        """Buttons for actions on the shown result (save, copy, star, delete...), and their shortcuts here."""
        for action in actions:
            button = QToolButton(self)
            button.setDefaultAction(action)
            button.setAutoRaise(True)
            self._action_slot.addWidget(button)
            self.addAction(action)

    def show_record(self, record: OutputRecord, run: RunRecord | None = None) -> None:
        """Show one output (a sequence of one)."""
        self._records, self._index = [record], 0
        self._show_current(run)

    def set_sequence(self, records: Sequence[OutputRecord], index: int) -> None:
        """The outputs Left/Right walk through, showing `records[index]`."""
        self._records = list(records)
        self._index = max(0, min(index, len(self._records) - 1)) if self._records else -1
        self._show_current(None)

    def show_image(
        self, image: QImage | None, title: str = "", *, keep_view: bool = False, message: str = ""
    ) -> None:
        """Show an image that is no output (a live preview), or `message` when `image` is None; the sequence
        is emptied. `keep_view` keeps the zoom and pan (a newer frame of the same preview)."""
        self._records, self._index, self._run = [], -1, None
        self._image = image
        self._update_nav()
        self.stack.setCurrentWidget(self.canvas)
        self.title_label.setText(title)
        self.details.clear()
        if image is None or image.isNull():
            self._image = None
            self.canvas.set_image(None)
            self.canvas.set_message(message)
        else:
            self.canvas.set_image(image, keep_view=keep_view)
        self._update_zoom_label()

    def set_run(self, run: RunRecord | None) -> None:
        """The run of the output shown (ignored when it belongs to another one)."""
        record = self.current()
        if record is None or (run is not None and run.id != record.run_id):
            return
        self._run = run
        self.details.setHtml(describe_run(record, run))

    def remove_records(self, ids: Sequence[int]) -> None:
        """Outputs deleted elsewhere leave the sequence; the viewer moves to a neighbour."""
        gone = set(ids)
        if not gone.intersection(r.id for r in self._records):
            return
        current = self.current()
        before = self._index
        self._records = [r for r in self._records if r.id not in gone]
        if current is not None and current.id not in gone:
            self._index = self._records.index(current)
            self._update_nav()
            return
        self._index = min(before, len(self._records) - 1)
        self._show_current(None)

    def current(self) -> OutputRecord | None:
        return self._records[self._index] if 0 <= self._index < len(self._records) else None

    def records(self) -> list[OutputRecord]:
        return list(self._records)

    def current_index(self) -> int:
        return self._index

    def current_image(self) -> QImage | None:
        return self._image

    def run(self) -> RunRecord | None:
        return self._run

    def next(self) -> None:
        self._go(self._index + 1)

    def previous(self) -> None:
        self._go(self._index - 1)

    def first(self) -> None:
        self._go(0)

    def last(self) -> None:
        self._go(len(self._records) - 1)

    def fit(self) -> None:
        self.canvas.fit()

    def actual_size(self) -> None:
        self.canvas.actual_size()

    def zoom_in(self) -> None:
        self.canvas.zoom_by(ZOOM_STEP)

    def zoom_out(self) -> None:
        self.canvas.zoom_by(1 / ZOOM_STEP)

    def toggle_details(self) -> None:
        self.details.setVisible(not self.details.isVisible())
        self.details_button.setChecked(self.details.isVisible())

    # ------------------------------------------------------------------------------------ internals
    def _go(self, index: int) -> None:
        if 0 <= index < len(self._records) and index != self._index:
            self._index = index
            self._show_current(None)

    def _show_current(self, run: RunRecord | None) -> None:
        record = self.current()
        self._run = run
        self._image = None
        self._update_nav()
        if record is None:
            self.canvas.set_image(None)
            self.canvas.set_message("Nothing to show")
            self.stack.setCurrentWidget(self.canvas)
            self.details.clear()
            self.title_label.setText("")
            return
        self.title_label.setText(self._title(record))
        self.setWindowTitle(f"{record.workflow_name or 'Result'} — comfydesk")
        self.details.setHtml(describe_run(record, run))
        kind = media_class(record)
        if kind == "text":
            self.text.setPlainText(record.text or "")
            self.stack.setCurrentWidget(self.text)
        elif kind == "image" and record.path is not None:
            self.stack.setCurrentWidget(self.canvas)
            cached = self.loader.cached(record.path)
            if cached is None:
                self.canvas.set_image(None)
                self.canvas.set_message("Loading…")
            self.loader.load(record.path)
            self._prefetch()
        else:
            video_or_audio = kind in ("video", "audio")
            name = record.path.name if record.path is not None else "this output"
            self.media_label.setText(
                f"{kind.capitalize()}: {name}" if video_or_audio else f"{name} ({record.mime or record.kind})"
            )
            self.media_button.setText("Open with the system player" if video_or_audio else "Show in folder")
            self.stack.setCurrentWidget(self.media)
        self.current_changed.emit(record)

    def _prefetch(self) -> None:
        for i in (self._index + 1, self._index - 1):
            if 0 <= i < len(self._records):
                neighbour = self._records[i]
                path = neighbour.path
                if (
                    path is not None
                    and media_class(neighbour) == "image"
                    and self.loader.cached(path) is None
                ):
                    self.loader.load(path)

    def _image_loaded(self, path: object, result: object) -> None:
        record = self.current()
        if record is None or record.path != path:
            return
        if isinstance(result, QImage):
            self._image = result
            self.canvas.set_image(result)
        else:
            self._image = None
            self.canvas.set_image(None)
            self.canvas.set_message(f"Cannot show {Path(str(path)).name}:\n{result}")
        self._update_zoom_label()

    def _media_clicked(self) -> None:
        record = self.current()
        if record is None:
            return
        if media_class(record) in ("video", "audio"):
            self.open_external_requested.emit(record)
        else:
            self.reveal_requested.emit(record)

    def _drag_mime(self) -> QMimeData | None:
        return self.mime_provider() if self.mime_provider is not None else None

    def _title(self, record: OutputRecord) -> str:
        parts = [record.workflow_name or "Result"]
        if record.seed is not None:
            parts.append(f"seed {record.seed}")
        if record.width and record.height:
            parts.append(f"{record.width}×{record.height}")
        return " · ".join(parts) + ("  ★" if record.starred else "")

    def _update_nav(self) -> None:
        n = len(self._records)
        self.prev_button.setEnabled(self._index > 0)
        self.next_button.setEnabled(0 <= self._index < n - 1)
        self.position_label.setText(f"{self._index + 1} / {n}" if n else "")

    def _update_zoom_label(self) -> None:
        self.zoom_label.setText(f"{self.canvas.scale * 100:.0f}%" if self.canvas.has_image() else "")

    def update_record(self, record: OutputRecord) -> None:
        """A changed output (starred...) replaces its old copy in the sequence."""
        for i, old in enumerate(self._records):
            if old.id == record.id:
                self._records[i] = record
                if i == self._index:
                    self.title_label.setText(self._title(record))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        handlers: dict[int, Callable[[], None]] = {
            Qt.Key.Key_Right: self.next,
            Qt.Key.Key_Left: self.previous,
            Qt.Key.Key_Home: self.first,
            Qt.Key.Key_End: self.last,
            Qt.Key.Key_F: self.fit,
            Qt.Key.Key_0: self.fit,
            Qt.Key.Key_1: self.actual_size,
            Qt.Key.Key_Plus: self.zoom_in,
            Qt.Key.Key_Equal: self.zoom_in,
            Qt.Key.Key_Minus: self.zoom_out,
            Qt.Key.Key_I: self.toggle_details,
        }
        if key == Qt.Key.Key_Escape and self.isWindow():
            self.close()
            event.accept()
            return
        handler = handlers.get(Qt.Key(key))
        if handler is not None and not (event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            handler()
            event.accept()
            return
        super().keyPressEvent(event)
