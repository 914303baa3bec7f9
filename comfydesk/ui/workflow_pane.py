"""The workflows pane: the library as a searchable tree (Local, Server, Templates, Samples).

Entries with problems get a badge and the problems in their tooltip. Local entries (and samples) show a
thumbnail: the latest picture made with the workflow, else the image the file is, else an empty square. Local
entries can be renamed (F2), duplicated, deleted and revealed from the context menu; files dropped on the pane
are added to the library. The pane reads `LibraryModel` and calls its slots; it starts no work itself.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.library import WORKFLOW_SUFFIXES, LibraryEntry, LibraryModel

__all__ = ["WorkflowPane"]

KEY_ROLE = Qt.ItemDataRole.UserRole
GROUPS = (("local", "Local"), ("server", "Server"), ("template", "Templates"), ("sample", "Samples"))
BADGE = "⚠"
THUMB = 36  # edge of the thumbnails in the tree, in device-independent pixels
GROUP_ROW = 26  # height of the group rows (Local, Server...), in device-independent pixels
WITH_THUMBS = ("local", "sample")


class WorkflowPane(QWidget):
    """The library tree with search, context menu and drop target."""

    open_requested = Signal()  # the "Open…" button: the window shows the file dialog
    activated = Signal(str)  # Enter or double-click on a workflow: the window moves on to its form

    def __init__(self, library: LibraryModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workflowPane")
        self.setAcceptDrops(True)
        self._library = library
        self._entries: list[LibraryEntry] = []
        self._selecting = False
        self._extra_actions: list[QAction] = []
        self._icons: dict[str, tuple[int, QIcon]] = {}  # entry key -> (its image's cacheKey, icon)
        self._blank = _blank_icon(THUMB, self.devicePixelRatioF())

        self.search = QLineEdit()
        self.search.setObjectName("workflowSearch")
        self.search.setPlaceholderText("Search workflows…")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search workflows")
        self.search.textChanged.connect(self._rebuild)
        # Down or Enter in the search box moves on to the (filtered) list, as in a file dialog.
        self.search.returnPressed.connect(self.focus_tree)
        down = QShortcut(QKeySequence(Qt.Key.Key_Down), self.search)
        down.setContext(Qt.ShortcutContext.WidgetShortcut)
        down.activated.connect(self.focus_tree)

        self.open_button = QPushButton("Open…")
        self.open_button.setObjectName("openWorkflowButton")
        self.open_button.setToolTip("Add a workflow file to the library (Ctrl+O)")
        self.open_button.clicked.connect(self.open_requested)

        self.tree = QTreeWidget()
        self.tree.setObjectName("workflowTree")
        self.tree.setAccessibleName("Workflow library")
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.currentItemChanged.connect(self._on_current_item)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.tree.itemChanged.connect(self._on_item_edited)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.setAcceptDrops(False)
        self.tree.setIconSize(QSize(THUMB, THUMB))

        self.rename_action = self._action("&Rename", "F2", self.rename_selected)
        self.duplicate_action = self._action("D&uplicate", "Ctrl+D", self.duplicate_selected)
        self.delete_action = self._action("&Delete", QKeySequence.StandardKey.Delete, self.delete_selected)
        self.reveal_action = self._action("Reveal &file", "Ctrl+Shift+R", self.reveal_selected)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self.setTabOrder(self.search, self.tree)

        library.entries_changed.connect(self._on_entries)
        library.current_changed.connect(lambda _c: self._select_key(self._library.selected_key))
        if library.thumbnails is not None:
            library.thumbnails.changed.connect(self._on_thumbnail)
        self._on_entries(library.entries)

    def add_context_actions(self, actions: list[QAction]) -> None:
        """More entries for the context menu (publishing to a server); their owner keeps them enabled."""
        self._extra_actions.extend(actions)

    def _action(self, text: str, shortcut: str | QKeySequence.StandardKey, slot: object) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.tree.addAction(action)
        return action

    # -- model -> view -----------------------------------------------------------------------------
    def _on_entries(self, entries: object) -> None:
        assert isinstance(entries, list)
        self._entries = entries
        self._rebuild()

    def _rebuild(self) -> None:
        words = self.search.text().lower().split()
        self._selecting = True
        self.tree.blockSignals(True)
        try:
            self.tree.clear()
            folder_icon = self._folder_icon()
            for source, title in GROUPS:
                matching = [e for e in self._entries if e.source == source and _matches(e, words)]
                if not matching and source in ("template", "sample"):
                    continue
                group = QTreeWidgetItem([f"{title} ({len(matching)})"])
                group.setIcon(0, folder_icon)
                group.setSizeHint(0, QSize(0, GROUP_ROW))  # the icon box is the thumbnails': keep these low
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                group.setData(0, KEY_ROLE, None)
                self.tree.addTopLevelItem(group)
                for entry in sorted(matching, key=lambda e: e.name.lower()):
                    group.addChild(self._item(entry))
                group.setExpanded(True)
        finally:
            self.tree.blockSignals(False)
            self._selecting = False
        self._select_key(self._library.selected_key)

    def _item(self, entry: LibraryEntry) -> QTreeWidgetItem:
        label = f"{entry.name}  {BADGE}" if entry.has_problems else entry.name
        item = QTreeWidgetItem([label])
        item.setData(0, KEY_ROLE, entry.key)
        tips = [entry.name]
        if entry.description:
            tips.append(entry.description)
        if entry.error:
            tips.append(f"Cannot be read: {entry.error}")
        tips.extend(f"Problem: {p}" for p in entry.problems)
        item.setToolTip(0, "\n".join(tips))
        item.setStatusTip(0, entry.description)
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if entry.editable:
            flags |= Qt.ItemFlag.ItemIsEditable
        item.setFlags(flags)
        if entry.has_problems:
            item.setData(0, Qt.ItemDataRole.AccessibleTextRole, f"{entry.name}, has problems")
        if entry.source in WITH_THUMBS:
            item.setIcon(0, self._icon(entry.key))
        return item

    # -- thumbnails --------------------------------------------------------------------------------
    def _folder_icon(self) -> QIcon:
        """The group's folder icon at its usual small size (the tree's icon size is the thumbnails')."""
        ratio = self.devicePixelRatioF()
        pixmap = self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon).pixmap(QSize(16, 16), ratio)
        return QIcon(pixmap)

    def _icon(self, key: str) -> QIcon:
        """The entry's thumbnail as an icon (a blank square while it has none, so the names line up)."""
        thumbs = self._library.thumbnails
        image = thumbs.image(key) if thumbs is not None else None
        if image is None or image.isNull():
            self._icons.pop(key, None)
            return self._blank
        cached = self._icons.get(key)
        if cached is not None and cached[0] == image.cacheKey():
            return cached[1]
        icon = QIcon(_square(image, THUMB, self.devicePixelRatioF()))
        self._icons[key] = (image.cacheKey(), icon)
        return icon

    def _on_thumbnail(self, key: str) -> None:
        item = self.item_for(key)
        if item is not None:
            self.tree.blockSignals(True)  # an icon is no edit (itemChanged would rename)
            try:
                item.setIcon(0, self._icon(key))
            finally:
                self.tree.blockSignals(False)

    def thumbnail_of(self, key: str) -> QImage | None:
        """The thumbnail shown for `key` (None: the blank square or no icon); for tests."""
        thumbs = self._library.thumbnails
        return thumbs.image(key) if thumbs is not None and self.item_for(key) is not None else None

    def _select_key(self, key: str | None) -> None:
        item = self.item_for(key) if key else None
        if item is None or item is self.tree.currentItem():
            return
        self._selecting = True
        try:
            self.tree.setCurrentItem(item, 0, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        finally:
            self._selecting = False

    def item_for(self, key: str | None) -> QTreeWidgetItem | None:
        return next((c for c in self._workflow_items() if c.data(0, KEY_ROLE) == key), None)

    def visible_names(self, source: str | None = None) -> list[str]:
        """Names shown in the tree (optionally of one source); for tests and accessibility checks."""
        keys = {e.key: e for e in self._entries}
        names: list[str] = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            assert group is not None
            for j in range(group.childCount()):
                child = group.child(j)
                entry = keys.get(str(child.data(0, KEY_ROLE))) if child is not None else None
                if entry is not None and (source is None or entry.source == source):
                    names.append(entry.name)
        return names

    # -- view -> model -----------------------------------------------------------------------------
    def focus_tree(self) -> None:
        """Give the tree focus, on the selected workflow or else the first one shown."""
        current = self.tree.currentItem()
        if current is None or not current.data(0, KEY_ROLE):
            first = next(iter(self._workflow_items()), None)
            if first is not None:
                self.tree.setCurrentItem(first)
        self.tree.setFocus(Qt.FocusReason.TabFocusReason)

    def _workflow_items(self) -> list[QTreeWidgetItem]:
        items: list[QTreeWidgetItem] = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            assert group is not None
            items += [c for j in range(group.childCount()) if (c := group.child(j)) is not None]
        return items

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        key = item.data(0, KEY_ROLE)
        if key:
            self._library.select(str(key))
            self.activated.emit(str(key))

    def selected_entry(self) -> LibraryEntry | None:
        item = self.tree.currentItem()
        key = item.data(0, KEY_ROLE) if item is not None else None
        return self._library.entry(str(key)) if key else None

    def _on_current_item(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        if self._selecting or current is None:
            return
        key = current.data(0, KEY_ROLE)
        if key:
            self._library.select(str(key))

    def _on_item_edited(self, item: QTreeWidgetItem, _column: int) -> None:
        key = item.data(0, KEY_ROLE)
        entry = self._library.entry(str(key)) if key else None
        new_name = item.text(0).strip()
        if entry is not None and new_name and new_name != entry.name:
            self._library.rename(entry.key, new_name)

    def rename_selected(self) -> None:
        entry = self.selected_entry()
        item = self.tree.currentItem()
        if entry is None or not entry.editable or item is None:
            return
        self.tree.blockSignals(True)
        item.setText(0, entry.name)  # edit the plain name, without the badge
        self.tree.blockSignals(False)
        self.tree.editItem(item, 0)

    def duplicate_selected(self) -> None:
        entry = self.selected_entry()
        if entry is not None and entry.path is not None:
            self._library.duplicate(entry.key)

    def delete_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None or not entry.editable:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete workflow",
            f"Delete “{entry.name}” from the local library?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setObjectName("confirmDelete")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(
            lambda b: (
                self._library.delete(entry.key)
                if box.standardButton(b) == QMessageBox.StandardButton.Yes
                else None
            )
        )
        box.open()  # window-modal, never a blocking exec()

    def reveal_selected(self) -> None:
        entry = self.selected_entry()
        self._library.reveal(entry.key if entry else None)

    def _context_menu(self, pos: QPoint) -> None:
        entry = self.selected_entry()
        menu = QMenu(self)
        for action in (self.rename_action, self.duplicate_action, self.delete_action):
            action.setEnabled(entry is not None and (entry.editable or action is self.duplicate_action))
            menu.addAction(action)
        self.duplicate_action.setEnabled(entry is not None and entry.path is not None)
        menu.addSeparator()
        menu.addAction(self.reveal_action)
        if self._extra_actions:
            menu.addSeparator()
            menu.addActions(self._extra_actions)
        menu.popup(self.tree.viewport().mapToGlobal(pos))

    # -- drag and drop -----------------------------------------------------------------------------
    @staticmethod
    def _dropped_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
        data = event.mimeData()
        if data is None or not data.hasUrls():
            return []
        paths = [Path(u.toLocalFile()) for u in data.urls() if u.isLocalFile()]
        return [p for p in paths if p.suffix.lower() in WORKFLOW_SUFFIXES]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self._library.add_files(paths)


def _square(image: QImage, edge: int, ratio: float) -> QPixmap:
    """`image` cropped to its centre square, scaled to `edge` device-independent pixels, corners rounded."""
    px = max(1, round(edge * ratio))
    side = min(image.width(), image.height())
    crop = image.copy(QRect((image.width() - side) // 2, (image.height() - side) // 2, side, side))
    scaled = crop.scaled(
        px, px, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    pixmap = QPixmap(px, px)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addRoundedRect(0, 0, px, px, px / 8, px / 8)
    painter.setClipPath(path)
    painter.drawImage(0, 0, scaled)
    painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def _blank_icon(edge: int, ratio: float) -> QIcon:
    """A faint rounded square: where a thumbnail would be, for entries without one."""
    px = max(1, round(edge * ratio))
    pixmap = QPixmap(px, px)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor(128, 128, 128, 90))
    painter.setBrush(QColor(128, 128, 128, 28))
    painter.drawRoundedRect(1, 1, px - 2, px - 2, px / 8, px / 8)
    painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return QIcon(pixmap)


def _matches(entry: LibraryEntry, words: list[str]) -> bool:
    text = f"{entry.name} {entry.description}".lower()
    return all(w in text for w in words)
