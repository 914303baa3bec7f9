"""IMAGE fields: a server image from the list, a local file (browse, drop) or pasted pixels; with a thumbnail.

The view never uploads: its value is the server name (str), a local `Path`, or a `PastedImage` holding encoded
bytes, and the caller uploads before a run. Thumbnails and the PNG encoding of pasted pixels happen on
Qt's thread pool, never on the UI thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QEvent,
    QIODevice,
    QObject,
    QSignalBlocker,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import (
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.images import make_thumbnail
from comfydesk.app.run_state import PastedImage
from comfydesk.core.errors import UnsafeInputError
from comfydesk.core.templates import FormField
from comfydesk.ui.form.editors import NOT_ON_SERVER, Editor, SearchableCombo

__all__ = ["IMAGE_SUFFIXES", "ImageEditor"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
THUMB = 96
MISSING_TEXT = NOT_ON_SERVER.replace(" the ", "\nthe ")  # "Not on\nthe server", in the preview box


class _FocusWatch(QObject):
    """Emits the editor's `focused` when its server list gets focus (the view refreshes the list then)."""

    def __init__(self, editor: ImageEditor) -> None:
        super().__init__(editor)
        self._editor = editor

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn:
            self._editor.focused.emit()
        return False


class _Relay(QObject):
    """Carries worker-thread results to the UI thread (queued signal)."""

    done = Signal(int, object, object)  # token, QImage | str (error), PastedImage | None


class ImageEditor(Editor):
    """Thumbnail, the server image list, "Browse…", "Paste", drag and drop; Ctrl+V pastes while focused."""

    focused = Signal()  # the server list got focus

    native_dialogs = True
    """Tests turn this off so QFileDialog is Qt's own widget, which they can drive."""

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self._value: Any = None
        self._token = 0
        #: The server's input images as last listed; None when the server gives no list.
        self._server_names: set[str] | None = (
            {str(c) for c in field.choices} if field.choices is not None else None
        )
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self.dialog: QFileDialog | None = None

        self.thumb = QLabel(self)
        self.thumb.setObjectName("imageThumbnail")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setFrameShape(QLabel.Shape.StyledPanel)
        self.thumb.setText("No\nimage")
        self._layout.addWidget(self.thumb, 0, Qt.AlignmentFlag.AlignTop)

        side = QVBoxLayout()
        side.setSpacing(4)
        self.combo = SearchableCombo(self)
        self.combo.setAccessibleName(field.label)
        for choice in field.choices or ():
            self.combo.addItem(str(choice), choice)
        self.combo.setVisible(bool(field.choices))
        self.combo.currentIndexChanged.connect(self._picked_server_image)
        self.combo.installEventFilter(_FocusWatch(self))
        side.addWidget(self.combo)
        buttons = QHBoxLayout()
        buttons.setSpacing(4)
        self.browse = QPushButton("Browse…", self)
        self.browse.setAccessibleName(f"Choose a file for {field.label.lower()}")
        self.browse.clicked.connect(self.choose_file)
        self.paste_button = QPushButton("Paste", self)
        self.paste_button.setAccessibleName(f"Paste an image into {field.label.lower()}")
        self.paste_button.setToolTip("Paste an image or an image file from the clipboard (Ctrl+V)")
        self.paste_button.clicked.connect(self.paste)
        buttons.addWidget(self.browse)
        buttons.addWidget(self.paste_button)
        buttons.addStretch(1)
        side.addLayout(buttons)
        self.source_label = QLabel(self)
        self.source_label.setObjectName("imageSource")
        self.source_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source_label.setEnabled(False)  # drawn in the palette's muted text colour
        side.addWidget(self.source_label)
        self._layout.addLayout(side, 1)

        self.setAcceptDrops(True)
        paste = QShortcut(QKeySequence(QKeySequence.StandardKey.Paste), self)
        paste.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        paste.activated.connect(self.paste)

    # ----------------------------------------------------------------------------------- Editor API
    def value(self) -> Any:
        return self._value

    def set_value(self, value: Any) -> None:
        self._value = value
        if isinstance(value, str):
            with QSignalBlocker(self.combo):
                index = self.combo.findData(value)
                if index < 0 and value:
                    self.combo.addItem(value, value)
                    index = self.combo.count() - 1
                    self.combo.setItemData(index, NOT_ON_SERVER, Qt.ItemDataRole.ToolTipRole)
                self.combo.setCurrentIndex(index)
            self._token += 1  # a local thumbnail still on its way is not this value's
            self._set_thumbnail(None)
        elif isinstance(value, Path | PastedImage):
            self._load_thumbnail(value)
        self._describe()

    def set_choices(self, choices: list[Any]) -> None:
        """Offer a fresh list of the server's images, keeping the value (listed even when the server lacks
        it, so validation can say so)."""
        self._server_names = {str(c) for c in choices}
        with QSignalBlocker(self.combo):
            self.combo.clear()
            for choice in choices:
                self.combo.addItem(str(choice), choice)
            self.combo.setVisible(bool(choices) or self.combo.isVisibleTo(self))
        if isinstance(self._value, str):
            self.set_value(self._value)

    def focus_widget(self) -> QWidget:
        return self.combo if self.combo.isVisibleTo(self) else self.browse

    def focus_chain(self) -> list[QWidget]:
        chain: list[QWidget] = [self.combo] if self.field.choices else []
        return [*chain, self.browse, self.paste_button]

    def set_thumbnail(self, image: QImage | None) -> None:
        """Show a thumbnail the caller made (of the server image now selected); None: it has none."""
        if image is None or image.isNull():
            self.thumb.setPixmap(QPixmap())
            self.thumb.setText(MISSING_TEXT if self.missing_on_server() else "No\npreview")
            return
        self._set_thumbnail(image)

    def missing_on_server(self) -> bool:
        """The value is a server image name the server's list lacks (no preview to ask for)."""
        value, names = self._value, self._server_names
        return isinstance(value, str) and bool(value) and names is not None and value not in names

    # ----------------------------------------------------------------------------------- sources
    def choose_file(self) -> None:
        dialog = QFileDialog(self, f"Choose an image for {self.field.label}")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilter("Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ")")
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, not self.native_dialogs)
        dialog.fileSelected.connect(lambda name: self.set_local_file(Path(name)))
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()

    def set_local_file(self, path: Path) -> None:
        """Use a local image file; the caller uploads it before the run."""
        self.set_value(path)
        self.edited.emit()

    def paste(self) -> None:
        """Take an image file or image pixels from the clipboard."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        files = _image_files(mime.urls()) if mime.hasUrls() else []
        if files:
            self.set_local_file(files[0])
            return
        for fmt in ("image/png", "image/jpeg", "image/webp"):
            if mime.hasFormat(fmt):
                data = bytes(mime.data(fmt).data())
                if data:
                    self.set_value(PastedImage(data, fmt))
                    self.edited.emit()
                    return
        if mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                self._encode_pasted(image.copy())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if (mime.hasUrls() and _image_files(mime.urls())) or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        files = _image_files(mime.urls()) if mime.hasUrls() else []
        if files:
            self.set_local_file(files[0])
            event.acceptProposedAction()
        elif mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self._encode_pasted(image.copy())
                event.acceptProposedAction()

    # ----------------------------------------------------------------------------------- internals
    def _picked_server_image(self, index: int) -> None:
        if index < 0:
            return
        self._value = self.combo.itemData(index)
        self._token += 1
        self._set_thumbnail(None)
        self._describe()
        self.edited.emit()

    def _describe(self) -> None:
        value = self._value
        if isinstance(value, Path):
            text = f"Local file {value.name} — uploaded when you run"
        elif isinstance(value, PastedImage):
            text = f"Pasted image ({len(value.data) // 1024 + 1} KB) — uploaded when you run"
        elif isinstance(value, str) and value and not self.missing_on_server():
            text = f"On the server: {value}"
        else:
            text = "Drop an image here, browse, or paste"
        self.source_label.setText(text)
        self.source_label.setToolTip(str(value) if isinstance(value, Path) else text)

    def _set_thumbnail(self, image: QImage | None) -> None:
        if image is None or image.isNull():
            self.thumb.setPixmap(QPixmap())
            if self.missing_on_server():
                self.thumb.setText(MISSING_TEXT)
            elif isinstance(self._value, str) and self._value and image is None:
                self.thumb.setText("Loading…")  # the view asks the server; set_thumbnail follows
            else:
                self.thumb.setText("No\npreview" if self._value else "No\nimage")
        else:
            self.thumb.setPixmap(QPixmap.fromImage(image))

    def _run(self, job: Callable[[], tuple[object, object]]) -> None:
        self._token += 1
        token, relay = self._token, self._relay

        def work() -> None:
            try:
                result, pasted = job()
            except UnsafeInputError as exc:
                result, pasted = str(exc), None
            with contextlib.suppress(RuntimeError):  # the field may have been closed meanwhile
                relay.done.emit(token, result, pasted)

        self.thumb.setText("…")
        QThreadPool.globalInstance().start(work)

    def _load_thumbnail(self, source: Path | PastedImage) -> None:
        data: bytes | Path = source if isinstance(source, Path) else source.data
        self._run(lambda: (make_thumbnail(data, THUMB), None))

    def _encode_pasted(self, image: QImage) -> None:
        def job() -> tuple[object, object]:
            buffer = QBuffer()
            buffer.open(QIODevice.OpenModeFlag.WriteOnly)
            image.save(buffer, b"PNG")
            data = bytes(QByteArray(buffer.data()).data())
            thumb = image.scaled(
                THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            return thumb, PastedImage(data, "image/png")

        self._run(job)

    def _on_done(self, token: int, result: object, pasted: object) -> None:
        if token != self._token:
            return  # an older request
        if isinstance(pasted, PastedImage):
            self._value = pasted
            self._describe()
            self.edited.emit()
        if isinstance(result, QImage):
            self._set_thumbnail(result)
        else:
            self._set_thumbnail(None)
            self.thumb.setToolTip(str(result))


def _image_files(urls: list[Any]) -> list[Path]:
    return [
        Path(url.toLocalFile())
        for url in urls
        if url.isLocalFile() and url.toLocalFile().lower().endswith(IMAGE_SUFFIXES)
    ]
