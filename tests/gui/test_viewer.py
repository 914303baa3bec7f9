"""The viewer: zoom around the cursor, pan, fit / 100 %, next / previous, hostile files, text and media;
compare side by side and split; screenshots for the docs."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest
import qasync
from PIL import Image, ImageDraw
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QNativeGestureEvent, QPointingDevice, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from comfydesk.app.gallery_actions import GalleryActions
from comfydesk.app.media import MediaLoader
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.store.journal import OutputRecord, RunRecord
from comfydesk.ui.compare import CompareView
from comfydesk.ui.viewer import ImageViewer
from comfydesk.ui.viewer_actions import GalleryActionSet
from comfydesk.ui.viewer_canvas import ImageCanvas
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]


def record(
    path: Path | None,
    id: int = 1,
    *,
    kind: str = "images",
    mime: str = "image/png",
    text: str | None = None,
    seed: int | None = 1234,
    name: str = "Portrait",
    size: tuple[int, int] | None = None,
) -> OutputRecord:
    return OutputRecord(
        id=id,
        run_id=id,
        node_id="9",
        kind=kind,
        path=path,
        text=text,
        sha256="",
        size=path.stat().st_size if path is not None and path.exists() else 0,
        width=size[0] if size else None,
        height=size[1] if size else None,
        mime=mime,
        created_at=time.time(),
        starred=False,
        workflow_name=name,
        server="gpu-box:8188",
        status="completed",
        seed=seed,
    )


def pattern_png(path: Path, size: tuple[int, int] = (400, 400), hue: int = 0) -> Path:
    """A test card: a grid of coloured squares, so a position in it is easy to check by eye."""
    image = Image.new("RGB", size, (20, 20, 30))
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 40):
        for y in range(0, size[1], 40):
            draw.rectangle((x + 2, y + 2, x + 37, y + 37), fill=((x + hue) % 256, (y * 2) % 256, 160))
    image.save(path)
    return path


def bomb_png(path: Path) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def wheel(widget: QWidget, pos: QPointF, delta: int = 120) -> None:
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, delta),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def mouse(widget: QWidget, kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
    event = QMouseEvent(
        kind,
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        Qt.MouseButton.LeftButton,
        buttons,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def drag(widget: QWidget, start: QPointF, end: QPointF) -> None:
    mouse(widget, QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    mid = (start + end) / 2
    mouse(widget, QEvent.Type.MouseMove, mid, Qt.MouseButton.LeftButton)
    mouse(widget, QEvent.Type.MouseMove, end, Qt.MouseButton.LeftButton)
    mouse(widget, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


@pytest.fixture
def viewer(qtbot: QtBot) -> ImageViewer:
    widget = ImageViewer(MediaLoader())
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def shown(qtbot: QtBot, viewer: ImageViewer, path: Path) -> None:
    qtbot.waitUntil(
        lambda: viewer.current_image() is not None and viewer.current().path == path, timeout=5000
    )


def close(a: QPointF, b: QPointF, tol: float = 0.01) -> bool:
    return abs(a.x() - b.x()) <= tol and abs(a.y() - b.y()) <= tol


def test_wheel_zooms_around_the_cursor(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    path = pattern_png(tmp_path / "a.png", (1600, 1200))
    viewer.show_record(record(path))
    shown(qtbot, viewer, path)
    canvas = viewer.canvas
    assert canvas.fitted
    assert canvas.scale == pytest.approx(canvas.fit_scale())
    for at in (QPointF(canvas.width() * 0.3, canvas.height() * 0.4), QPointF(canvas.width() * 0.7, 80)):
        before_scale = canvas.scale
        under = canvas.map_to_image(at)
        wheel(canvas, at, 120)
        assert canvas.scale == pytest.approx(before_scale * 1.0015**120)
        assert close(canvas.map_to_image(at), under), "the image point under the cursor stays put"
    wheel(canvas, QPointF(100, 100), -120)  # and back out, around another point
    assert not canvas.fitted
    assert viewer.zoom_label.text() == f"{canvas.scale * 100:.0f}%"


def test_drag_pans_and_stops_at_the_edges(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    path = pattern_png(tmp_path / "a.png", (800, 800))
    viewer.show_record(record(path))
    shown(qtbot, viewer, path)
    canvas = viewer.canvas
    canvas.zoom_to(4.0, QPointF(canvas.width() / 2, canvas.height() / 2))
    centre = QPointF(canvas.width() / 2, canvas.height() / 2)
    under = canvas.map_to_image(centre)
    drag(canvas, centre, centre + QPointF(-60, -40))
    assert close(canvas.map_to_image(centre), under + QPointF(60, 40) / 4.0)
    drag(canvas, centre, centre + QPointF(50_000, 50_000))  # far past the corner: the image stays in view
    assert close(canvas.offset(), QPointF(canvas.width() * 3 / 4, canvas.height() * 3 / 4))
    drag(canvas, centre, centre - QPointF(50_000, 50_000))
    far = canvas.map_from_image(QPointF(800, 800))
    assert close(far, QPointF(canvas.width() / 4, canvas.height() / 4))


def test_fit_and_actual_size_keys(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    path = pattern_png(tmp_path / "a.png", (300, 200))
    viewer.show_record(record(path))
    shown(qtbot, viewer, path)
    canvas = viewer.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    assert canvas.scale == 1.0
    image_rect_left = canvas.map_from_image(QPointF(0, 0))
    assert close(image_rect_left, QPointF((canvas.width() - 300) / 2, (canvas.height() - 200) / 2), 0.6)
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert canvas.scale == pytest.approx(1.25)
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert canvas.fitted
    assert canvas.scale == pytest.approx(min(canvas.width() / 300, canvas.height() / 200))
    viewer.resize(700, 500)  # fit follows the window
    qtbot.waitUntil(lambda: canvas.scale == pytest.approx(min(canvas.width() / 300, canvas.height() / 200)))
    viewer.actual_button.click()
    assert canvas.scale == 1.0
    viewer.fit_button.click()
    assert canvas.fitted


def test_next_previous_home_end(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    paths = [pattern_png(tmp_path / f"{i}.png", (200 + 10 * i, 200), hue=40 * i) for i in range(4)]
    records = [record(p, i + 1) for i, p in enumerate(paths)]
    seen: list[int] = []
    viewer.current_changed.connect(lambda r: seen.append(r.id))
    viewer.set_sequence(records, 1)
    shown(qtbot, viewer, paths[1])
    assert viewer.position_label.text() == "2 / 4"
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Right)
    shown(qtbot, viewer, paths[2])
    assert viewer.canvas.image_size().width() == 220
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_End)
    shown(qtbot, viewer, paths[3])
    assert not viewer.next_button.isEnabled()
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Right)  # at the end: stays
    assert viewer.current_index() == 3
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Home)
    shown(qtbot, viewer, paths[0])
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Left)
    assert viewer.current_index() == 0
    viewer.prev_button.click()
    assert seen == [2, 3, 4, 1]
    viewer.remove_records([1])  # deleted elsewhere: the viewer moves on
    shown(qtbot, viewer, paths[1])
    assert viewer.position_label.text() == "1 / 3"


def test_side_panel_shows_the_run(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    path = pattern_png(tmp_path / "a.png", (64, 48))
    rec = record(path, 5, size=(64, 48))
    run = RunRecord(
        id=5,
        profile_id="p",
        server="Studio GPU",
        workflow_name="Portrait",
        workflow_id=None,
        api_graph={"3": {"class_type": "KSampler", "inputs": {"seed": 987, "steps": 30}}},
        ui_graph=None,
        values={"3.seed": 987, "3.steps": 30, "prompt": "a lighthouse at dusk"},
        seed=987,
        status="completed",
        error=None,
        execution_id="x",
        created_at=1_700_000_000.0,
        finished_at=1_700_000_012.5,
    )
    viewer.show_record(rec, run)
    text = viewer.details.toPlainText()
    for expected in (
        "Portrait",
        "64 × 48 px",
        "987",
        "Studio GPU",
        "KSampler #3 › steps",
        "a lighthouse at dusk",
    ):
        assert expected in text
    assert "12.5 s" in text
    viewer.set_run(None)  # unknown run
    assert "not known" in viewer.details.toPlainText()
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_I)
    assert not viewer.details.isVisible()


@pytest.mark.parametrize("case", ["bomb", "truncated", "wrong extension", "missing"])
def test_hostile_files_show_a_reason(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path, case: str) -> None:
    good = pattern_png(tmp_path / "good.png", (100, 100))
    if case == "bomb":
        bad = bomb_png(tmp_path / "bomb.png")
        reason = "decompression bomb"
    elif case == "truncated":
        data = (FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes()
        bad = tmp_path / "cut.png"
        bad.write_bytes(data[: len(data) // 2])
        reason = "not a readable image"
    elif case == "wrong extension":
        bad = tmp_path / "notes.png"
        bad.write_text("these are notes, not pixels")
        reason = "not a readable image"
    else:
        bad = tmp_path / "gone.png"
        reason = "cannot read the file"
    viewer.set_sequence([record(bad, 1), record(good, 2)], 0)
    qtbot.waitUntil(lambda: viewer.canvas.message().startswith("Cannot show"), timeout=5000)
    assert reason in viewer.canvas.message()
    assert bad.name in viewer.canvas.message()
    assert viewer.current_image() is None
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Right)  # and the viewer goes on
    shown(qtbot, viewer, good)


def test_text_and_media_outputs(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42")
    blob = tmp_path / "model.safetensors"
    blob.write_bytes(b"{}")
    text = record(None, 1, kind="text", mime="text/plain", text="The caption: a fox in the snow.")
    video = record(clip, 2, kind="video", mime="video/mp4")
    other = record(blob, 3, kind="files", mime="application/octet-stream")
    viewer.set_sequence([text, video, other], 0)
    assert viewer.stack.currentWidget() is viewer.text
    assert viewer.text.toPlainText() == "The caption: a fox in the snow."
    viewer.next()
    assert viewer.stack.currentWidget() is viewer.media
    with qtbot.waitSignal(viewer.open_external_requested) as opened:
        viewer.media_button.click()
    assert opened.args == [video]
    viewer.next()
    with qtbot.waitSignal(viewer.reveal_requested) as revealed:
        viewer.media_button.click()
    assert revealed.args == [other]


def test_compare_side_by_side_moves_together(qtbot: QtBot, tmp_path: Path) -> None:
    a = pattern_png(tmp_path / "a.png", (800, 600))
    b = pattern_png(tmp_path / "b.png", (400, 300), hue=90)  # half the size: shown at the same size
    view = CompareView(MediaLoader())
    qtbot.addWidget(view)
    view.resize(1000, 500)
    view.show()
    qtbot.waitExposed(view)
    view.set_records(record(a, 1), record(b, 2))
    qtbot.waitUntil(lambda: all(i is not None for i in view.images()), timeout=5000)
    left, right = view.left, view.right
    assert right.scale == pytest.approx(left.scale * 2)
    at = QPointF(left.width() * 0.6, left.height() * 0.3)
    wheel(left, at, 240)
    assert right.scale == pytest.approx(left.scale * 2)
    assert close(right.offset(), left.offset())
    drag(right, QPointF(100, 100), QPointF(60, 80))  # pan the other one: the first follows
    assert close(right.offset(), left.offset())
    # The same spot of the picture sits under the same place on both sides.
    spot = QPointF(left.width() / 2, left.height() / 2)
    assert close(left.map_to_image(spot) / 2, right.map_to_image(spot), 0.01)


def test_compare_split_divider(qtbot: QtBot, tmp_path: Path) -> None:
    a = pattern_png(tmp_path / "a.png", (400, 400))
    b = pattern_png(tmp_path / "b.png", (400, 400), hue=120)
    view = CompareView(MediaLoader())
    qtbot.addWidget(view)
    view.resize(700, 600)
    view.show()
    view.set_records(record(a, 1), record(b, 2))
    qtbot.waitUntil(lambda: all(i is not None for i in view.images()), timeout=5000)
    with qtbot.waitSignal(view.mode_changed):
        view.split_button.click()
    assert view.mode() == "split"
    split = view.split
    qtbot.waitUntil(split.isVisible)
    x = split.divider_x()
    y = split.height() / 2
    drag(split, QPointF(x, y), QPointF(x - split.scale * 100, y))  # 100 image pixels to the left
    assert split.divider == pytest.approx(0.25, abs=0.005)
    assert view.slider.value() == pytest.approx(250, abs=5)
    view.slider.setValue(800)
    assert split.divider == pytest.approx(0.8)
    # Left of the divider the first image, right of it the second.
    grab = split.grab().toImage()
    dx = split.divider_x()
    left_px = grab.pixelColor(int(dx - 30), int(split.map_from_image(QPointF(0, 21)).y()))
    right_px = grab.pixelColor(int(dx + 30), int(split.map_from_image(QPointF(0, 21)).y()))
    assert left_px != right_px
    qtbot.keyClick(view, Qt.Key.Key_S)
    assert view.mode() == "side"


def test_canvas_without_an_image_ignores_input(qtbot: QtBot) -> None:
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(200, 200)
    wheel(canvas, QPointF(10, 10))
    drag(canvas, QPointF(10, 10), QPointF(50, 50))
    canvas.set_message("Loading…")
    assert canvas.grab().toImage().size().width() == 200
    canvas.set_image(QImage())
    assert not canvas.has_image()


def _art(name: str) -> Path:
    return FIXTURES / "templates" / name


def test_screenshots(qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path, docs_shots: Path) -> None:
    """docs/viewer.png (zoomed in, with the run beside it) and docs/compare.png (split)."""
    art = _art("flux_schnell-1.webp")
    image = Image.open(art)
    w, h = image.size
    png = tmp_path / "flux.png"
    image.convert("RGB").save(png)
    run = RunRecord(
        id=1,
        profile_id="studio",
        server="Studio GPU (gpu-box:8188)",
        workflow_name="Flux Schnell",
        workflow_id="template:flux_schnell",
        api_graph={
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}, "_meta": {"title": "Prompt"}},
            "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024}},
            "31": {"class_type": "KSampler", "inputs": {"seed": 972054013131368, "steps": 4}},
        },
        ui_graph=None,
        values={
            "6.text": "two paladins in white and gold robes with ornate embroidery, winged helmets, "
            "holding golden spears above the clouds, cinematic light, highly detailed",
            "27.width": 1024,
            "27.height": 1024,
            "31.seed": 972054013131368,
            "31.steps": 4,
            "31.cfg": 1.0,
            "31.sampler_name": "euler",
            "31.scheduler": "simple",
        },
        seed=972054013131368,
        status="completed",
        error=None,
        execution_id="e1",
        created_at=time.time() - 30,
        finished_at=time.time() - 22,
    )
    host = QWidget()
    qtbot.addWidget(host)
    action_set = GalleryActionSet(GalleryActions(TaskRunner(ErrorModel()), None), host)
    records = [record(png, i, size=(w, h), name="Flux Schnell", seed=972054013131368) for i in (1, 2, 3)]
    viewer = action_set.open_viewer(records[0], records)  # as the gallery opens it, with its actions
    viewer.resize(1280, 760)
    qtbot.waitExposed(viewer)
    viewer.set_run(run)
    qtbot.waitUntil(action_set.star_action.isEnabled)  # the actions act on what the viewer shows
    shown(qtbot, viewer, png)
    canvas = viewer.canvas
    canvas.zoom_to(2.5, canvas.map_from_image(QPointF(w * 0.52, h * 0.33)))
    docs = docs_shots
    assert viewer.grab().save(str(docs / "viewer.png"))

    draft = tmp_path / "draft.png"  # the same picture as a low-resolution draft: what an upscale fixes
    Image.open(png).resize((w // 4, h // 4), Image.Resampling.BILINEAR).resize((w, h)).save(draft)
    view = CompareView(MediaLoader())
    qtbot.addWidget(view)
    view.resize(1280, 760)
    view.show()
    qtbot.waitExposed(view)
    view.set_records(record(draft, 1, name="Draft 256 px"), record(png, 2, name="Upscaled 4x"))
    qtbot.waitUntil(lambda: all(i is not None for i in view.images()), timeout=5000)
    view.set_mode("split")
    qtbot.waitUntil(view.split.isVisible)
    view.split.zoom_to(1.4, view.split.map_from_image(QPointF(w * 0.45, h * 0.3)))
    view.split.set_divider(0.47)
    assert view.grab().save(str(docs / "compare.png"))
    assert Image.open(io.BytesIO((docs / "compare.png").read_bytes())).size[0] >= 1280


def test_trackpad_pinch_zooms_around_the_fingers(qtbot: QtBot, viewer: ImageViewer, tmp_path: Path) -> None:
    path = pattern_png(tmp_path / "a.png", (1200, 1200))
    viewer.show_record(record(path))
    shown(qtbot, viewer, path)
    canvas = viewer.canvas
    at = QPointF(canvas.width() * 0.4, canvas.height() * 0.6)
    under, scale = canvas.map_to_image(at), canvas.scale
    event = QNativeGestureEvent(
        Qt.NativeGestureType.ZoomNativeGesture,
        QPointingDevice.primaryPointingDevice(),
        2,
        at,
        at,
        QPointF(canvas.mapToGlobal(at.toPoint())),
        0.5,
        QPointF(0, 0),
    )
    QApplication.sendEvent(canvas, event)
    assert canvas.scale == pytest.approx(scale * 1.5)
    assert close(canvas.map_to_image(at), under)


def test_results_strip_opens_the_viewer(qtbot: QtBot, tmp_path: Path) -> None:
    from datetime import datetime

    from comfydesk.app.run_state import ResultItem
    from comfydesk.ui.results import ResultsStrip

    strip = ResultsStrip()
    qtbot.addWidget(strip)
    items = [
        ResultItem(
            pattern_png(tmp_path / f"{i}.png", (120, 90), hue=60 * i), f"e{i}", "Cats", "9", datetime.now()
        )
        for i in range(3)
    ]
    strip.add_results(items)
    strip.itemActivated.emit(strip.item(0))  # the newest
    viewer = strip.viewer
    assert isinstance(viewer, ImageViewer)  # a window of its own, closed with the strip's window
    assert viewer.position_label.text() == "1 / 3"
    qtbot.waitUntil(lambda: viewer.current_image() is not None, timeout=5000)
    assert viewer.current().path == strip.results()[0].path  # type: ignore[union-attr]
    viewer.next()
    qtbot.waitUntil(lambda: viewer.current_image() is not None, timeout=5000)
