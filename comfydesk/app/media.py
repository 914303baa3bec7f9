"""Outputs as the viewer shows them: what kind each is, and `MediaLoader`, which decodes image files on Qt's
thread pool (with the decompression-bomb guard of `comfydesk.app.images`) and keeps the last few."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QImage

from comfydesk.app.images import decode_image
from comfydesk.core.errors import UnsafeInputError
from comfydesk.store.journal import OutputRecord

__all__ = ["MediaLoader", "media_class"]

_CACHE = 6  # decoded images kept for quick next/previous...
_CACHE_BYTES = 384 * 1024 * 1024  # ...within this much memory (one 8k image alone is 256 MB)


def media_class(record: OutputRecord) -> str:
    """ "image", "text", "video", "audio" or "file": how the viewer shows an output."""
    if record.kind == "text" or (record.path is None and record.text is not None):
        return "text"
    mime = record.mime or ""
    if mime.startswith("image/") or record.kind in ("images", "gifs"):
        return "image" if not mime.startswith("video/") else "video"
    for kind in ("video", "audio"):
        if mime.startswith(f"{kind}/") or record.kind == kind:
            return kind
    return "file"


class _Relay(QObject):
    done = Signal(object, object)  # path, QImage | str


class MediaLoader(QObject):
    """Decodes output files for the viewer on Qt's thread pool; keeps the last few for next/previous."""

    image_loaded = Signal(object, object)  # Path, QImage | str (why it cannot be shown)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _Relay(self)
        self._relay.done.connect(self._done)
        self._cache: OrderedDict[Path, QImage | str] = OrderedDict()
        self._pending: set[Path] = set()

    def cached(self, path: Path) -> QImage | str | None:
        return self._cache.get(path)

    def load(self, path: Path) -> None:
        """Decode `path`; `image_loaded` answers (at once from the cache)."""
        hit = self._cache.get(path)
        if hit is not None:
            self._cache.move_to_end(path)
            self.image_loaded.emit(path, hit)
            return
        if path in self._pending:
            return
        self._pending.add(path)
        relay = self._relay

        def work() -> None:
            result: object
            try:
                result = decode_image(path.read_bytes())
            except UnsafeInputError as exc:
                result = exc.message + (f" ({exc.details})" if exc.details else "")
            except OSError as exc:
                result = f"cannot read the file: {exc.strerror or exc}"
            with contextlib.suppress(RuntimeError):  # the loader may be gone
                relay.done.emit(path, result)

        QThreadPool.globalInstance().start(work)

    def _cache_bytes(self) -> int:
        return sum(v.sizeInBytes() for v in self._cache.values() if isinstance(v, QImage))

    def _done(self, path: object, result: object) -> None:
        assert isinstance(path, Path)
        self._pending.discard(path)
        if isinstance(result, QImage | str):
            self._cache[path] = result
            while len(self._cache) > 1 and (len(self._cache) > _CACHE or self._cache_bytes() > _CACHE_BYTES):
                self._cache.popitem(last=False)
            self.image_loaded.emit(path, result)
