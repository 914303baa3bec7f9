"""SettingsWriter: writes a small file off the UI thread, latest state wins.

A write is an atomic replace with an fsync, which can take tens of milliseconds on a busy disk: too long for
the UI thread. `request()` only marks the file dirty; a task on the running asyncio loop takes a snapshot (on
the loop's thread, so the document is never read while it changes) and hands the bytes to one worker thread.
While that write is in flight, more requests collapse into one more write of the newest state. `flush()`
writes what is pending before returning (window close, app quit); without a running loop (the CLI, plain
unit tests) every request writes at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from pathlib import Path

from comfydesk.store import atomic

__all__ = ["SettingsWriter"]

log = logging.getLogger(__name__)


class SettingsWriter:
    """Coalescing background writer of one file; see the module docstring.

    `snapshot` returns the file's bytes as of now; it is called on the thread that calls `request`/`flush`
    (the UI thread). `on_error` gets a failed write's exception on that thread too (default: a log warning).
    """

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], bytes],
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self.on_error = on_error
        self._dirty = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: concurrent.futures.Future[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def pending(self) -> bool:
        """True while a change is not on disk yet."""
        return self._dirty or (self._inflight is not None and not self._inflight.done())

    def request(self) -> None:
        """The document changed: write it soon, off this thread (at once when no loop runs here)."""
        self._dirty = True
        if self._closed:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name=f"Writing {self.path.name}")

    def flush(self) -> None:
        """Block until the newest state is on disk (the write in flight first, then what is pending)."""
        self._wait_inflight()
        if self._dirty:
            self._dirty = False
            try:
                self._write(self._snapshot())
            except OSError as exc:
                self._report(exc)

    async def aflush(self) -> None:
        """Wait, without blocking the loop, until the newest state is on disk."""
        while self._dirty or (self._task is not None and not self._task.done()):
            if self._closed:
                self.flush()
                return
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._drain())
            await asyncio.shield(self._task)

    def close(self) -> None:
        """Flush and stop the worker thread; later requests write at once."""
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()  # its write (if one is in flight) is waited for below
        self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- internals ---------------------------------------------------------------------------------
    async def _drain(self) -> None:
        while self._dirty and not self._closed:
            self._dirty = False
            data = self._snapshot()
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="comfydesk-settings"
                )
            self._inflight = self._executor.submit(self._write, data)
            try:
                await asyncio.wrap_future(self._inflight)
            except OSError as exc:
                self._report(exc)

    def _wait_inflight(self) -> None:
        inflight = self._inflight
        if inflight is not None:
            try:
                inflight.result()
            except (concurrent.futures.CancelledError, OSError) as exc:
                log.debug("an earlier write of %s failed: %s", self.path, exc)  # its task reported it

    def _write(self, data: bytes) -> None:
        atomic.atomic_write_bytes(self.path, data)

    def _report(self, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error(exc)
        else:
            log.warning("could not write %s: %s", self.path, exc)
