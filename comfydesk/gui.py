"""Start the window: `create_main_window` (tests, embedding) and `run` (the `comfydesk` command).

`run` shows the window's frame first (`show_frame`: size, place, theme, menus and docks, from the settings
file alone), then lists the nodes the node cache keeps of the server (`list_cached_nodes`), then builds the
app state and the other panes into it (`attach_app_state`); see `MainWindow`.

This module sits above every layer: it is the one place that builds the app state (`comfydesk.app`) and the
widgets (`comfydesk.ui`) together; `app` itself never imports `ui` (an import-linter contract).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

# Light on purpose: what the first frame needs. The app state and the panes (most of start-up) are imported
# once that frame is on screen (`run`), or at once by `create_main_window`.
from comfydesk.store.paths import resolve_paths
from comfydesk.store.settings import Settings
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.theme import apply_theme, set_reduce_motion

if TYPE_CHECKING:
    import asyncio

    from comfydesk.app.context import AppContext
    from comfydesk.backends.prefetch import ObjectInfoPrefetch
    from comfydesk.core.nodes import NodeCatalog, NodeSummary
    from comfydesk.store.catalog_cache import CatalogCache
    from comfydesk.store.profiles import ProfileStore

__all__ = [
    "FirstServer",
    "attach_app_state",
    "configure_logging",
    "create_main_window",
    "first_server",
    "list_cached_nodes",
    "run",
    "show_frame",
]

log = logging.getLogger(__name__)

PREFETCH_WAIT = 0.15
"""Seconds the start waits for the first server's node definitions, when nothing of it is cached, before it
builds the other panes (`list_cached_nodes`): they come a moment later, the nodes and the forms' definitions
much sooner, and the connection does not ask for them again."""

EXPOSE_WAIT = 0.1
"""Seconds `show_frame` waits for the window system to expose the frame before building the rest."""

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
    from comfydesk.app.context import build_context

    app = QApplication.instance()
    if isinstance(app, QApplication):
        apply_theme(app)
    ctx = build_context(server, data_dir)
    window = MainWindow(ctx)
    _started(window, ctx, files)
    return window


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cycle collector paused meanwhile: importing and building the window makes many objects and next
    to no garbage, which the collector would walk a few times for nothing (about 4% of start-up)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def show_frame(app: QApplication, data_dir: Path | None, settings: Settings | None = None) -> MainWindow:
    """The window's frame on screen (see `MainWindow`), in its saved size, place and theme: shown and
    painted before this returns, so the user sees the window while the rest of the app is built.
    `settings`: the data dir's settings file as already read (read here without)."""
    if settings is None:
        settings = Settings(resolve_paths(data_dir).settings_file)
    prefs = settings.preferences
    apply_theme(app, prefs.theme)
    set_reduce_motion(app, prefs.reduce_motion)
    window = MainWindow(settings=settings)
    window.setAnimated(not prefs.reduce_motion)
    window.show()
    handle = window.windowHandle()
    deadline = time.monotonic() + EXPOSE_WAIT  # a window system slow to expose it: go on anyway
    while handle is not None and not handle.isExposed() and time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
    app.processEvents()  # the first frame painted
    return window


@dataclass
class FirstServer:
    """The server the window connects to first, as the start knows it before the app state exists."""

    url: str
    profiles: ProfileStore
    """The profiles file as read: the app state takes it (read once: a damaged file's notice is its)."""
    cache: CatalogCache
    prefetch: ObjectInfoPrefetch | None
    """Its node definitions being asked for, when nothing of it is cached and that is safe to do."""


def first_server(server: str | None, data_dir: Path | None, settings: Settings) -> FirstServer:
    """`--server`, else the last used profile (`ProfileStore.starting`, as the app state connects). When the
    node cache keeps nothing of it, a ComfyUI on this computer is asked for its node definitions at once, on
    a thread of its own (`comfydesk.backends.prefetch`), parsed once the frame is on screen
    (`list_cached_nodes`)."""
    from comfydesk.backends.prefetch import ObjectInfoPrefetch, prefetch_allowed
    from comfydesk.store.catalog_cache import CatalogCache, catalogs_dir
    from comfydesk.store.profiles import ProfileStore

    paths = resolve_paths(data_dir)
    store = ProfileStore(paths.profiles_file)
    profile = store.starting(server, settings.last_profile)
    url = profile.url
    cache = CatalogCache(catalogs_dir(paths.data_dir))
    prefetch = None
    if prefetch_allowed(url, kind=profile.kind, auth=profile.auth) and not _cached(cache, url):
        prefetch = ObjectInfoPrefetch(url, hold=True)
    return FirstServer(url, store, cache, prefetch)


def _cached(cache: CatalogCache, url: str) -> bool:
    try:
        return cache.path_for(url).exists()
    except OSError:  # a data dir it cannot look into: say cached (no ask ahead); its errors come later
        return True


def list_cached_nodes(app: QApplication, window: MainWindow, first: FirstServer) -> None:
    """The start's second step: the nodes pane lists what the node cache keeps of the first server (the
    summaries: a tenth of the cache to parse; the definitions are read once the app state exists), or
    the definitions that server was asked for (waiting at most PREFETCH_WAIT for them); painted when the
    user left that pane in front."""
    listing: NodeCatalog | list[NodeSummary] | None = first.cache.load_summaries(first.url)
    prefetch = first.prefetch
    if listing is None and prefetch is not None:
        prefetch.release()  # parsed now, on its thread, while this one waits: the frame is on screen
        deadline = time.monotonic() + PREFETCH_WAIT
        while not prefetch.wait(0.005) and time.monotonic() < deadline:
            app.processEvents()
        listing = prefetch.catalog()
    window.show_node_list(listing)
    app.processEvents()


def attach_app_state(
    window: MainWindow,
    server: str | None,
    data_dir: Path | None,
    files: Sequence[Path] = (),
    first: FirstServer | None = None,
) -> AppContext:
    """Build the app state and the window's panes on it: on the settings the frame read, and what the start
    read of the first server (`first_server`: the profiles file, the definitions asked for)."""
    with _gc_paused():  # the imports too: they are most of what is made
        from comfydesk.app.context import build_context

        ctx = build_context(
            server,
            data_dir,
            settings=window.frame_settings,
            profile_store=first.profiles if first is not None else None,
        )
        if first is not None and first.prefetch is not None:
            first.prefetch.release()  # if it is still waiting (the frame was not shown)
            ctx.catalog.use_prefetch(first.prefetch)
        window.attach(ctx)
    _started(window, window.ctx, files)
    return window.ctx


def _started(window: MainWindow, ctx: AppContext, files: Sequence[Path]) -> None:
    from comfydesk.app.tasks import install_excepthook

    ctx._cleanups.append(install_excepthook(ctx.errors))
    paths = [Path(f) for f in files]
    # Connecting, the library scan and the imports they need come after the first frame.
    after_first_frame(window, lambda: _start(ctx, paths))


def _start(ctx: AppContext, paths: list[Path]) -> None:
    """The deferred start, unless the window closed first or no loop runs any more (it was closed and its
    loop stopped before the first frame came: nothing to start)."""
    import asyncio

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

    The window's frame is shown first (`show_frame`); the app state and the panes are built into it after.
    The loop stops only after `AppContext.aclose` (connection closed, demo engine stopped, settings written,
    bounded by SHUTDOWN_TIMEOUT): Qt's own quit on the last window would stop it half way.
    """
    configure_logging()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName("comfydesk")
    app.setApplicationDisplayName("comfydesk")
    app.setDesktopFileName("comfydesk")
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)  # the loop stops once the app state has shut down, not before
    settings = Settings(resolve_paths(data_dir).settings_file)
    first = first_server(server, data_dir, settings)
    window = show_frame(app, data_dir, settings)
    if window.isVisible():
        list_cached_nodes(app, window, first)
    if not window.isVisible():  # closed while its frame was being shown: nothing was started
        app.setQuitOnLastWindowClosed(quit_on_close)
        return 0

    import asyncio

    import qasync

    from comfydesk.app.collector import UiThreadCollector

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = UiThreadCollector()
    try:
        ctx = attach_app_state(window, server, data_dir, files, first)
        # What start-up made (modules, classes, the window: about 46,000 objects, none of them garbage) lives
        # as long as the app: kept out of the collector's reach, so that each full collection on the UI
        # thread does not walk it again (15-19 ms each, measured after start-up).
        gc.freeze()
        with loop:
            stopping: list[asyncio.Task[None]] = []

            def last_window_closed() -> None:
                if not stopping:
                    stopping.append(loop.create_task(_stop_after_shutdown(ctx, loop)))

            app.lastWindowClosed.connect(last_window_closed)
            loop.run_forever()
            if not ctx.closed:
                # app.quit() (the session ends) closed the window and ended the loop at once: finish closing.
                for task in stopping:
                    task.cancel()
                loop.run_until_complete(ctx.aclose())
    finally:
        gc.unfreeze()  # back to the collector: the process may go on (tests run the app in theirs)
        collector.stop()
        app.setQuitOnLastWindowClosed(quit_on_close)
        asyncio.set_event_loop(None)
    return 0


async def _stop_after_shutdown(ctx: AppContext, loop: asyncio.AbstractEventLoop) -> None:
    await ctx.aclose()  # started by the window's closeEvent: this waits for it (bounded)
    loop.stop()
