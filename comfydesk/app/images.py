"""Image decoding for the UI: Pillow (or, for PNG thumbnails, Qt's reader) in, QImage out, off the UI thread.

`decode_image`, `make_thumbnail` and `read_thumbnail` are blocking and meant to run in a worker thread; the
`*_async` twins do that with `asyncio.to_thread`. A QImage (unlike a QPixmap) may be built in any thread.
Every decode goes through a pixel budget of our own, checked on the header before decoding, and Pillow's
decompression-bomb guard (Qt's reader: its allocation limit), so a hostile file turns into an
`UnsafeInputError` instead of eating the machine's memory. `read_thumbnail` lets Qt's reader decode and scale
a PNG: in C++, without holding Python's lock, so quicker than Pillow, the more so beside other decodes.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QIODevice, QSize, Qt
from PySide6.QtGui import QImage, QImageReader

from comfydesk.core.errors import UnsafeInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "decode_image_async",
    "make_thumbnail",
    "make_thumbnail_async",
    "read_thumbnail",
    "read_thumbnail_async",
]

DEFAULT_MAX_PIXELS = 64_000_000
"""About 8000 x 8000: far above any image a ComfyUI workflow makes, far below a bomb."""

SizeLike = QSize | tuple[int, int] | int


def _box(size: SizeLike) -> tuple[int, int]:
    if isinstance(size, QSize):
        return max(1, size.width()), max(1, size.height())
    if isinstance(size, int):
        return max(1, size), max(1, size)
    return max(1, int(size[0])), max(1, int(size[1]))


def _refuse_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UnsafeInputError(
            f"image refused: {width}x{height} is {width * height:,} pixels, more than the allowed "
            f"{max_pixels:,} (possible decompression bomb)"
        )


def _open(data: bytes, *, max_pixels: int) -> Image.Image:
    from PIL import Image, UnidentifiedImageError  # Pillow: imported when first needed, not at start-up

    try:
        # Pillow's own guard (Image.MAX_IMAGE_PIXELS) warns above its limit and raises above twice that;
        # our budget, checked from the header below, is the stricter one by default.
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeInputError(f"image refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnsafeInputError("not a readable image", details=str(exc)) from exc
    try:
        _refuse_size(*image.size, max_pixels)
    except UnsafeInputError:
        image.close()
        raise
    return image


def _to_qimage(image: Image.Image) -> QImage:
    # Opaque RGB and grey images skip the RGBA conversion, which costs more than the decode itself.
    if image.mode == "RGB":
        mode, fmt, depth = "RGB", QImage.Format.Format_RGB888, 3
    elif image.mode == "L":
        mode, fmt, depth = "L", QImage.Format.Format_Grayscale8, 1
    else:
        image = image if image.mode == "RGBA" else image.convert("RGBA")
        mode, fmt, depth = "RGBA", QImage.Format.Format_RGBA8888, 4
    raw = image.tobytes("raw", mode)
    qimage = QImage(raw, image.width, image.height, image.width * depth, fmt)
    # The QImage only borrows `raw`; copy so it owns its pixels once `raw` is collected.
    return qimage.copy()


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_size: QSize | tuple[int, int] | None = None,
) -> QImage:
    """Decode encoded image bytes (PNG, JPEG, WebP, ...) into a QImage; blocking, call it off the UI thread.

    `max_size` scales the result down to fit (aspect kept, never up). Raises UnsafeInputError for bombs and
    for data that is not a readable image.
    """
    from PIL import Image, ImageOps

    image = _open(data, max_pixels=max_pixels)
    try:
        if max_size is not None:
            box = _box(max_size)
            image.draft("RGB", box)  # JPEG: decode at a reduced scale, much faster
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of every pixel
            image.thumbnail(box, Image.Resampling.LANCZOS)
        else:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
        return _to_qimage(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeInputError(f"image refused as a decompression bomb: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnsafeInputError("not a readable image", details=str(exc)) from exc
    finally:
        image.close()


async def decode_image_async(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_size: QSize | tuple[int, int] | None = None,
) -> QImage:
    """`decode_image` in a worker thread."""
    return await asyncio.to_thread(_decode_call, data, max_pixels, max_size)


def _decode_call(data: bytes, max_pixels: int, max_size: QSize | tuple[int, int] | None) -> QImage:
    # Looked up at call time so tests can wrap `decode_image` to see which thread runs it.
    return decode_image(data, max_pixels=max_pixels, max_size=max_size)


def make_thumbnail(
    source: bytes | Path, size: SizeLike = 256, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> QImage:
    """A thumbnail fitting `size` (an int for a square box) of image bytes or an image file; blocking."""
    if isinstance(source, Path):
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise UnsafeInputError(f"cannot read {source.name}", details=str(exc)) from exc
    else:
        data = source
    return decode_image(data, max_pixels=max_pixels, max_size=_box(size))


async def make_thumbnail_async(
    source: bytes | Path, size: SizeLike = 256, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> QImage:
    """`make_thumbnail` in a worker thread."""
    return await asyncio.to_thread(make_thumbnail, source, size, max_pixels=max_pixels)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_thumbnail(data: bytes, size: SizeLike = 256, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> QImage:
    """A thumbnail fitting `size` of encoded image bytes; blocking. A PNG is decoded and scaled by Qt's
    reader; anything else, a PNG with an EXIF orientation, or one Qt cannot read goes to `make_thumbnail`
    (which raises UnsafeInputError for what is not a readable image). The pixel budget is checked on the
    header before any decoding, as there."""
    idat = data.find(b"IDAT") if data.startswith(_PNG_SIGNATURE) else -1
    if idat < 0 or data.find(b"eXIf", 0, idat) >= 0:
        return make_thumbnail(data, size, max_pixels=max_pixels)
    buffer = QBuffer()
    buffer.setData(data)
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer, b"png")
    full = reader.size()
    if full.isValid():
        _refuse_size(full.width(), full.height(), max_pixels)
        box = QSize(*_box(size))
        if full.width() > box.width() or full.height() > box.height():
            scaled = full.scaled(box, Qt.AspectRatioMode.KeepAspectRatio)
            reader.setScaledSize(scaled.expandedTo(QSize(1, 1)))  # never up, never below one pixel
        image = reader.read()
        if not image.isNull():
            return image
    return make_thumbnail(data, size, max_pixels=max_pixels)


async def read_thumbnail_async(
    data: bytes, size: SizeLike = 256, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> QImage:
    """`read_thumbnail` in a worker thread."""
    return await asyncio.to_thread(read_thumbnail, data, size, max_pixels=max_pixels)
