"""The built-in demo engine: the fake ComfyUI server, in-process, making procedural images (no AI model).

Starting it runs the server's start-up in a worker thread (the server then lives in its own thread); the
app connects to its URL like to any ComfyUI. Its sample workflows appear in the library whenever the connected
server is a demo engine, this one or another (`comfydesk demo-server`): the server says so in its
`/system_stats` (`system.argv` is `["comfydesk", "demo-server"]`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from comfydesk.app.tasks import TaskRunner
from comfydesk.backends.base import ServerInfo

if TYPE_CHECKING:
    from comfydesk.app.connection import ConnectionModel
    from comfydesk.app.library import LibraryModel

__all__ = ["DEMO_ARGV", "DEMO_LABEL", "DemoEngine", "is_demo_server", "list_samples_on_demo_servers"]

log = logging.getLogger(__name__)

DEMO_LABEL = "Demo engine — procedural images, no AI model"
DEMO_ARGV = ("comfydesk", "demo-server")
"""How a demo engine (in-process or `comfydesk demo-server`) names itself in `/system_stats` `system.argv`."""


def is_demo_server(info: ServerInfo | None) -> bool:
    """Whether the connected server says it is comfydesk's demo engine."""
    if info is None or info.kind != "comfyui" or not isinstance(info.raw, Mapping):
        return False
    system = info.raw.get("system")
    argv = system.get("argv") if isinstance(system, Mapping) else None
    return isinstance(argv, list) and tuple(argv[: len(DEMO_ARGV)]) == DEMO_ARGV


def list_samples_on_demo_servers(connection: ConnectionModel, library: LibraryModel) -> None:
    """List the demo engine's samples in the library while the connected server is a demo engine, wherever
    it runs; hide them once connected to another server (kept while connecting and reconnecting)."""

    def on_info(info: object) -> None:
        if info is None:
            return  # connecting or reconnecting: nothing is known yet
        demo = isinstance(info, ServerInfo) and is_demo_server(info)
        library.set_samples_dir(DemoEngine.samples_dir() if demo else None)

    connection.server_info_changed.connect(on_info)


class DemoEngine(QObject):
    """Starts and stops the in-process demo server; `url_changed` says where it listens (None: stopped)."""

    url_changed = Signal(object)  # str | None
    starting_changed = Signal(bool)

    def __init__(self, tasks: TaskRunner, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self.data_dir = data_dir
        self._server: Any = None
        self._url: str | None = None
        self._starting = False
        self._closed = False  # the app is quitting: no new start, and a start in progress is undone
        self._start_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def starting(self) -> bool:
        """True from start() until the engine answers (or fails to)."""
        return self._starting

    @property
    def running(self) -> bool:
        return self._server is not None

    @staticmethod
    def samples_dir() -> Path | None:
        try:
            from comfydesk.testing.demo import sample_workflows_dir
        except ImportError:
            return None
        found: Path = sample_workflows_dir()
        return found

    def start(self) -> None:
        """Start the engine in the background (no-op when it runs or is starting, or the app quits)."""
        if self._closed:
            return
        if self._server is not None or self._starting:
            if self._url:
                self.url_changed.emit(self._url)
            return
        self._set_starting(True)
        self._start_task = self._tasks.start(self._start(), what="Starting the demo engine", finish=True)

    async def _start(self) -> None:
        try:
            server = await asyncio.to_thread(self._start_blocking)
        finally:
            self._set_starting(False)
        if self._closed:  # quit while it started: stop it rather than leave its thread behind
            await asyncio.to_thread(server.stop)
            return
        self._server = server
        self._url = str(server.url)
        self.url_changed.emit(self._url)

    def _start_blocking(self) -> Any:
        from comfydesk.testing import start_fake_comfyui
        from comfydesk.testing.demo import demo_config

        self.data_dir.mkdir(parents=True, exist_ok=True)
        return start_fake_comfyui(demo_config(self.data_dir), host="127.0.0.1", port=0)

    def stop(self) -> None:
        """Stop the server, blocking for a moment (the app quits without a running loop)."""
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            try:
                server.stop()
            except Exception:
                log.warning("the demo engine did not stop cleanly", exc_info=True)
            self._url = None
            self.url_changed.emit(None)

    async def astop(self) -> None:
        """Stop the server for good without blocking the loop; a start in progress is waited for first."""
        self._closed = True
        if self._start_task is not None and not self._start_task.done():
            await asyncio.wait([self._start_task])
        server, self._server = self._server, None
        if server is not None:
            try:
                await asyncio.to_thread(server.stop)
            except Exception:
                log.warning("the demo engine did not stop cleanly", exc_info=True)
            self._url = None
            self.url_changed.emit(None)

    def _set_starting(self, starting: bool) -> None:
        if starting != self._starting:
            self._starting = starting
            self.starting_changed.emit(starting)
