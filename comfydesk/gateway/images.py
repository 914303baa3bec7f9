"""The gateway's temporary image store: output files copied from ComfyUI, served until their TTL runs out.

Files live in one directory as `<id>.<ext>`; each is written to a temp file and renamed into place inside the
transaction that records it. Bytes from a server are decoded (with Pillow's decompression-bomb guard) before
they are kept: what is served is a real image of the size it claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from comfydesk.gateway.db import now
from comfydesk.gateway.store import AsyncStore

__all__ = ["ImageStore", "ProbedImage", "probe_image"]

log = logging.getLogger(__name__)

MAX_PIXELS = 16384 * 16384
_FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "WEBP": ("webp", "image/webp")}
_FORMATS["GIF"] = ("gif", "image/gif")


@dataclass(frozen=True, slots=True)
class ProbedImage:
    ext: str
    mime: str
    width: int
    height: int


def probe_image(data: bytes) -> ProbedImage:
    """Format and size of encoded image bytes; ValueError for anything that is not a sane image."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ValueError(f"image of {width}x{height} pixels is too large")
                img.verify()
        except (OSError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"not a readable image: {exc}") from exc
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported image format {fmt or 'unknown'}")
    ext, mime = _FORMATS[fmt]
    return ProbedImage(ext, mime, width, height)


class ImageStore:
    def __init__(self, directory: Path, store: AsyncStore, *, ttl: float) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.ttl = ttl

    def path_of(self, file_name: str) -> Path:
        return self.directory / Path(file_name).name

    async def add(
        self, *, execution_id: int, token_id: int | None, node_id: str, source: str, data: bytes
    ) -> dict[str, Any] | None:
        """Keep one output; None when it was stored for this run already. ValueError: not an image."""
        probed = await asyncio.to_thread(probe_image, data)
        tmp = await asyncio.to_thread(self._write_temp, data)

        def commit(_image_id: int, file_name: str) -> None:
            os.replace(tmp, self.path_of(file_name))

        try:
            return await self.store.write_for(
                execution_id,
                self.store.sync.add_image,
                execution_id=execution_id,
                token_id=token_id,
                node_id=node_id,
                source=source,
                ext=probed.ext,
                mime=probed.mime,
                width=probed.width,
                height=probed.height,
                size=len(data),
                ttl=self.ttl,
                commit=commit,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _write_temp(self, data: bytes) -> str:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    async def sweep(self) -> int:
        """Delete expired files (and leftovers of interrupted writes); returns how many images expired."""
        expired = await self.store.read(self.store.sync.expired_images, now())
        await asyncio.to_thread(self._unlink_all, [row["file_name"] for row in expired])
        await self.store.write(self.store.sync.mark_images_deleted, [row["id"] for row in expired])
        return len(expired)

    def _unlink_all(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self.path_of(name).unlink()
        for leftover in self.directory.glob(".incoming-*.tmp"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < _stale_before():
                    leftover.unlink()


def _stale_before() -> float:
    import time

    return time.time() - 3600
