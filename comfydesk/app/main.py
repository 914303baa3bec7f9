"""Start the window: `create_main_window` (tests, embedding) and `run` (the `comfydesk` command)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

from comfydesk.app.context import build_context
from comfydesk.app.tasks import install_excepthook

__all__ = ["configure_logging", "create_main_window", "run"]

log = logging.getLogger(__name__)

QUIET_LOGGERS = ("httpx", "httpcore", "uvicorn.access", "websockets")
"""Libraries that log every request at INFO: only their warnings reach the console."""


def configure_logging(level: int = logging.INFO) -> None:
    """comfydesk's own messages at `level`; the HTTP client and the demo server's access log at WARNING."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("comfydesk").setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def create_main_window(server: str | None = None, data_dir: Path | None = None) -> QMainWindow:
    """Build the app state and the main window; connecting starts once the (qasync) loop runs.

    Opening does no network I/O on the UI thread and shows no blocking dialog. `data_dir` isolates settings,
    library and results (tests and portable installs use it).
    """
    from comfydesk.ui.main_window import MainWindow
    from comfydesk.ui.theme import apply_theme

    app = QApplication.instance()
    if isinstance(app, QApplication):
        apply_theme(app)
    ctx = build_context(server, data_dir)
    window = MainWindow(ctx)
    ctx._cleanups.append(install_excepthook(ctx.errors))
    QTimer.singleShot(0, ctx.start)
    return window


def run(server: str | None = None, data_dir: Path | None = None) -> int:
    """Run the app until the window closes; returns the exit code."""
    import qasync

    configure_logging()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName("comfydesk")
    app.setApplicationDisplayName("comfydesk")
    app.setDesktopFileName("comfydesk")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = create_main_window(server, data_dir)
    window.show()
    with loop:
        loop.run_forever()
    return 0
