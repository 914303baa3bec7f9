"""Per-workflow form memory (values, pinned/hidden fields, last seed), written to settings after a pause."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer

from comfydesk.store.settings import Settings, WorkflowPrefs

__all__ = ["FormMemory"]


class FormMemory(QObject):
    """Per-workflow form memory (values, pinned/hidden, last seed), written to settings after a pause."""

    def __init__(self, settings: Settings, parent: QObject | None = None, *, delay_ms: int = 400) -> None:
        super().__init__(parent)
        self.settings = settings
        self._pending: dict[str, dict[str, Any]] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.flush)

    def remember(self, key: str, **changes: Any) -> None:
        self._pending.setdefault(key, {}).update(changes)
        self._timer.start()

    def prefs(self, key: str) -> WorkflowPrefs:
        """The remembered prefs of a workflow, including changes not written yet."""
        prefs = self.settings.workflow_prefs(key)
        for name, value in self._pending.get(key, {}).items():
            setattr(prefs, name, value)
        return prefs

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for key, changes in pending.items():
            self.settings.update_workflow_prefs(key, **changes)
