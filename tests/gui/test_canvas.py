"""The canvas in the centre of the window, against the demo engine over real sockets: live previews at full
size while a run goes, the final image (the output file's pixels) once it is done, a batch as a grid to step
through, and nothing under the pointer moving when a run starts or ends. No sleeps: every wait is on a
condition. The docs' screenshots (docs/screenshot.png, run-progress.png, batch.png) are written here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from comfydesk.core.events import ExecutionStatus
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.canvas import EMPTY_TEXT
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.progress import BAR_HEIGHT
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

RUN_TIMEOUT = 30_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def demo(tmp_path: Path, step_delay: float) -> RunningFake:
    return start_fake_comfyui(
        FakeConfig(
            object_info=demo_object_info_path(),
            data_dir=tmp_path / "fake",
            step_delay=step_delay,
            demo=True,
        )
    )


@pytest.fixture
def quick_demo(tmp_path: Path) -> Iterator[RunningFake]:
    fake = demo(tmp_path, 0.002)
    yield fake
    fake.stop()


@pytest.fixture
def slow_demo(tmp_path: Path) -> Iterator[RunningFake]:
    """Slow enough to catch a run in the middle (previews on the canvas) before it ends."""
    fake = demo(tmp_path, 0.04)
    yield fake
    fake.stop()


def pattern(*, seed: int = 5, steps: int = 8, size: int = 384, name: str = "plasma") -> dict[str, Any]:
    return {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": name,
                "seed": seed,
                "width": size,
                "height": size,
                "steps": steps,
                "color_a": 1777502,
                "color_b": 16757575,
            },
            "_meta": {"title": "Pattern"},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo"}},
    }


def open_on(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, data_dir: Path, **kw: Any
) -> MainWindow:
    key = write_workflow(data_dir, "Plasma", pattern(**kw))
    window = open_window(server=fake.url, data_dir=data_dir)
    window.resize(1440, 900)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    return window


def same_pixels(a: QImage, b: QImage) -> bool:
    fmt = QImage.Format.Format_RGBA8888
    a, b = a.convertToFormat(fmt), b.convertToFormat(fmt)
    return a.size() == b.size() and a.constBits().tobytes() == b.constBits().tobytes()


def shown_centre(window: MainWindow) -> tuple[int, int, int]:
    """The colour the canvas paints at its centre (what the user sees)."""
    canvas = window.canvas.viewer.canvas
    grabbed = canvas.grab().toImage()
    colour = grabbed.pixelColor(grabbed.width() // 2, grabbed.height() // 2)
    return colour.red(), colour.green(), colour.blue()


def where(widget: QWidget) -> QRect:
    """The widget's rectangle in window coordinates."""
    window = widget.window()
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def test_previews_at_full_size_then_the_final_image(
    qtbot: QtBot, open_window: OpenWindow, slow_demo: RunningFake, tmp_path: Path, docs_shots: Path
) -> None:
    window = open_on(qtbot, open_window, slow_demo, tmp_path / "app", steps=30)
    canvas = window.canvas
    assert canvas.mode() == "empty" and canvas.viewer.canvas.message() == EMPTY_TEXT

    window.run_workflow()
    state = window.ctx.run_state
    qtbot.waitUntil(lambda: canvas.mode() == "preview" and state.step_progress[0] >= 6, timeout=RUN_TIMEOUT)
    # The preview fills the canvas (scaled to fit), not a thumbnail-sized box.
    view = canvas.viewer.canvas
    assert view.has_image() and view.fitted
    shown = view.image_size() * view.scale
    assert max(shown.width() / view.width(), shown.height() / view.height()) > 0.97
    assert canvas.viewer.title_label.text() == "Live preview"
    assert window.progress.details_shown() and window.progress.height() == BAR_HEIGHT
    assert window.progress.status_label.text() == "Running"
    assert window.grab().save(str(docs_shots / "run-progress.png"))

    # Done: the final image, from the output file, never the last preview.
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: canvas.viewer.current_image() is not None, timeout=RUN_TIMEOUT)
    assert state.status is ExecutionStatus.COMPLETED
    assert canvas.mode() == "image" and canvas.viewer.title_label.text() != "Live preview"
    result = window.results.results()[0]
    final = QImage(str(result.path))
    shown_image = canvas.viewer.current_image()
    assert shown_image is not None and same_pixels(shown_image, final)
    c = final.pixelColor(final.width() // 2, final.height() // 2)
    seen = shown_centre(window)
    assert all(abs(a - b) <= 6 for a, b in zip(seen, (c.red(), c.green(), c.blue()), strict=True)), seen
    assert window.progress.status_label.text() == "Done"
    # Zoom, 100% and fit work on it as in the gallery's viewer.
    canvas.viewer.actual_size()
    assert view.scale == pytest.approx(1.0) and not view.fitted
    canvas.viewer.fit()
    assert view.fitted
    assert window.grab().save(str(docs_shots / "screenshot.png"))


def test_batch_of_three_is_a_grid_to_step_through(
    qtbot: QtBot, open_window: OpenWindow, quick_demo: RunningFake, tmp_path: Path, docs_shots: Path
) -> None:
    window = open_on(qtbot, open_window, quick_demo, tmp_path / "app", size=256)
    canvas = window.canvas
    window.batch.setValue(3)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.results.count() == 3, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: canvas.mode() == "grid" and canvas.grid.count() == 3, timeout=RUN_TIMEOUT)
    # In batch order (the seeds moved on between runs: three different images).
    items = canvas.items()
    assert [i.batch_index for i in items] == [0, 1, 2]
    assert len({i.path.read_bytes() for i in items}) == 3
    assert {i.path for i in items} == {r.path for r in window.results.results()}
    # Tiles as large as the room allows: three across a wide canvas, each well over a thumbnail.
    assert canvas.grid.tile_size().width() > 200
    qtbot.waitUntil(lambda: all(not canvas.grid.item(i).icon().isNull() for i in range(3)), timeout=5_000)
    assert window.grab().save(str(docs_shots / "batch.png"))

    # Enter opens the selected one large; Right and Left step through; G goes back to the grid.
    canvas.grid.setFocus()
    canvas.grid.setCurrentRow(0)
    qtbot.keyClick(canvas.grid, Qt.Key.Key_Return)
    assert canvas.mode() == "image" and canvas.viewer.current_index() == 0
    qtbot.keyClick(canvas.viewer, Qt.Key.Key_Right)
    assert canvas.viewer.current_index() == 1
    qtbot.waitUntil(lambda: canvas.viewer.current_image() is not None)
    image = canvas.viewer.current_image()
    assert image is not None and same_pixels(image, QImage(str(items[1].path)))
    qtbot.keyClick(canvas.viewer, Qt.Key.Key_Right)
    qtbot.keyClick(canvas.viewer, Qt.Key.Key_Right)  # the last one: stays
    assert canvas.viewer.current_index() == 2
    qtbot.keyClick(canvas.viewer, Qt.Key.Key_Left)
    assert canvas.viewer.current_index() == 1
    assert canvas.grid_button.isEnabled()
    qtbot.keyClick(canvas.viewer, Qt.Key.Key_G)
    assert canvas.mode() == "grid" and canvas.grid.currentRow() == 1

    # A thumbnail of the strip under the canvas shows that image large.
    strip = window.results
    first = strip.item(strip.count() - 1)
    assert first is not None
    strip.itemClicked.emit(first)
    assert canvas.mode() == "image" and canvas.current_item() == items[0]

    # Compare is there too: the shown image against its neighbour, in the compare view.
    assert canvas.compare_button.isEnabled()
    qtbot.mouseClick(canvas.compare_button, Qt.MouseButton.LeftButton)
    compare = window.gallery_actions.compare
    assert compare is not None and compare.isVisible()
    compare.close()


def test_nothing_moves_when_a_run_starts_or_ends(
    qtbot: QtBot, open_window: OpenWindow, slow_demo: RunningFake, tmp_path: Path
) -> None:
    window = open_on(qtbot, open_window, slow_demo, tmp_path / "app", steps=20, size=256)
    qtbot.waitUntil(lambda: window.run_button.isEnabled())

    def layout() -> dict[str, QRect | int]:
        return {
            "run button": where(window.run_button),
            "batch": where(window.batch),
            "cancel": where(window.cancel_button),
            "form panel width": window.form_panel.width(),
            "canvas": where(window.canvas.viewer.canvas),
            "progress bar": where(window.progress),
            "results strip": where(window.results),
        }

    before = layout()
    window.run_workflow()
    qtbot.waitUntil(
        lambda: window.canvas.mode() == "preview" and window.progress.details_shown(), timeout=RUN_TIMEOUT
    )
    assert layout() == before
    qtbot.waitUntil(lambda: window.canvas.mode() == "image", timeout=RUN_TIMEOUT)
    assert window.ctx.run_state.status is ExecutionStatus.COMPLETED
    assert layout() == before


def test_old_saved_layout_is_tolerated(
    qtbot: QtBot, open_window: OpenWindow, quick_demo: RunningFake, tmp_path: Path
) -> None:
    """A settings file from the old layout (three-pane centre splitter, other dock state) or with junk."""
    data_dir = tmp_path / "app"
    window = open_window(server=quick_demo.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    settings = window.ctx.settings
    settings.set("centre_splitter_sizes", [500, 80, 150])
    settings.set("canvas_splitter_sizes", [400, 80, 150])  # the wrong count: ignored
    settings.set_window_state(b"not a Qt state at all")
    window.close()
    again = open_window(server=quick_demo.url, data_dir=data_dir)
    wait_connected(qtbot, again)
    qtbot.waitUntil(lambda: again.stack.currentWidget() is again.splitter)
    assert again.form_dock.isVisible() and not again.form_dock.isFloating()
    assert again.splitter.count() == 2 and again.splitter.sizes()[0] > again.splitter.sizes()[1]
    # The form panel floats and comes back, the run bar still at its foot.
    again.form_dock.setFloating(True)
    assert again.form_dock.isFloating()
    bar = where(again.form_panel.run_bar)
    assert bar.bottom() <= again.form_panel.height() and bar.bottom() >= again.form_panel.height() - 4
    again.form_dock.setFloating(False)
    again.form_toggle.trigger()
    assert not again.form_dock.isVisible()
    again.form_toggle.trigger()
    assert again.form_dock.isVisible()
