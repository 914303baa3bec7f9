"""The queue view: this window's pending and running executions, each with a cancel button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHeaderView, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from comfydesk.app.controller import QueueEntry, RunController

__all__ = ["QueueView"]

_ID_ROLE = Qt.ItemDataRole.UserRole


class _Tree(QTreeWidget):
    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_pressed.emit()
            return
        super().keyPressEvent(event)


class QueueView(QWidget):
    """Lists `QueueEntry` values; cancelling calls `RunController.cancel_execution`."""

    def __init__(self, controller: RunController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queueView")
        self._controller = controller
        self.tree = _Tree()
        self.tree.setObjectName("queueList")
        self.tree.setAccessibleName("Queued and running executions")
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Workflow", "Status", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setToolTip("Your pending and running executions (Delete cancels the selected one)")
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.delete_pressed.connect(self._cancel_selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        controller.queue_changed.connect(self.set_entries)
        self.set_entries(controller.queue_entries())

    def set_entries(self, entries: object) -> None:
        assert isinstance(entries, list)
        self.tree.clear()
        for entry in entries:
            assert isinstance(entry, QueueEntry)
            if entry.running:
                status = "running"
            elif entry.position is not None:
                status = f"queued (#{entry.position + 1})"
            else:
                status = "queued"
            item = QTreeWidgetItem([entry.label, status, ""])
            item.setData(0, _ID_ROLE, entry.execution_id)
            item.setToolTip(0, f"execution {entry.execution_id}")
            self.tree.addTopLevelItem(item)
            button = QPushButton("Cancel")
            button.setObjectName(f"cancel-{entry.execution_id}")
            button.setToolTip(f"Cancel {entry.label} (Delete)")
            button.setAccessibleName(f"Cancel {entry.label}")
            button.clicked.connect(
                lambda _=False, eid=entry.execution_id: self._controller.cancel_execution(eid)
            )
            self.tree.setItemWidget(item, 2, button)

    def count(self) -> int:
        return self.tree.topLevelItemCount()

    def _cancel_selected(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self._controller.cancel_execution(str(item.data(0, _ID_ROLE)))
