"""What every backend shares: one ordered queue of events, the connection status, the event socket and the
background tasks that feed them. Subclasses open their own socket and run their own listen loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, cast

from websockets.asyncio.client import ClientConnection

from comfydesk.backends.base import BackendEvent, ConnectionChanged, ConnectionState, ConnectionStatus
from comfydesk.core.errors import BackendError

__all__ = ["EventStream"]

_CLOSED = object()


class EventStream:
    """The event-stream half of a backend: `events()`, `status`, and the lifecycle of the listen task."""

    url: str

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._status = ConnectionStatus(ConnectionState.DISCONNECTED)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    async def events(self) -> AsyncIterator[BackendEvent]:
        """Every event of this connection, in order; ends after `close()`."""
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            yield cast(BackendEvent, item)

    def _set_status(self, status: ConnectionStatus) -> None:
        self._status = status
        self._queue.put_nowait(ConnectionChanged(status))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_stream(
        self,
        open_socket: Callable[[], Awaitable[ClientConnection]],
        listen: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        """CONNECTING, open the socket, CONNECTED, start `listen`; DISCONNECTED (and raise) when it fails."""
        if self._reader is not None and not self._reader.done():
            return
        self._closing = False
        self._set_status(ConnectionStatus(ConnectionState.CONNECTING))
        try:
            self._ws = await open_socket()
        except BackendError as exc:
            self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason=str(exc)))
            raise
        self._set_status(ConnectionStatus(ConnectionState.CONNECTED))
        self._reader = asyncio.create_task(listen(), name=f"listen {self.url}")

    async def _stop_stream(self) -> None:
        """Stop listening and every background task, and close the socket."""
        self._closing = True
        tasks = [t for t in (self._reader, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reader = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None

    def _end_stream(self) -> None:
        """A closed connection's last events: DISCONNECTED (if not already), then the end of `events()`."""
        if self._status.state is not ConnectionState.DISCONNECTED:
            self._set_status(ConnectionStatus(ConnectionState.DISCONNECTED, reason="closed"))
        self._queue.put_nowait(_CLOSED)
