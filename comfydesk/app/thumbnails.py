"""Gallery thumbnails: made off the UI thread, cached on disk by content hash, kept in a small memory LRU.

`ThumbnailCache.request(sha256, path)` answers at once with the thumbnail's state and, when it is neither in
memory nor known to be broken, queues a job on the cache's own QThreadPool. A job reads the disk cache
(`<cache_dir>/<sha[:2]>/<sha256>-<size>.png`) or makes the thumbnail with `app.images.make_thumbnail` (Pillow
`draft` + `thumbnail`, behind the decompression-bomb guard). The result comes back to the UI thread through
a queued signal; `thumbnail_ready(sha256)` says a state changed. Made thumbnails are written to the disk
cache (temp file + rename) by the same pool once no thumbnail job waits, so the PNG encoding never delays
a tile on screen.

A file that cannot be shown (a bomb, truncated, not an image whatever its extension, gone from the disk)
becomes the state `"broken: <reason>"`, never an exception on the UI thread.

Jobs are taken newest request first: what the user scrolled to is what gets made, and when more than
`max_pending` wait, the oldest requests are dropped (they are asked again if their tile is painted again).
All bookkeeping happens on the thread that owns the cache; workers only compute and emit.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import OrderedDict, deque
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QImage

from comfydesk.app.images import DEFAULT_MAX_PIXELS, make_thumbnail
from comfydesk.core.errors import UnsafeInputError

__all__ = ["BROKEN", "LOADING", "READY", "THUMB_SIZE", "ThumbnailCache", "render_thumbnail"]

THUMB_SIZE = 256
"""Edge of the box thumbnails fit in; tiles are smaller, so HiDPI screens still get sharp pictures."""
LOADING = "loading"
READY = "ready"
BROKEN = "broken: "
PNG_QUALITY = 80  # Qt maps PNG "quality" to zlib level: 80 is level ~2, quick to write, small enough


def cache_file(cache_dir: Path, sha256: str, size: int) -> Path:
    return cache_dir / sha256[:2] / f"{sha256}-{size}.png"


def _reason(exc: BaseException) -> str:
    """A short reason for a broken tile (Pillow's wording, minus object reprs and file names)."""
    if isinstance(exc, UnsafeInputError):
        details = exc.details.strip().splitlines()[0] if exc.details.strip() else ""
        details = re.sub(r"\s*<[^>]*>|\s*'[^']*'", "", details).strip()
        if details.startswith("cannot identify image file"):
            return "not an image (unknown format)"
        return f"{exc.message} ({details})" if details and details not in exc.message else exc.message
    return str(exc) or type(exc).__name__


def render_thumbnail(
    path: Path, sha256: str, cache_dir: Path, size: int = THUMB_SIZE, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> QImage:
    """The thumbnail of `path` from the disk cache, or made and cached; blocking (a worker thread).

    Raises UnsafeInputError for files that cannot be shown."""
    image, made = _thumbnail(path, sha256, cache_dir, size, max_pixels)
    if made:
        store_thumbnail(image, cache_file(cache_dir, sha256, size))
    return image


def _thumbnail(path: Path, sha256: str, cache_dir: Path, size: int, max_pixels: int) -> tuple[QImage, bool]:
    """(thumbnail, True when it was made now rather than read from the disk cache)."""
    target = cache_file(cache_dir, sha256, size)
    if target.is_file():
        cached = QImage(str(target))
        if not cached.isNull():
            return cached, False
    if not path.is_file():
        raise UnsafeInputError("the file is missing", details=str(path))
    image = make_thumbnail(path, size, max_pixels=max_pixels)
    if image.isNull():
        raise UnsafeInputError("not a readable image")
    return image, True


def store_thumbnail(image: QImage, target: Path) -> None:
    """Write the thumbnail to the disk cache (temp file + rename); a failure only means it is made again."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        saved = image.save(str(tmp), "PNG", PNG_QUALITY)  # type: ignore[call-overload]
        if saved:
            os.replace(tmp, target)
        else:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full disk: the thumbnail is still shown, only not kept


class _Relay(QObject):
    done = Signal(str, object, bool)  # sha256, QImage | str (the reason it is broken), made now


class ThumbnailCache(QObject):
    """See the module docstring. `thumbnail_ready(sha256)` fires on the owner's thread."""

    thumbnail_ready = Signal(str)

    def __init__(
        self,
        cache_dir: Path,
        *,
        size: int = THUMB_SIZE,
        memory_bytes: int = 64 * 1024 * 1024,
        threads: int | None = None,
        max_pending: int = 256,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.cache_dir = Path(cache_dir)
        self.size = size
        self.memory_bytes = memory_bytes
        self.max_pending = max_pending
        self.max_pixels = max_pixels
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads or max(1, min(4, os.cpu_count() or 1)))
        self._memory: OrderedDict[str, QImage] = OrderedDict()
        self._memory_used = 0
        self._broken: dict[str, str] = {}
        self._queue: OrderedDict[str, Path] = OrderedDict()  # waiting, oldest request first
        self._running: set[str] = set()
        self._writes: deque[tuple[QImage, Path]] = deque()  # made, not on disk yet: written when idle
        self._writing = 0
        self._closed = False
        self._relay = _Relay(self)
        self._relay.done.connect(self._finished)
        self.made = 0  # jobs finished (ready or broken), for tests and benchmarks
        self.max_writes = 128  # beyond this many unwritten thumbnails, the oldest is dropped (made again)

    # -- queries -----------------------------------------------------------------------------------
    def image(self, sha256: str) -> QImage | None:
        image = self._memory.get(sha256)
        if image is not None:
            self._memory.move_to_end(sha256)
        return image

    def state(self, sha256: str) -> str:
        """ "ready", "loading", "broken: <reason>", or "" when never asked (or dropped since)."""
        if sha256 in self._memory:
            return READY
        if sha256 in self._broken:
            return BROKEN + self._broken[sha256]
        if sha256 in self._queue or sha256 in self._running:
            return LOADING
        return ""

    @property
    def pending(self) -> int:
        """Thumbnail jobs waiting or running (disk writes aside: `writes_pending`)."""
        return len(self._queue) + len(self._running)

    @property
    def writes_pending(self) -> int:
        """Thumbnails made but not written to the disk cache yet (waiting for idle workers)."""
        return len(self._writes) + self._writing

    # -- work --------------------------------------------------------------------------------------
    def request(self, sha256: str, path: Path | None) -> str:
        """The state of `sha256`'s thumbnail, starting its job unless it is ready, broken or under way."""
        state = self.state(sha256)
        if state == READY:
            return state
        if state.startswith(BROKEN) or sha256 in self._running:
            return state
        if path is None:
            self._broken[sha256] = "no file"
            return BROKEN + "no file"
        if sha256 in self._queue:
            self._queue.move_to_end(sha256)  # asked again: it is on screen now, make it sooner
        else:
            self._queue[sha256] = path
            while len(self._queue) > self.max_pending:
                self._queue.popitem(last=False)
        self._pump()
        return LOADING

    def forget(self, sha256: str) -> None:
        """Drop what is known about `sha256` (memory and broken state; the disk copy stays)."""
        image = self._memory.pop(sha256, None)
        if image is not None:
            self._memory_used -= image.sizeInBytes()
        self._broken.pop(sha256, None)

    def clear_memory(self) -> None:
        self._memory.clear()
        self._memory_used = 0
        self._broken.clear()

    def cancel_pending(self) -> None:
        """Forget every job not started yet (a new filter shows other images)."""
        self._queue.clear()

    def close(self, timeout_ms: int = 3000) -> None:
        """Stop taking jobs and wait a moment for the running ones."""
        self._closed = True
        self._queue.clear()
        self._writes.clear()  # made again next time: quitting does not wait for a cache
        self.pool.waitForDone(timeout_ms)

    def _pump(self) -> None:
        busy = len(self._running) + self._writing
        while not self._closed and self._queue and busy < self.pool.maxThreadCount():
            sha256, path = self._queue.popitem(last=True)  # newest request first
            self._running.add(sha256)
            self.pool.start(_Job(self._relay, sha256, path, self.cache_dir, self.size, self.max_pixels))
            busy += 1
        # Disk writes only when no thumbnail waits: what is on screen comes first.
        while not self._closed and not self._queue and self._writes and busy < self.pool.maxThreadCount():
            batch = [self._writes.popleft() for _ in range(min(8, len(self._writes)))]
            self._writing += 1
            self.pool.start(_Writes(self._relay, batch))
            busy += 1

    def _finished(self, sha256: str, result: object, made: bool) -> None:
        if not sha256:  # a batch of disk writes is done
            self._writing -= 1
            self._pump()
            return
        self._running.discard(sha256)
        self.made += 1
        if isinstance(result, QImage):
            self._remember(sha256, result)
            if made:
                self._writes.append((result, cache_file(self.cache_dir, sha256, self.size)))
                while len(self._writes) > self.max_writes:
                    self._writes.popleft()
        else:
            self._broken[sha256] = str(result)
        self._pump()
        self.thumbnail_ready.emit(sha256)

    def _remember(self, sha256: str, image: QImage) -> None:
        old = self._memory.pop(sha256, None)
        if old is not None:
            self._memory_used -= old.sizeInBytes()
        self._memory[sha256] = image
        self._memory_used += image.sizeInBytes()
        while self._memory_used > self.memory_bytes and len(self._memory) > 1:
            _key, dropped = self._memory.popitem(last=False)
            self._memory_used -= dropped.sizeInBytes()


class _Job:
    """One thumbnail on a pool thread; the outcome goes back through the relay's queued signal."""

    __slots__ = ("cache_dir", "max_pixels", "path", "relay", "sha256", "size")

    def __init__(
        self, relay: _Relay, sha256: str, path: Path, cache_dir: Path, size: int, max_pixels: int
    ) -> None:
        self.relay = relay
        self.sha256 = sha256
        self.path = path
        self.cache_dir = cache_dir
        self.size = size
        self.max_pixels = max_pixels

    def __call__(self) -> None:
        result: object
        made = False
        try:
            result, made = _thumbnail(self.path, self.sha256, self.cache_dir, self.size, self.max_pixels)
        except Exception as exc:  # hostile input raises many kinds; each one is a broken tile, not a crash
            result = _reason(exc)
        with contextlib.suppress(RuntimeError):  # the cache may be gone (window closed)
            self.relay.done.emit(self.sha256, result, made)


class _Writes:
    """A few thumbnails written to the disk cache on a pool thread, when no thumbnail job waits."""

    __slots__ = ("batch", "relay")

    def __init__(self, relay: _Relay, batch: list[tuple[QImage, Path]]) -> None:
        self.relay = relay
        self.batch = batch

    def __call__(self) -> None:
        for image, target in self.batch:
            if not target.is_file():
                store_thumbnail(image, target)
        with contextlib.suppress(RuntimeError):
            self.relay.done.emit("", None, False)
