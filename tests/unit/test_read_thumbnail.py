"""`read_thumbnail`: Qt's reader for PNG thumbnails, Pillow for the rest; the same size, look and guards as
`make_thumbnail`."""

from __future__ import annotations

import io
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PIL import Image
from PySide6.QtGui import QImage

from comfydesk.app.images import make_thumbnail, read_thumbnail
from comfydesk.core.errors import UnsafeInputError


def encoded(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Red across, green down: a picture whose scaling shows (and whose orientation can be told)."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 60)
            for y in range(height)
            for x in range(width)
        ]
    )
    return image.convert(mode)


def mean_difference(a: QImage, b: QImage) -> float:
    a = a.convertToFormat(QImage.Format.Format_RGB888)
    b = b.convertToFormat(QImage.Format.Format_RGB888)
    assert a.size() == b.size()
    total = 0
    for y in range(0, a.height(), 3):
        for x in range(0, a.width(), 3):
            pa, pb = a.pixelColor(x, y), b.pixelColor(x, y)
            total += abs(pa.red() - pb.red()) + abs(pa.green() - pb.green()) + abs(pa.blue() - pb.blue())
    return total / (3 * ((a.height() + 2) // 3) * ((a.width() + 2) // 3))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_a_png_fits_the_box_keeps_its_aspect_and_looks_like_pillows(mode: str) -> None:
    data = encoded(gradient(400, 200, mode))
    thumb = read_thumbnail(data, 160)
    assert (thumb.width(), thumb.height()) == (160, 80)
    # Pillow scales a palette image by nearest pixel: the reference is made from its colours instead.
    decoded = Image.open(io.BytesIO(data))
    reference = make_thumbnail(encoded(decoded.convert("RGBA") if mode == "P" else decoded), 160)
    assert (reference.width(), reference.height()) == (160, 80)
    assert mean_difference(thumb, reference) < 6  # of 255: the same picture, scaled as smoothly


def test_a_small_png_is_never_scaled_up() -> None:
    thumb = read_thumbnail(encoded(gradient(50, 40)), 160)
    assert (thumb.width(), thumb.height()) == (50, 40)


def test_a_png_over_the_pixel_budget_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(UnsafeInputError, match="decompression bomb"):
        read_thumbnail(encoded(gradient(100, 100)), 160, max_pixels=5_000)


def test_a_truncated_png_and_garbage_are_unsafe_input_errors() -> None:
    data = encoded(Image.effect_noise((256, 256), 64).convert("RGB"))
    with pytest.raises(UnsafeInputError):
        read_thumbnail(data[: len(data) // 2], 160)
    with pytest.raises(UnsafeInputError):
        read_thumbnail(b"\x89PNG\r\n\x1a\n" + b"IDAT" + b"\x00" * 64, 160)
    with pytest.raises(UnsafeInputError):
        read_thumbnail(b"not an image at all", 160)


def test_other_formats_go_through_pillow() -> None:
    thumb = read_thumbnail(encoded(gradient(300, 600), "JPEG", quality=90), 160)
    assert (thumb.width(), thumb.height()) == (80, 160)


def test_a_png_with_an_exif_orientation_is_turned_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    thumb = read_thumbnail(encoded(gradient(200, 100), exif=exif.tobytes()), 160)
    assert (thumb.width(), thumb.height()) == (80, 160)
