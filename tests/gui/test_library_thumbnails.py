"""Thumbnails in the workflow library: the latest result made with a workflow (following new runs), else the
image a PNG workflow file is, else none; a broken image is no thumbnail and no alarm. Against the fake ComfyUI
over real sockets; no sleeps."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PIL import Image, ImageDraw
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfydesk.app.library_thumbs import LIBRARY_THUMB_SIZE, LibraryThumbnails, file_thumb
from comfydesk.app.thumbnails import BROKEN
from comfydesk.core.pngmeta import embed_workflow_png
from comfydesk.core.templates import SeedControl
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.main_window import MainWindow
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

RUN_TIMEOUT = 20_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def demo_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(
            object_info=demo_object_info_path(), data_dir=tmp_path / "fake", step_delay=0.002, demo=True
        )
    )
    yield fake
    fake.stop()


def pattern_workflow(pattern: str = "plasma", size: int = 96) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": pattern,
                "seed": 7,
                "width": size,
                "height": size,
                "steps": 3,
                "color_a": 1777502,
                "color_b": 16757575,
            },
            "_meta": {"title": "Pattern"},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "thumbs"}},
    }


def sunset_png() -> bytes:
    """A wide picture (thumbnails crop it square): a sky, a sun, a sea."""
    image = Image.new("RGB", (320, 200), (250, 170, 90))
    draw = ImageDraw.Draw(image)
    for y in range(120):
        draw.line([(0, y), (320, y)], fill=(250 - y, 120 + y // 3, 90 + y))
    draw.ellipse([130, 70, 190, 130], fill=(255, 230, 120))
    draw.rectangle([0, 120, 320, 200], fill=(30, 70, 130))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def png_workflow(folder: Path, name: str, png: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.png").write_bytes(embed_workflow_png(png, prompt=pattern_workflow("rings")))
    return f"local:{name}.png"


def broken_png() -> bytes:
    """A PNG whose workflow text is fine but whose pixels are not: its IDAT is no zlib stream (CRC valid)."""
    good = embed_workflow_png(sunset_png(), prompt=pattern_workflow("stripes"))
    out = bytearray(good[:8])
    pos = 8
    while pos < len(good):
        (length,) = struct.unpack(">I", good[pos : pos + 4])
        kind = good[pos + 4 : pos + 8]
        body = good[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            body = b"\x00not a zlib stream\xff" * 8
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    return bytes(out)


def thumbs_of(window: MainWindow) -> LibraryThumbnails:
    thumbs = window.ctx.library.thumbnails
    assert thumbs is not None
    return thumbs


def test_a_finished_run_becomes_its_workflow_thumbnail(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    data_dir = tmp_path / "app"
    library_dir = data_dir / "workflows"
    key = write_workflow(data_dir, "Pattern", pattern_workflow())
    plain = write_workflow(data_dir, "No pictures yet", pattern_workflow("checker"))
    sunset = png_workflow(library_dir, "Sunset poster", sunset_png())
    (library_dir / "Broken picture.png").write_bytes(broken_png())
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    window.resize(1100, 700)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    # A fixed seed: a random one above 2**63 is not journaled today (SQLite INTEGER), which is another story.
    window.form.set_seed_control("1.seed", SeedControl.FIXED)
    thumbs, pane = thumbs_of(window), window.workflow_pane
    qtbot.waitUntil(lambda: pane.thumbnail_of(sunset) is not None and not thumbs.busy, timeout=10_000)
    assert thumbs.source(key) is None and pane.thumbnail_of(key) is None  # nothing made with it yet
    assert thumbs.source(plain) is None

    # A run completes: its picture is the workflow's thumbnail.
    qtbot.mouseClick(window.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: pane.thumbnail_of(key) is not None, timeout=10_000)
    first = thumbs.source(key)
    assert first is not None and first.is_result
    assert first.path.read_bytes() == window.results.results()[0].path.read_bytes()  # the result's file
    image = pane.thumbnail_of(key)
    assert image is not None and max(image.width(), image.height()) == LIBRARY_THUMB_SIZE
    assert thumbs.source(plain) is None  # the other workflows keep theirs
    assert thumbs.source(sunset) is not None and not thumbs.source(sunset).is_result  # type: ignore[union-attr]

    # Another result lands: the thumbnail follows it.
    row = window.form.rows["1.pattern"]
    row.editor.set_value("rings")
    row.editor.edited.emit()
    qtbot.mouseClick(window.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.results.count() == 2, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(
        lambda: (s := thumbs.source(key)) is not None and s.output_id != first.output_id, timeout=10_000
    )
    qtbot.waitUntil(lambda: pane.thumbnail_of(key) is not None, timeout=10_000)
    newest = window.results.results()[0].path.read_bytes()
    second = thumbs.source(key)
    assert second is not None and second.path.read_bytes() == newest

    # The pane with every kind: results, a PNG workflow, a broken PNG and plain JSON (blank squares), samples.
    qtbot.waitUntil(lambda: len(pane.visible_names("sample")) > 0, timeout=10_000)
    pane.resize(300, 620)
    pane.grab().save(str(artifacts_dir / "library-thumbs.png"))
    assert window.ctx.errors.history == []


def test_png_workflow_shows_its_image_and_a_broken_one_none(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    library_dir = data_dir / "workflows"
    sunset = png_workflow(library_dir, "Sunset poster", sunset_png())
    (library_dir / "Broken picture.png").write_bytes(broken_png())
    broken = "local:Broken picture.png"
    # No server at all: thumbnails come from the files alone.
    window = open_window(server="http://127.0.0.1:9", data_dir=data_dir)
    thumbs, pane = thumbs_of(window), window.workflow_pane
    qtbot.waitUntil(lambda: pane.item_for(broken) is not None and pane.item_for(sunset) is not None)
    qtbot.waitUntil(lambda: pane.thumbnail_of(sunset) is not None, timeout=10_000)

    image = pane.thumbnail_of(sunset)
    assert image is not None and (image.width(), image.height()) == (LIBRARY_THUMB_SIZE, 60)  # 320 x 200
    source = thumbs.source(sunset)
    assert source is not None and not source.is_result and source.path == library_dir / "Sunset poster.png"
    assert image.pixelColor(image.width() // 2, image.height() - 2).blue() > 100  # the sea, at the bottom

    # The broken one: tried, found unreadable, then simply no thumbnail; its workflow still reads fine.
    bad = file_thumb(library_dir / "Broken picture.png")
    assert bad is not None
    qtbot.waitUntil(lambda: thumbs.cache.state(bad.cache_id).startswith(BROKEN), timeout=10_000)
    qtbot.waitUntil(lambda: thumbs.source(broken) is None, timeout=10_000)
    assert pane.thumbnail_of(broken) is None
    entry = window.ctx.library.entry(broken)
    assert entry is not None and not entry.has_problems
    item = pane.item_for(broken)
    assert item is not None and "⚠" not in item.text(0) and "thumbnail" not in item.toolTip(0).lower()
    assert [e for e in window.ctx.errors.history if "Broken picture" in e.text or "thumbnail" in e.text] == []
    assert "Broken picture" not in window.statusBar().currentMessage()
