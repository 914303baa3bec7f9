"""The template browser: the server's template catalogue by category, as a grid of thumbnails with details.

Bound to a `TemplateCatalogModel` (the catalogue, thumbnails, "runs on this server") and the library
(opening a template into the form, saving a copy). Thumbnails are asked for only for the tiles on screen.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QIcon,
    QImage,
    QLinearGradient,
    QPainter,
    QPixmap,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.library import LibraryModel
from comfydesk.app.templates import TemplateCatalogModel, TemplateFilter
from comfydesk.backends.comfyui_templates import TemplateInfo

__all__ = ["TemplateBrowser", "template_key"]

NAME_ROLE = Qt.ItemDataRole.UserRole
TILE = QSize(176, 132)
ALL = "All templates"
MEDIA_LABELS = {"image": "Image", "video": "Video", "audio": "Audio", "3d": "3D"}


def template_key(name: str) -> str:
    """The library key of a server template."""
    return f"template:template:{name}"


def _tile(image: QImage | None, size: QSize, label: str, placeholders: dict[str, QIcon]) -> QIcon:
    if image is None or image.isNull():
        if label not in placeholders:  # every keystroke rebuilds the grid: draw each placeholder once
            placeholders[label] = _draw_tile(None, size, label)
        return placeholders[label]
    return _draw_tile(image, size, label)


def _draw_tile(image: QImage | None, size: QSize, label: str = "") -> QIcon:
    """The thumbnail cropped to fill the tile (a soft box naming the media type while it has none)."""
    pixmap = QPixmap(size)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if image is None or image.isNull():
        gradient = QLinearGradient(0, 0, 0, size.height())
        gradient.setColorAt(0, QColor(150, 160, 175, 70))
        gradient.setColorAt(1, QColor(120, 130, 145, 110))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(pixmap.rect(), 6, 6)
        if label:
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.2)
            font.setBold(True)
            painter.setFont(font)
            painter.setPen(QColor(255, 255, 255, 200))
            painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, label)
    else:
        scaled = image.scaled(
            size, Qt.AspectRatioMode.KeepAspectRatioByExpanding, Qt.TransformationMode.SmoothTransformation
        )
        x, y = (scaled.width() - size.width()) // 2, (scaled.height() - size.height()) // 2
        painter.drawImage(0, 0, scaled, x, y, size.width(), size.height())
    painter.end()
    return QIcon(pixmap)


def _media(tpl: TemplateInfo) -> str:
    return MEDIA_LABELS.get(tpl.media_type, tpl.media_type.title())


def _size_text(size: int) -> str:
    if size <= 0:
        return ""
    gb = size / 1024**3
    return f"{gb:.1f} GB" if gb >= 1 else f"{size / 1024**2:.0f} MB"


class TemplateBrowser(QDialog):
    """Categories on the left, the grid in the middle, details on the right; search and filters on top."""

    open_requested = Signal(str)  # library key of the template to open in the form

    def __init__(
        self, model: TemplateCatalogModel, library: LibraryModel, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("templateBrowser")
        self.setWindowTitle("Templates")
        self.resize(1100, 680)
        self._model = model
        self._library = library
        self._placeholders: dict[str, QIcon] = {}

        self.search = QLineEdit()
        self.search.setObjectName("templateSearch")
        self.search.setPlaceholderText("Search titles, descriptions, tags and models…")
        self.search.setClearButtonEnabled(True)
        self.media = QComboBox()
        self.media.setObjectName("templateMedia")
        self.runs_here = QCheckBox("Runs on this server")
        self.runs_here.setObjectName("templateRunsHere")
        self.runs_here.setToolTip("Only templates whose node types and model files this server has")
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(QLabel("Media:"))
        top.addWidget(self.media)
        top.addWidget(self.runs_here)

        self.categories = QListWidget()
        self.categories.setObjectName("templateCategories")
        self.categories.setMaximumWidth(200)
        self.categories.setSpacing(3)
        self.grid = QListWidget()
        self.grid.setObjectName("templateGrid")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setIconSize(TILE)
        self.grid.setGridSize(QSize(TILE.width() + 16, TILE.height() + 48))
        self.grid.setWordWrap(True)
        self.grid.setUniformItemSizes(True)
        self.grid.setSpacing(4)

        self.title = QLabel()
        self.title.setObjectName("templateTitle")
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title.setFont(font)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(180)
        self.details = QLabel()
        self.details.setObjectName("templateDetails")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.open_button = QPushButton("Open in form")
        self.open_button.setObjectName("templateOpen")
        self.open_button.setDefault(True)
        self.save_button = QPushButton("Save to my library")
        self.save_button.setObjectName("templateSave")
        self.status = QLabel()
        self.status.setObjectName("templateStatus")
        self.status.setWordWrap(True)
        side = QWidget()
        side.setMinimumWidth(280)
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.title)
        side_layout.addWidget(self.preview)
        side_layout.addWidget(self.details, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.save_button)
        side_layout.addLayout(buttons)
        side_layout.addWidget(self.status)

        splitter = QSplitter()
        splitter.addWidget(self.categories)
        splitter.addWidget(self.grid)
        splitter.addWidget(side)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([180, 600, 300])
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        layout.addWidget(close)

        self._visible_timer = QTimer(self, singleShot=True, interval=0)
        self._visible_timer.timeout.connect(self._ask_visible)
        self._rebuild_timer = QTimer(self, singleShot=True, interval=50)
        self._rebuild_timer.timeout.connect(self._rebuild)

        self.search.textChanged.connect(self._rebuild)
        self.media.currentIndexChanged.connect(self._rebuild)
        self.runs_here.toggled.connect(self._on_runs_here)
        self.categories.currentRowChanged.connect(self._rebuild)
        self.grid.currentItemChanged.connect(self._show_details)
        self.grid.itemActivated.connect(self._open_item)
        self.grid.itemDoubleClicked.connect(self._open_item)
        self.grid.verticalScrollBar().valueChanged.connect(self._visible_timer.start)
        self.open_button.clicked.connect(self._open_current)
        self.save_button.clicked.connect(self._save_current)
        model.catalog_changed.connect(self._on_catalog)
        model.thumbnail_ready.connect(self._on_thumbnail)
        model.runnable_changed.connect(self._on_runnable)
        model.saved.connect(self._on_saved)
        model.loading_changed.connect(self._on_loading)
        self._on_catalog(model.categories)
        if not model.categories:
            model.reload()

    # -- state -> view ------------------------------------------------------------------------------
    def _on_loading(self, loading: bool) -> None:
        self.status.setText("Loading the catalogue…" if loading else "")

    def _on_catalog(self, _categories: object = None) -> None:
        self.categories.blockSignals(True)
        self.media.blockSignals(True)
        try:
            self.categories.clear()
            self.categories.addItem(f"{ALL} ({len(self._model.templates())})")
            for category in self._model.categories:
                item = QListWidgetItem(f"{category.title} ({len(category.templates)})")
                item.setData(NAME_ROLE, category.title)
                self.categories.addItem(item)
            self.categories.setCurrentRow(0)
            self.media.clear()
            self.media.addItem("All", "")
            for media in self._model.media_types():
                self.media.addItem(MEDIA_LABELS.get(media, media.title()), media)
        finally:
            self.categories.blockSignals(False)
            self.media.blockSignals(False)
        self._rebuild()

    def current_filter(self) -> TemplateFilter:
        item = self.categories.currentItem()
        category = item.data(NAME_ROLE) if item is not None else None
        return TemplateFilter(
            search=self.search.text(),
            category=category or "",
            media_type=self.media.currentData() or "",
            runs_here=self.runs_here.isChecked(),
        )

    def visible_names(self) -> list[str]:
        return [self.grid.item(i).data(NAME_ROLE) for i in range(self.grid.count())]

    def _rebuild(self) -> None:
        current = self.grid.currentItem()
        keep = current.data(NAME_ROLE) if current is not None else None
        self.grid.clear()
        for tpl in self._model.filtered(self.current_filter()):
            item = QListWidgetItem(
                _tile(self._model.thumbnail(tpl.name), TILE, _media(tpl), self._placeholders), tpl.title
            )
            item.setData(NAME_ROLE, tpl.name)
            item.setToolTip(tpl.description)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.grid.addItem(item)
            if tpl.name == keep:
                self.grid.setCurrentItem(item)
        if self.grid.currentItem() is None and self.grid.count():
            self.grid.setCurrentRow(0)
        if not self.grid.count():
            self._show_details(None)
        self._visible_timer.start()

    def _ask_visible(self) -> None:
        """Ask for the thumbnails of the tiles on screen only."""
        if not self.isVisible():
            return
        self.grid.doItemsLayout()  # the view lays items out lazily: without this a fresh grid has no rects
        viewport = self.grid.viewport().rect()
        for i in range(self.grid.count()):
            item = self.grid.item(i)
            if self.grid.visualItemRect(item).intersects(viewport):
                self._model.request_thumbnail(item.data(NAME_ROLE))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._visible_timer.start()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._visible_timer.start()

    def _item(self, name: str) -> QListWidgetItem | None:
        for i in range(self.grid.count()):
            if self.grid.item(i).data(NAME_ROLE) == name:
                return self.grid.item(i)
        return None

    def _on_thumbnail(self, name: str) -> None:
        item = self._item(name)
        if item is not None:
            tpl = self._model.template(name)
            item.setIcon(
                _tile(self._model.thumbnail(name), TILE, _media(tpl) if tpl else "", self._placeholders)
            )
        current = self.grid.currentItem()
        if current is not None and current.data(NAME_ROLE) == name:
            self._show_details(current)

    def _on_runs_here(self, checked: bool) -> None:
        if checked:
            self._model.check_runnable()
        self._rebuild()

    def _on_runnable(self, name: str) -> None:
        if self.runs_here.isChecked():
            self._rebuild_timer.start()
        current = self.grid.currentItem()
        if current is not None and current.data(NAME_ROLE) == name:
            self._show_details(current)

    def _show_details(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        tpl = self._model.template(item.data(NAME_ROLE)) if item is not None else None
        self.open_button.setEnabled(tpl is not None)
        self.save_button.setEnabled(tpl is not None)
        if tpl is None:
            self.title.setText("No template matches" if self._model.categories else "")
            self.details.setText("")
            self.preview.clear()
            return
        self.title.setText(tpl.title)
        image = self._model.thumbnail(tpl.name)
        if image is not None:
            self.preview.setPixmap(
                QPixmap.fromImage(image).scaled(
                    QSize(280, 200),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        else:
            self.preview.clear()
            self._model.request_thumbnail(tpl.name)
        self._model.check_runnable([tpl.name])
        self.details.setText(self._details_html(tpl))

    def _details_html(self, tpl: TemplateInfo) -> str:
        def esc(text: str) -> str:
            return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        rows = [f"<p>{esc(tpl.description)}</p>"] if tpl.description else []
        facts = [_media(tpl)]
        if tpl.category != facts[0]:
            facts.append(tpl.category)
        if size := _size_text(tpl.size):
            facts.append(f"download {size}")
        rows.append(f"<p style='color:gray'>{esc(' · '.join(f for f in facts if f))}</p>")
        if tpl.tags:
            rows.append(f"<p><b>Tags:</b> {esc(', '.join(tpl.tags))}</p>")
        if tpl.models:
            rows.append(f"<p><b>Models:</b> {esc(', '.join(tpl.models))}</p>")
        if tpl.custom_nodes:
            rows.append(f"<p><b>Custom nodes:</b> {esc(', '.join(tpl.custom_nodes))}</p>")
        verdict = self._model.runnable(tpl.name)
        if verdict is None:
            rows.append("<p style='color:gray'>Checking whether it runs on this server…</p>")
        elif verdict.ok:
            rows.append("<p style='color:#2e7d32'><b>Runs on this server.</b></p>")
        else:
            lacks = ["<b>Does not run on this server yet.</b>"]
            if verdict.missing_nodes:
                lacks.append(
                    "Missing nodes:" + "".join(f"<br>&nbsp;• {esc(n)}" for n in verdict.missing_nodes)
                )
            if verdict.missing_models:
                lacks.append(
                    "Missing models:" + "".join(f"<br>&nbsp;• {esc(m)}" for m in verdict.missing_models)
                )
            if verdict.error:
                lacks.append(esc(verdict.error))
            rows.append("<p style='color:#c62828'>" + "<br>".join(lacks) + "</p>")
        return "".join(rows)

    # -- actions ------------------------------------------------------------------------------------
    def _open_item(self, item: QListWidgetItem) -> None:
        if not self.isVisible():
            return  # a double click also activates: open once
        key = template_key(item.data(NAME_ROLE))
        self._library.select(key)
        self.open_requested.emit(key)
        self.accept()

    def _open_current(self) -> None:
        item = self.grid.currentItem()
        if item is not None:
            self._open_item(item)

    def _save_current(self) -> None:
        item = self.grid.currentItem()
        if item is not None:
            self.status.setText("Saving…")
            self._model.save_to_library(item.data(NAME_ROLE), self._library)

    def _on_saved(self, key: str) -> None:
        self.status.setText(f"Saved to your library as “{key.split(':', 1)[1].removesuffix('.json')}”.")
