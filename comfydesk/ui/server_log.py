"""The server log panel: a ComfyUI installed on this computer, started by comfydesk (`LocalServer`).

A dock at the bottom of the window. While the server starts it says so with a busy bar, the seconds waited
and the last log lines; once it answers, where it runs; when the process ends on its own, the exit code in
the error colour with a Restart server button. The whole log streams into a read-only text view below
(kept to the last lines the model keeps). It shows itself when a start begins and after a crash.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QFontDatabase, QTextCursor
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.local_server import LOG_KEEP, LocalServer, ServerExited, ServerState
from comfydesk.ui.theme import accent_palette, error_color, set_style, status_color
from comfydesk.ui.window_layout import set_dock_pane

__all__ = ["ServerLogPanel", "add_server_log_dock"]

WAIT_LINES = 3
"""Log lines shown under the busy bar while the server starts."""


class ServerLogPanel(QWidget):
    """Binds to a `LocalServer`; `restart_action` and `stop_action` go in the Server menu."""

    def __init__(self, server: LocalServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("serverLogPanel")
        self.server = server
        self._crash: ServerExited | None = None

        self.status = QLabel("No server started by comfydesk.")
        self.status.setObjectName("serverStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy = QProgressBar()
        self.busy.setObjectName("serverStartingBar")
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setMaximumHeight(6)
        self.busy.hide()
        self.last_lines = QLabel()
        self.last_lines.setObjectName("serverLastLines")
        self.last_lines.setWordWrap(False)
        self.last_lines.setTextFormat(Qt.TextFormat.PlainText)
        self.last_lines.hide()

        self.restart_action = QAction("&Restart server", self)
        self.restart_action.setToolTip("Start the ComfyUI on this computer again")
        self.restart_action.triggered.connect(server.restart)
        self.stop_action = QAction("S&top server", self)
        self.stop_action.triggered.connect(self._stop)
        self.restart_button = QPushButton("Restart server")
        self.restart_button.setObjectName("restartServerButton")
        self.restart_button.clicked.connect(self.restart_action.trigger)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopServerButton")
        self.stop_button.clicked.connect(self.stop_action.trigger)

        self.log = QPlainTextEdit()
        self.log.setObjectName("serverLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_KEEP)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setAccessibleName("Server log")

        head = QHBoxLayout()
        head.addWidget(self.status, 1)
        head.addWidget(self.restart_button)
        head.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(head)
        layout.addWidget(self.busy)
        layout.addWidget(self.last_lines)
        layout.addWidget(self.log, 1)

        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update)
        for line in server.lines():
            self.log.appendPlainText(line)
        server.log_line.connect(self._on_line)
        server.state_changed.connect(self._on_state)
        server.exited.connect(self._on_exited)
        self._update()

    # -- model -> view -----------------------------------------------------------------------------
    def _on_line(self, line: str) -> None:
        bar = self.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.log.appendPlainText(line)
        if at_end:  # follow the log unless the user scrolled up to read
            self.log.moveCursor(QTextCursor.MoveOperation.End)
            bar.setValue(bar.maximum())
        if self.server.state is ServerState.STARTING:
            self._show_last_lines()
            self.last_lines.setVisible(bool(self.last_lines.text()))

    def _on_state(self, state: object) -> None:
        if state is ServerState.STARTING:
            self._crash = None
            self._tick.start()
        else:
            self._tick.stop()
        self._update()

    def _on_exited(self, error: object) -> None:
        if isinstance(error, ServerExited):
            self._crash = error
        self._update()

    def _stop(self) -> None:
        self.server._tasks.start(self.server.stop(), what="Stopping the ComfyUI server")

    def _show_last_lines(self) -> None:
        lines = [line for line in self.server.tail(WAIT_LINES) if line.strip()]
        self.last_lines.setText("\n".join(line[:160] for line in lines))

    def _update(self) -> None:
        server = self.server
        state = server.state
        palette = accent_palette(self)
        color = ""
        if state is ServerState.STARTING:
            waited = time.monotonic() - server.started_at if server.started_at else 0.0
            counted = f" ({waited:.0f} s)" if waited >= 1 else ""
            text = f"Starting ComfyUI… waiting for it to answer{counted}. Its last lines:"
            self._show_last_lines()
            color = status_color("connecting", palette).name()
        elif state is ServerState.RUNNING:
            where = server.url or ""
            text = (
                f"Using the ComfyUI that was already running at {where}."
                if server.adopted
                else f"ComfyUI is running on this computer at {where}."
            )
            color = status_color("connected", palette).name()
        elif state is ServerState.STOPPING:
            text = "Stopping ComfyUI…"
        elif state is ServerState.EXITED:
            code = self._crash.code if self._crash else server.exit_code
            text = (
                f"The server process exited with code {code}. Its last lines are below; "
                "fix what they say, then Restart server."
            )
            color = error_color(palette).name()
        else:
            text = "ComfyUI is stopped." if server.config is not None else "No server started by comfydesk."
        self.status.setText(text)
        set_style(self.status, f"color: {color}; font-weight: 600;" if color else "font-weight: 600;")
        starting = state is ServerState.STARTING
        self.busy.setVisible(starting)
        self.last_lines.setVisible(starting and bool(self.last_lines.text()))
        can_restart = server.config is not None and state in (ServerState.EXITED, ServerState.STOPPED)
        self.restart_action.setEnabled(can_restart)
        self.restart_button.setVisible(can_restart)
        can_stop = state in (ServerState.STARTING, ServerState.RUNNING) and not server.adopted
        self.stop_action.setEnabled(can_stop)
        self.stop_button.setVisible(can_stop)


def add_server_log_dock(
    window: QMainWindow, server: LocalServer, *, dock: QDockWidget | None = None
) -> QDockWidget:
    """The panel in a bottom dock, hidden until a managed server starts (then it shows itself); in `dock`
    when given (placed and hidden already: the main window's frame makes its docks)."""
    panel = ServerLogPanel(server)
    if dock is None:
        dock = QDockWidget("Server log", window)
        dock.setObjectName("serverLogDock")
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.hide()
    set_dock_pane(dock, panel)

    def reveal(state: object) -> None:
        if state in (ServerState.STARTING, ServerState.EXITED):
            dock.show()
            dock.raise_()

    server.state_changed.connect(reveal)
    toggle = dock.toggleViewAction()
    toggle.setText("Show server &log")
    return dock
