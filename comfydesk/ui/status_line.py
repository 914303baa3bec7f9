"""StatusLine: the window's status bar: the connection (coloured by its state, a reconnect countdown) on the
right, short notes on the left that go after a while or as soon as what they say is over. Errors are never
repeated here (the banner says them once)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

from comfydesk.app.connection import ConnectionModel, describe_status
from comfydesk.backends.base import ConnectionState, ConnectionStatus
from comfydesk.core.events import ExecutionStatus
from comfydesk.core.messages import for_disconnect
from comfydesk.ui.theme import accent_palette, set_style, status_color

__all__ = ["MESSAGE_MS", "StatusLine", "connection_tooltip"]

MESSAGE_MS = 8000  # a status-bar note goes after this, or sooner when what it says is over


class StatusLine(QObject):
    """See the module docstring. `label` is the connection's (object name `connectionStatus`)."""

    def __init__(self, bar: QStatusBar, connection: ConnectionModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bar = bar
        self.connection = connection
        self.label = QLabel()
        self.label.setObjectName("connectionStatus")
        self.label.setAccessibleName("Connection status")
        bar.addPermanentWidget(self.label)
        self._status_at = time.monotonic()
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self.update_connection)

    def show_message(self, text: str) -> None:
        self.bar.showMessage(text, MESSAGE_MS)

    def clear_message(self, *prefixes: str) -> None:
        """Clear the note if it is one of these (superseded: the run started, the demo is up)."""
        current = self.bar.currentMessage()
        if current and current.startswith(prefixes):
            self.bar.clearMessage()

    def on_run_status(self, status: object) -> None:
        if status is not None and status is not ExecutionStatus.QUEUED:
            self.clear_message("Queued ")

    def on_demo_starting(self, starting: bool) -> None:
        if starting:
            self.show_message("Starting the demo engine…")
        else:
            self.clear_message("Starting the demo engine")

    def on_status(self, status: ConnectionStatus) -> None:
        self._status_at = time.monotonic()
        if status.state is ConnectionState.RECONNECTING:
            self._countdown.start()
        else:
            self._countdown.stop()
        self.update_connection()

    def update_connection(self) -> None:
        conn = self.connection
        status = conn.status
        if status.state is ConnectionState.RECONNECTING and status.next_try_in is not None:
            left = max(0.0, status.next_try_in - (time.monotonic() - self._status_at))
            status = ConnectionStatus(status.state, status.attempt, left, status.reason)
        self.label.setText(
            describe_status(status, conn.server_info, conn.url, conn.queue_length, note=conn.note)
        )
        self.label.setToolTip(connection_tooltip(status, conn.url))
        color = status_color(status.state.value, accent_palette(self.label))
        set_style(self.label, f"color: {color.name()};")


def connection_tooltip(status: ConnectionStatus, url: str) -> str:
    """The connection label's tooltip: the server's address, and when it is down what to do and the
    technical reason (the label itself stays short)."""
    where = f"Server: {_shown(url)}" if url else ""
    if status.state is ConnectionState.CONNECTED or not status.reason:
        return where
    said = for_disconnect(status.reason)
    parts = [where, said.text, said.details and f"Details: {said.details}"]
    return "\n\n".join(p for p in parts if p)


def _shown(url: str) -> str:
    """The address without user, password, query or fragment (a token can hide in any of them)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"
