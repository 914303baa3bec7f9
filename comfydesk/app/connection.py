"""The connection to one server: owns the backend, connects in the background, listens to its events.

`ConnectionModel.connect_to(profile)` closes any previous backend and starts a task that connects, reads the
server info and the queue length, then consumes `backend.events()` for as long as the backend lives:
`ConnectionChanged` and `QueueChanged` update this model, execution events go out on `event_received` (the
run controller takes them). Nothing here blocks the UI thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from PySide6.QtCore import QObject, Signal

from comfydesk.app.demo import is_demo_server
from comfydesk.app.tasks import AppError, TaskRunner
from comfydesk.backends.base import (
    Backend,
    ConnectionChanged,
    ConnectionState,
    ConnectionStatus,
    QueueChanged,
    ServerInfo,
    Throttled,
)
from comfydesk.core.errors import AuthenticationError, ComfyDeskError
from comfydesk.core.messages import TOKEN_REJECTED, for_disconnect
from comfydesk.store.profiles import Profile

__all__ = [
    "GATEWAY_KIND",
    "TOKEN_REJECTED",
    "BackendFactory",
    "ConnectionModel",
    "describe_status",
    "disconnect_details",
]

log = logging.getLogger(__name__)

BackendFactory = Callable[[Profile, str | None], Backend]
"""Makes a backend for a profile and its secret (token or password, None when the profile has none)."""

DISCONNECTED = ConnectionStatus(ConnectionState.DISCONNECTED, reason="not connected")
GATEWAY_KIND = "v1-gateway"
"""The profile kind of a `comfydesk serve` gateway (the /api/v1/comfyui API)."""


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def server_name(info: ServerInfo | None) -> str:
    """ "ComfyUI" for a ComfyUI server, "comfydesk gateway" for ours; never the address again."""
    if info is None:
        return "server"
    if info.kind == "comfyui":
        return "ComfyUI"
    if info.kind == "comfydesk-gateway":
        return "comfydesk gateway"
    return info.name or info.kind


def describe_status(
    status: ConnectionStatus, info: ServerInfo | None, url: str, queue: int, *, note: str = ""
) -> str:
    """The status bar text: "Connected: ComfyUI 0.8.0 @ host:port · queue 2", "Reconnecting in 3 s ...",
    "Disconnected: Can't reach host:port" (in plain words: the raw reason is `disconnect_details`)."""
    if status.state is ConnectionState.CONNECTED:
        version = f" {info.version}" if info and info.version else ""
        extra = f" ({note})" if note else ""
        return f"Connected: {server_name(info)}{version}{extra} @ {_host(url)} · queue {queue}"
    if status.state is ConnectionState.CONNECTING:
        return f"Connecting to {_host(url)}…"
    if status.state is ConnectionState.RECONNECTING:
        wait = f" in {max(0, round(status.next_try_in))} s" if status.next_try_in is not None else ""
        attempt = f" (attempt {status.attempt})" if status.attempt else ""
        return f"Reconnecting{wait}{attempt}…"
    why = for_disconnect(status.reason)
    return f"Disconnected: {why.title}" if why.details else "Disconnected"


def disconnect_details(status: ConnectionStatus) -> str:
    """The technical reason behind a "Disconnected" status (for a tooltip or Details), "" when none."""
    return for_disconnect(status.reason).details if status.state is ConnectionState.DISCONNECTED else ""


class ConnectionModel(QObject):
    """The current server connection; one backend at a time."""

    status_changed = Signal(object)  # ConnectionStatus
    server_info_changed = Signal(object)  # ServerInfo | None
    queue_length_changed = Signal(int)
    profile_changed = Signal(object)  # Profile | None
    backend_changed = Signal(object)  # Backend | None: a connected backend is ready (or gone)
    event_received = Signal(object)  # an ExecutionEvent of an execution of this client
    profile_tested = Signal(str, object)  # profile id, ServerInfo | AppError
    throttled = Signal(object)  # Throttled: the server said "too many requests"; the backend waits, retries
    auth_rejected = Signal(object)  # Profile: connecting failed because the server refused our credentials

    def __init__(self, tasks: TaskRunner, factory: BackendFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._factory = factory
        self._backend: Backend | None = None
        self._ready: Backend | None = None
        self._profile: Profile | None = None
        self._secret: str | None = None
        self._status = DISCONNECTED
        self._info: ServerInfo | None = None
        self._queue = 0
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._queue_task: asyncio.Task[None] | None = None  # the first queue read of the current backend
        self._closers: set[asyncio.Task[None]] = set()  # closing replaced backends; aclose waits for them
        self.ever_connected = False

    # -- read access -------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend | None:
        """The connected backend (None while connecting or when disconnected for good)."""
        return self._ready

    @property
    def profile(self) -> Profile | None:
        return self._profile

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def server_info(self) -> ServerInfo | None:
        return self._info

    @property
    def queue_length(self) -> int:
        return self._queue

    @property
    def url(self) -> str:
        return self._profile.url if self._profile else ""

    @property
    def is_gateway(self) -> bool:
        """True when the profile is a comfydesk gateway (workflows are stored and run on the server)."""
        return self._profile is not None and self._profile.kind == GATEWAY_KIND

    @property
    def note(self) -> str:
        """A word about the connection shown next to the server name: a demo engine says so, the one started
        here and an external `comfydesk demo-server` alike (the server tells in its `/system_stats`)."""
        return "demo engine" if is_demo_server(self._info) else ""

    def status_text(self) -> str:
        return describe_status(self._status, self._info, self.url, self._queue, note=self.note)

    # -- slots -------------------------------------------------------------------------------------
    def connect_to(self, profile: Profile, secret: str | None = None) -> None:
        """Drop the current connection and connect to `profile` in the background."""
        self._generation += 1
        old, self._backend = self._backend, None
        self._set_ready(None)
        if self._task is not None:
            self._task.cancel()
        self._cancel_queue_read()
        if old is not None:
            self._close_later(old, "Closing the old connection")
        if profile != self._profile:
            self._profile = profile
            self.profile_changed.emit(profile)
        self._secret = secret
        self._set_info(None)
        self._set_status(ConnectionStatus(ConnectionState.CONNECTING))
        self._task = self._tasks.start(
            self._run(profile, secret, self._generation), what=f"Connecting to {profile.name}"
        )

    def reconnect(self) -> None:
        if self._profile is not None:
            self.connect_to(self._profile, self._secret)

    def disconnect_from_server(self, reason: str = "closed") -> None:
        self._generation += 1
        if self._task is not None:
            self._task.cancel()
        self._cancel_queue_read()
        old, self._backend = self._backend, None
        self._set_ready(None)
        if old is not None:
            self._close_later(old, "Closing the connection")
        self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason=reason))

    def test_profile(self, profile: Profile, secret: str | None = None) -> None:
        """Try `profile` without switching to it; the answer comes on `profile_tested`."""
        self._tasks.start(self._test(profile, secret), what=f"Testing {profile.name}")

    async def stop_listening(self) -> None:
        """First step of closing: end the connect/listen task; the backend stays open for what still runs."""
        self._generation += 1
        self._cancel_queue_read()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """Close for good: stop the connect/listen task, close the backend and any being closed, and wait."""
        await self.stop_listening()
        backend, self._backend = self._backend, None
        self._ready = None
        if backend is not None:
            await _quiet_close(backend)
        if self._closers:
            await asyncio.wait(list(self._closers))

    def _close_later(self, backend: Backend, what: str) -> None:
        task = self._tasks.start(_quiet_close(backend), what=what, finish=True)
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    # -- internals ---------------------------------------------------------------------------------
    async def _test(self, profile: Profile, secret: str | None) -> None:
        try:
            backend = self._factory(profile, secret)
            try:
                info = await backend.server_info()
            finally:
                await backend.close()
        except Exception as exc:
            self.profile_tested.emit(profile.id, AppError.from_exception(exc, what=f"Testing {profile.name}"))
            return
        self.profile_tested.emit(profile.id, info)

    async def _run(self, profile: Profile, secret: str | None, generation: int) -> None:
        try:
            backend = self._factory(profile, secret)
        except ComfyDeskError as exc:
            self._failed(profile, exc)
            return
        self._backend = backend
        try:
            await backend.connect()
            info = await backend.server_info()
        except asyncio.CancelledError:
            await _quiet_close(backend)
            raise
        except Exception as exc:
            await _quiet_close(backend)
            if generation == self._generation:
                self._backend = None
                self._failed(profile, exc)
            return
        if generation != self._generation:
            await _quiet_close(backend)
            return
        self.ever_connected = True
        self._set_info(info)
        self._set_status(ConnectionStatus(ConnectionState.CONNECTED))
        self._set_ready(backend)
        self._cancel_queue_read()
        reading = self._initial_queue(backend, generation)
        self._queue_task = self._tasks.start(reading, what="Reading the queue")
        await self._listen(backend, generation)

    def _failed(self, profile: Profile, exc: Exception) -> None:
        reason = exc.message if isinstance(exc, ComfyDeskError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, AuthenticationError):
            if profile.kind == GATEWAY_KIND:
                reason = TOKEN_REJECTED
            self.auth_rejected.emit(profile)  # before the status: the panel knows why it shows
        self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason=reason))

    def _cancel_queue_read(self) -> None:
        """The connection it read for is being replaced: its answer (or its error) means nothing now."""
        task, self._queue_task = self._queue_task, None
        if task is not None and not task.done():
            task.cancel()

    async def _initial_queue(self, backend: Backend, generation: int) -> None:
        try:
            items = await backend.queue()
        except Exception:
            if generation != self._generation:
                return  # the backend was replaced (and closed) meanwhile: not an error to show
            raise
        if generation == self._generation:
            self._set_queue(len(items))

    async def _listen(self, backend: Backend, generation: int) -> None:
        async for event in backend.events():
            if generation != self._generation:
                return
            if isinstance(event, ConnectionChanged):
                self._on_connection_changed(backend, event.status)
            elif isinstance(event, QueueChanged):
                self._set_queue(event.remaining)
            elif isinstance(event, Throttled):
                self.throttled.emit(event)
            else:
                self.event_received.emit(event)
        if generation == self._generation and self._status.state is not ConnectionState.DISCONNECTED:
            self._set_ready(None)
            self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason="the event stream ended"))

    def _on_connection_changed(self, backend: Backend, status: ConnectionStatus) -> None:
        if status.state is ConnectionState.CONNECTING and self._status.state is ConnectionState.CONNECTED:
            return  # queued by connect() before we listened: already past it
        self._set_status(status)
        if status.state is ConnectionState.CONNECTED:
            self._set_ready(backend)
        elif status.state is ConnectionState.DISCONNECTED:
            self._set_ready(None)

    def _set_ready(self, backend: Backend | None) -> None:
        if backend is not self._ready:
            self._ready = backend
            self.backend_changed.emit(backend)

    def _set_status(self, status: ConnectionStatus) -> None:
        if status != self._status:
            self._status = status
            self.status_changed.emit(status)

    def _set_info(self, info: ServerInfo | None) -> None:
        if info != self._info:
            self._info = info
            self.server_info_changed.emit(info)

    def _set_queue(self, n: int) -> None:
        if n != self._queue:
            self._queue = n
            self.queue_length_changed.emit(n)


async def _quiet_close(backend: Backend) -> None:
    try:
        await backend.close()
    except Exception:
        log.debug("error while closing a backend", exc_info=True)
