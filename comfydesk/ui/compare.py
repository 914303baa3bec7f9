"""CompareView: two results, side by side with one zoom and pan, or one over the other with a divider.

Side by side, zooming or panning either canvas moves the other the same way (images of different sizes are
shown at the same displayed size, so the same spot lines up). Split, the second image covers the first right
of a divider that follows the mouse drag (or the slider under it). Images come from a `MediaLoader`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.media import MediaLoader
from comfydesk.store.journal import OutputRecord
from comfydesk.ui.viewer_canvas import ImageCanvas

__all__ = ["CompareView"]

SIDE, SPLIT = "side", "split"


def _label(record: OutputRecord | None) -> str:
    if record is None:
        return ""
    seed = f" · seed {record.seed}" if record.seed is not None else ""
    return f"{record.workflow_name or 'Result'} #{record.id}{seed}"


class CompareView(QWidget):
    """See the module docstring. `mode_changed` says "side" or "split"."""

    mode_changed = Signal(str)

    def __init__(self, loader: MediaLoader | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.setWindowTitle("Compare — comfydesk")
        self.loader = loader if loader is not None else MediaLoader(self)
        self.loader.image_loaded.connect(self._loaded)
        self._records: list[OutputRecord | None] = [None, None]
        self._images: list[QImage | None] = [None, None]
        self._syncing = False

        self.left = ImageCanvas(self)
        self.left.setObjectName("compareLeft")
        self.right = ImageCanvas(self)
        self.right.setObjectName("compareRight")
        self.left_label = QLabel(self)
        self.right_label = QLabel(self)
        for label in (self.left_label, self.right_label):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        side = QWidget(self)
        grid = QHBoxLayout(side)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(4)
        for canvas, label in ((self.left, self.left_label), (self.right, self.right_label)):
            column = QVBoxLayout()
            column.addWidget(label)
            column.addWidget(canvas, 1)
            grid.addLayout(column, 1)
        self.left.view_changed.connect(lambda: self._sync(self.left, self.right))
        self.right.view_changed.connect(lambda: self._sync(self.right, self.left))

        self.split = ImageCanvas(self)
        self.split.setObjectName("compareSplit")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("compareSlider")
        self.slider.setRange(0, 1000)
        self.slider.setValue(500)
        self.slider.setAccessibleName("Divider position")
        self.slider.valueChanged.connect(lambda v: self.split.set_divider(v / 1000))
        self.split.divider_changed.connect(self._divider_moved)
        split_page = QWidget(self)
        split_layout = QVBoxLayout(split_page)
        split_layout.setContentsMargins(0, 0, 0, 0)
        split_layout.addWidget(self.split, 1)
        split_layout.addWidget(self.slider)

        self.stack = QStackedWidget(self)
        self.stack.addWidget(side)
        self.stack.addWidget(split_page)

        bar = QHBoxLayout()
        self.side_button = QToolButton(self)
        self.side_button.setText("Side by side")
        self.split_button = QToolButton(self)
        self.split_button.setText("Split")
        group = QButtonGroup(self)
        for button, mode in ((self.side_button, SIDE), (self.split_button, SPLIT)):
            button.setCheckable(True)
            button.setAutoRaise(True)
            group.addButton(button)
            button.clicked.connect(lambda _c=False, m=mode: self.set_mode(m))
        self.side_button.setChecked(True)
        fit = QToolButton(self)
        fit.setText("Fit")
        fit.setAutoRaise(True)
        fit.clicked.connect(self.fit)
        actual = QToolButton(self)
        actual.setText("100%")
        actual.setAutoRaise(True)
        actual.clicked.connect(self.actual_size)
        for w in (self.side_button, self.split_button, fit, actual):
            bar.addWidget(w)
        bar.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)
        self.resize(1200, 700)

    # ------------------------------------------------------------------------------------ public API
    def set_records(self, a: OutputRecord, b: OutputRecord) -> None:
        """Compare output `a` (left / under) with `b` (right / over)."""
        self._records = [a, b]
        self._images = [None, None]
        self.left_label.setText(_label(a))
        self.right_label.setText(_label(b))
        self.split.labels = (_label(a), _label(b))
        for canvas in (self.left, self.right, self.split):
            canvas.set_image(None)
            canvas.set_message("Loading…")
        self.split.set_overlay(None)
        for record in (a, b):
            if record.path is not None:
                self.loader.load(record.path)
            else:
                self._apply(record, "this output has no image")

    def set_images(self, a: QImage, b: QImage, labels: tuple[str, str] = ("", "")) -> None:
        """Compare two decoded images directly."""
        self._records = [None, None]
        self._images = [a, b]
        self.left_label.setText(labels[0])
        self.right_label.setText(labels[1])
        self.split.labels = labels
        self._show()

    def mode(self) -> str:
        return SPLIT if self.stack.currentIndex() == 1 else SIDE

    def set_mode(self, mode: str) -> None:
        if mode == self.mode():
            return
        self.stack.setCurrentIndex(1 if mode == SPLIT else 0)
        (self.split_button if mode == SPLIT else self.side_button).setChecked(True)
        self.mode_changed.emit(mode)

    def fit(self) -> None:
        for canvas in (self.left, self.split):
            canvas.fit()

    def actual_size(self) -> None:
        for canvas in (self.left, self.split):
            canvas.actual_size()

    def images(self) -> tuple[QImage | None, QImage | None]:
        return self._images[0], self._images[1]

    # ------------------------------------------------------------------------------------ internals
    def _loaded(self, path: object, result: object) -> None:
        for record in self._records:
            if record is not None and record.path == path:
                self._apply(record, result)

    def _apply(self, record: OutputRecord, result: object) -> None:
        for i, r in enumerate(self._records):
            if r is record:
                if isinstance(result, QImage):
                    self._images[i] = result
                else:
                    canvas = self.left if i == 0 else self.right
                    canvas.set_message(f"Cannot show this image:\n{result}")
                    if i == 0:
                        self.split.set_message(f"Cannot show this image:\n{result}")
        self._show()

    def _show(self) -> None:
        a, b = self._images
        if a is not None:
            self.left.set_image(a)
            self.split.set_image(a)
        if b is not None:
            self.right.set_image(b)
        self.split.set_overlay(b)
        if a is not None and b is not None:
            self._sync(self.left, self.right)

    def _sync(self, source: ImageCanvas, target: ImageCanvas) -> None:
        """The same displayed size and position on the other side (relative to each image's width)."""
        if self._syncing or not source.has_image() or not target.has_image():
            return
        self._syncing = True
        try:
            ratio = source.image_size().width() / max(1, target.image_size().width())
            target.set_view(source.scale * ratio, source.offset(), fitted=source.fitted)
        finally:
            self._syncing = False

    def _divider_moved(self, fraction: float) -> None:
        value = round(fraction * 1000)
        if self.slider.value() != value:
            self.slider.setValue(value)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_F, Qt.Key.Key_0):
            self.fit()
        elif event.key() == Qt.Key.Key_1:
            self.actual_size()
        elif event.key() == Qt.Key.Key_S and not event.modifiers():
            self.set_mode(SIDE if self.mode() == SPLIT else SPLIT)
        else:
            super().keyPressEvent(event)
