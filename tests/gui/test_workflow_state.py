"""Each workflow keeps its own state in the window: its error banner, its failed run's panel, its results on
the canvas and its batch count. Switching shows the other workflow's own (or none); switching back restores
it; a run of A ending while B is on screen changes A's state (and the gallery), never B's view. Against the
fake ComfyUI over real sockets; no sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from comfydesk.app.run_state import ResultItem
from comfydesk.app.workflow_state import WorkflowStates
from comfydesk.core.events import ExecutionStatus
from comfydesk.core.messages import CATALOGUE
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.ui.canvas import EMPTY_TEXT
from comfydesk.ui.main_window import MainWindow
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

RUN_TIMEOUT = 30_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    """The captured ComfyUI 0.8.0 catalogue, with the test nodes (TestSlowSteps, TestFail)."""
    running = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "f")
    )
    yield running
    running.stop()


def image_prompt(colour: int, *, steps: int = 2, delay: float = 0.0) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": colour},
        },
        "2": {"class_type": "TestSlowSteps", "inputs": {"image": ["1", 0], "steps": steps, "delay": delay}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "img"}},
    }


def failing_prompt() -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "TestFail",
            "inputs": {"message": "boom: deliberate"},
            "_meta": {"title": "Breaker"},
        },
    }


NO_OUTPUT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}
}


def idle(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)


def test_switching_workflows_shows_each_ones_own_state(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    data_dir = tmp_path / "app"
    good = write_workflow(data_dir, "Good", image_prompt(0x3366CC))
    broken = write_workflow(data_dir, "Broken", failing_prompt())
    lonely = write_workflow(data_dir, "NoOutput", NO_OUTPUT)
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    fail_view, banner, canvas = window.progress.error_view, window.error_view, window.canvas

    # Broken fails at run time: its failure panel, "Failed".
    pick(qtbot, window, broken)
    window.run_workflow()
    qtbot.waitUntil(fail_view.isVisible, timeout=RUN_TIMEOUT)
    idle(qtbot, window)
    failure_text = fail_view.message.text()
    assert "Breaker" in fail_view.title.text()
    assert window.progress.status_label.text() == "Failed"

    # Good: none of it; a batch of two of its own -> a grid of its two results.
    pick(qtbot, window, good)
    assert not fail_view.isVisible() and not banner.isVisible()
    assert window.progress.status_label.text() == "Ready"
    assert window.batch.value() == 1
    assert canvas.mode() == "empty" and window.results.count() == 0
    window.batch.setValue(2)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.results.count() == 2 and canvas.mode() == "grid", timeout=RUN_TIMEOUT)
    idle(qtbot, window)
    good_results = [r.path for r in canvas.items()]
    assert window.progress.status_label.text() == "Done"

    # NoOutput is refused before it runs: one banner, its own.
    pick(qtbot, window, lonely)
    assert window.batch.value() == 1 and canvas.mode() == "empty" and window.results.count() == 0
    assert canvas.viewer.canvas.message() == EMPTY_TEXT
    assert not fail_view.isVisible()
    window.run_workflow()
    qtbot.waitUntil(banner.isVisible, timeout=RUN_TIMEOUT)
    assert banner.message.text() == CATALOGUE["prompt_no_outputs"]

    # Back to Broken: its failure again, not NoOutput's banner; its batch count, no results.
    pick(qtbot, window, broken)
    assert fail_view.isVisible() and fail_view.message.text() == failure_text
    assert not banner.isVisible()
    assert window.progress.status_label.text() == "Failed"
    assert window.batch.value() == 1 and canvas.mode() == "empty"
    window.grab().save(str(artifacts_dir / "workflow-state-broken.png"))

    # Back to Good: its two results on the canvas, its strip, its batch count of two, no banner.
    pick(qtbot, window, good)
    assert not fail_view.isVisible() and not banner.isVisible()
    assert window.batch.value() == 2
    assert canvas.mode() == "grid" and [r.path for r in canvas.items()] == good_results
    assert window.results.count() == 2
    assert window.progress.status_label.text() == "Done"
    window.grab().save(str(artifacts_dir / "workflow-state-good.png"))

    # And NoOutput still has its banner.
    pick(qtbot, window, lonely)
    assert banner.isVisible() and banner.message.text() == CATALOGUE["prompt_no_outputs"]


def test_a_run_ending_in_the_background_updates_its_own_workflow(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    slow = write_workflow(data_dir, "Slow", image_prompt(0xCC3311, steps=40, delay=0.02))
    other = write_workflow(data_dir, "Other", image_prompt(0x11AA44))
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    state = window.ctx.run_state
    pick(qtbot, window, slow)
    window.run_workflow()
    qtbot.waitUntil(lambda: state.status is ExecutionStatus.RUNNING, timeout=RUN_TIMEOUT)
    assert window.progress.details_shown()

    # While it runs, Other is shown: Ready, no progress of Slow's, an empty canvas.
    pick(qtbot, window, other)
    assert window.progress.status_label.text() == "Ready" and not window.progress.details_shown()
    assert window.canvas.mode() == "empty"
    states: WorkflowStates = window.run_view.states
    qtbot.waitUntil(lambda: len(states.get(slow).results) == 1, timeout=RUN_TIMEOUT)
    idle(qtbot, window)
    # Slow's result went to Slow (and to the gallery), Other's view did not change.
    assert window.canvas.mode() == "empty" and window.results.count() == 0
    assert window.progress.status_label.text() == "Ready"
    assert states.get(other).results == [] and states.get(slow).status is ExecutionStatus.COMPLETED
    qtbot.waitUntil(lambda: window.ctx.gallery.rowCount() >= 1, timeout=RUN_TIMEOUT)

    # Back to Slow: its final image on the canvas, from its output file, and "Done".
    pick(qtbot, window, slow)
    assert window.canvas.mode() == "image" and window.progress.status_label.text() == "Done"
    result = states.get(slow).results[0]
    assert isinstance(result, ResultItem) and result.workflow_key == slow
    qtbot.waitUntil(lambda: window.canvas.viewer.current_image() is not None)
    shown = window.canvas.viewer.current_image()
    assert shown is not None
    final = QImage(str(result.path))
    centre = final.pixelColor(final.width() // 2, final.height() // 2)
    assert shown.pixelColor(shown.width() // 2, shown.height() // 2) == centre
    assert (centre.red(), centre.green(), centre.blue()) == (0xCC, 0x33, 0x11)


def test_states_are_kept_per_key(tmp_path: Path) -> None:
    """The app-layer store alone: results go to their own workflow, a new batch replaces the last one shown,
    odd batch counts are clamped, and an unknown workflow reads as a fresh state without being stored."""
    from datetime import datetime, timedelta

    from comfydesk.app.run_state import RunState

    states = WorkflowStates(RunState())
    changed: list[str] = []
    states.changed.connect(changed.append)
    start = datetime(2026, 1, 2, 3, 4, 5)

    def item(key: str, batch: str, index: int) -> ResultItem:
        path = tmp_path / f"{key}-{batch}-{index}.png"
        return ResultItem(path, "e", key, "9", start + timedelta(seconds=index), None, key, batch, index)

    states.add_results([item("a", "b1", 1), item("a", "b1", 0), item("b", "b2", 0)])
    assert [r.batch_index for r in states.get("a").results] == [0, 1]
    assert len(states.get("b").results) == 1 and changed == ["a", "b"]
    states.add_results([item("a", "b3", 0)])  # the next press of Run: its own batch
    assert [r.path.name for r in states.get("a").results] == ["a-b3-0.png"]
    assert len(states.get("a").recent) == 3
    states.set_batch("a", 0)
    assert states.get("a").batch == 1
    states.set_batch("a", 4)
    assert states.get("a").batch == 4 and states.get("b").batch == 1
    assert states.get("nope").results == [] and "nope" not in states.workflow_keys()
    states.set_error(None, None)  # no workflow: nothing stored, no signal
    assert states.workflow_keys() == ["a", "b"]
