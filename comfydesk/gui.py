"""Start the window: `create_main_window` (tests, embedding) and `run` (the `comfydesk` command).

This module sits above every layer: it is the one place that builds the app state (`comfydesk.app`) and the
widgets (`comfydesk.ui`) together; `app` itself never imports `ui` (an import-linter contract).
"""

from __future__ import annotations

import gc

# Importing the window's modules makes many objects and next to no garbage: the cycle collector would walk
# them all a few times for nothing (about 4% of start-up). It is paused for these imports only.
_gc_was_enabled = gc.isenabled()
gc.disable()
try:
    import asyncio
    import logging
    import sys
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    from comfydesk.app.collector import UiThreadCollector
    from comfydesk.app.context import AppContext, build_context
    from comfydesk.app.tasks import install_excepthook
    from comfydesk.ui.main_window import MainWindow
    from comfydesk.ui.theme import apply_theme
finally:
    if _gc_was_enabled:
        gc.enable()

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


def create_main_window(
    server: str | None = None, data_dir: Path | None = None, files: Sequence[Path] = ()
) -> MainWindow:
    """Build the app state and the main window; connecting starts once the (qasync) loop runs.

    Opening does no network I/O on the UI thread and shows no blocking dialog. `data_dir` isolates settings,
    library and results (tests and portable installs use it). `files` (workflows, or images made by ComfyUI:
    `comfydesk FILE`, a file opened from the desktop) are added to the library once it starts, the first
    one opened.
    """

    app = QApplication.instance()
    if isinstance(app, QApplication):
        apply_theme(app)
    ctx = build_context(server, data_dir)
    window = MainWindow(ctx)
    ctx._cleanups.append(install_excepthook(ctx.errors))
    paths = [Path(f) for f in files]
    # Connecting, the library scan and the imports they need come after the first frame.
    after_first_frame(window, lambda: _start(ctx, paths))
    return window


def _start(ctx: AppContext, paths: list[Path]) -> None:
    """The deferred start, unless the window closed first or no loop runs any more (it was closed and its
    loop stopped before the first frame came: nothing to start)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    if not ctx.closing:
        ctx.tasks.start(_begin(ctx, paths), what="Starting")


async def _begin(ctx: AppContext, paths: list[Path]) -> None:
    """The node catalog the server gave the last session first (read on a worker thread, shown before
    connecting makes the UI thread busy), then connecting and the library scan, then the files given
    (`comfydesk FILE`: added once the library has started, the first one opened)."""
    await ctx.catalog.show_cached(ctx.initial_profile().url)
    ctx.start()
    if paths:
        ctx.library.add_files(paths)


class _FirstFrame(QObject):
    """Calls `callback` once `window` has painted its first frame, or after FALLBACK_MS if it is not shown."""

    FALLBACK_MS = 300

    def __init__(self, window: QWidget, callback: Callable[[], object]) -> None:
        super().__init__(window)
        self._window = window
        self._callback: Callable[[], object] | None = callback
        window.installEventFilter(self)
        QTimer.singleShot(self.FALLBACK_MS, self, self._run)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window and event.type() == QEvent.Type.Paint:
            self._window.removeEventFilter(self)
            QTimer.singleShot(0, self, self._run)  # once this frame is on screen
        return False

    def _run(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            self._window.removeEventFilter(self)
            callback()


def after_first_frame(window: QWidget, callback: Callable[[], object]) -> None:
    """Run `callback` after the window's first frame (calls made in order run in that order)."""
    _FirstFrame(window, callback)


def run(server: str | None = None, data_dir: Path | None = None, files: Sequence[Path] = ()) -> int:
    """Run the app until the window closes and its state has shut down; returns the exit code.

    The loop stops only after `AppContext.aclose` (connection closed, demo engine stopped, settings written,
    bounded by SHUTDOWN_TIMEOUT): Qt's own quit on the last window would stop it half way.
    """
    import qasync

    configure_logging()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName("comfydesk")
    app.setApplicationDisplayName("comfydesk")
    app.setDesktopFileName("comfydesk")
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # the loop stops once the app state has shut down, not before
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = UiThreadCollector()
    try:
        window = create_main_window(server, data_dir, files)
        ctx = window.ctx
        with loop:
            stopping: list[asyncio.Task[None]] = []

            def last_window_closed() -> None:
                if not stopping:
                    stopping.append(loop.create_task(_stop_after_shutdown(ctx, loop)))

            app.lastWindowClosed.connect(last_window_closed)
            window.show()
            loop.run_forever()
            if not ctx.closed:
                # app.quit() (the session ends) closed the window and ended the loop at once: finish closing.
                for task in stopping:
                    task.cancel()
                loop.run_until_complete(ctx.aclose())
    finally:
        collector.stop()
        app.setQuitOnLastWindowClosed(quit_on_close)
        asyncio.set_event_loop(None)
    return 0


async def _stop_after_shutdown(ctx: AppContext, loop: asyncio.AbstractEventLoop) -> None:
    await ctx.aclose()  # started by the window's closeEvent: this waits for it (bounded)
    loop.stop()
