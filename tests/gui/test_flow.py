"""The whole flow against the fake ComfyUI over real sockets: pick, edit, run, progress, preview, results;
validation errors on their fields; an execution error with its node; a dropped socket; seeds over a batch;
cancel; and a responsive UI under a flood of progress messages. No sleeps: every wait is on a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt, QTimer
from pytestqt.qtbot import QtBot

from comfydesk.app import images
from comfydesk.backends.base import ConnectionState, Execution
from comfydesk.core.events import ExecutionStatus
from comfydesk.core.templates import SeedControl
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.main_window import MainWindow
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

RUN_TIMEOUT = 20_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def demo_fake(tmp_path: Path) -> Iterator[RunningFake]:
    """The demo catalogue (DemoPattern has a seed, steps and previews) with tiny step delays."""
    fake = start_fake_comfyui(
        FakeConfig(
            object_info=demo_object_info_path(), data_dir=tmp_path / "fake", step_delay=0.002, demo=True
        )
    )
    yield fake
    fake.stop()


@pytest.fixture
def real_fake(tmp_path: Path) -> Iterator[RunningFake]:
    """The captured ComfyUI 0.8.0 catalogue, with the test nodes (TestSlowSteps, TestFail)."""
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    yield fake
    fake.stop()


def pattern_workflow(*, seed: int = 5, steps: int = 6, size: int = 96) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": "plasma",
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


def slow_workflow(*, steps: list[int], preview_steps: int = 0, delay: float = 0.0) -> dict[str, Any]:
    """EmptyImage -> TestSlowSteps per entry of `steps` (no previews) -> one with previews -> SaveImage."""
    wf: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}
    }
    last = "1"
    chain = [(n, False) for n in steps] + ([(preview_steps, True)] if preview_steps else [])
    for i, (n, preview) in enumerate(chain, start=2):
        wf[str(i)] = {
            "class_type": "TestSlowSteps",
            "inputs": {"image": [last, 0], "steps": n, "delay": delay, "preview": preview},
        }
        last = str(i)
    wf["99"] = {"class_type": "SaveImage", "inputs": {"images": [last, 0], "filename_prefix": "slow"}}
    return wf


def setup(
    qtbot: QtBot,
    open_window: OpenWindow,
    fake: RunningFake,
    data_dir: Path,
    name: str,
    prompt: dict[str, Any],
) -> MainWindow:
    key = write_workflow(data_dir, name, prompt)
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    return window


def submitted_graphs(window: MainWindow) -> list[Execution]:
    out: list[Execution] = []
    window.ctx.controller.submitted.connect(out.append)
    return out


def wait_idle(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)


def test_pick_edit_run_progress_preview_result(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    data_dir = tmp_path / "app"
    window = setup(qtbot, open_window, demo_fake, data_dir, "Pattern", pattern_workflow(steps=40, size=192))
    window.grab().save(str(artifacts_dir / "03-form.png"))
    assert "Connected: " in window.connection_label.text()

    # Edit: the width through its editor, as typing does.
    row = window.form.rows["1.width"]
    row.editor.set_value(128)
    row.editor.edited.emit()
    assert window.form.values()["1.width"] == 128
    window.form.set_seed_control("1.seed", SeedControl.FIXED)

    steps: list[tuple[int, int]] = []
    previews: list[object] = []
    shots: list[bool] = []
    state = window.ctx.run_state
    state.step_progress_changed.connect(lambda v, m: steps.append((v, m)))

    def on_preview(image: object) -> None:
        previews.append(image)
        if len(previews) == 3 and not shots:
            shots.append(window.grab().save(str(artifacts_dir / "04-running-preview.png")))

    state.preview_changed.connect(on_preview)
    sent = submitted_graphs(window)
    qtbot.mouseClick(window.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)

    assert sent and sent[0].graph is not None and sent[0].graph["1"].inputs["width"] == 128
    assert (40, 40) in steps and len({v for v, _ in steps if v}) > 2
    assert len(previews) >= 2  # the preview changed while it ran
    assert state.status is ExecutionStatus.COMPLETED
    assert window.progress.overall_bar.value() == window.progress.overall_bar.maximum()
    item = window.results.results()[0]
    assert item.path.is_file() and item.path.is_relative_to(data_dir / "results")
    assert item.path.read_bytes().startswith(b"\x89PNG")
    window.grab().save(str(artifacts_dir / "05-results.png"))

    # The values are remembered for this workflow, across sessions.
    window.ctx.memory.flush()
    assert window.ctx.settings.workflow_prefs("local:Pattern.json").values["1.width"] == 128


def test_preflight_validation_error_lands_on_the_field(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    window = setup(qtbot, open_window, demo_fake, tmp_path / "app", "Pattern", pattern_workflow())
    window.form.set_value("1.width", 100_000)  # beyond the definition's max (2048)
    window.run_workflow()
    qtbot.waitUntil(lambda: "1.width" in window.form.issues(), timeout=5_000)
    assert demo_fake.state.prompts_posted == 0


def test_server_validation_error_lands_on_the_field(
    qtbot: QtBot,
    open_window: OpenWindow,
    demo_fake: RunningFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = setup(qtbot, open_window, demo_fake, tmp_path / "app", "Pattern", pattern_workflow())
    # Bypass the client-side checks so the server is the one to refuse.
    from comfydesk.core import templates

    monkeypatch.setattr(templates.FormSpec, "validate", lambda self, values: [])
    monkeypatch.setattr(templates, "validate_graph", lambda graph, catalog, **kw: [])
    window.form.set_value("1.pattern", "zebra")  # not in the server's list
    window.run_workflow()
    qtbot.waitUntil(lambda: "1.pattern" in window.form.issues(), timeout=5_000)
    assert window.ctx.errors.error is not None
    assert not window.error_view.isVisible()  # said once: on the field, no banner repeating it


def test_execution_error_shows_its_node(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    prompt = {
        "1": {
            "class_type": "TestFail",
            "inputs": {"message": "boom: deliberate"},
            "_meta": {"title": "Breaker"},
        }
    }
    window = setup(qtbot, open_window, real_fake, tmp_path / "app", "Fails", prompt)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.ctx.run_state.status is ExecutionStatus.FAILED, timeout=RUN_TIMEOUT)
    view = window.progress.error_view
    qtbot.waitUntil(view.isVisible, timeout=2_000)
    assert "Breaker" in view.title.text()
    assert "boom: deliberate" in view.message.text() and "RuntimeError" not in view.message.text()
    assert "RuntimeError" in view.details.toPlainText() and "#1" in view.details.toPlainText()
    window.grab().save(str(artifacts_dir / "06-failed-run.png"))
    wait_idle(qtbot, window)


def test_disconnect_mid_run_recovers_with_the_result(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    demo_fake.faults.drop_websocket_after(12)  # the first socket: its status message, then the run's
    window = setup(qtbot, open_window, demo_fake, tmp_path / "app", "Pattern", pattern_workflow(steps=30))
    states: list[ConnectionState] = []
    window.ctx.connection.status_changed.connect(lambda s: states.append(s.state))
    window.run_workflow()
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    assert ConnectionState.RECONNECTING in states
    assert window.ctx.connection.status.state is ConnectionState.CONNECTED
    assert window.results.results()[0].path.is_file()


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (SeedControl.FIXED, [100, 100, 100]),
        (SeedControl.INCREMENT, [100, 101, 102]),
        (SeedControl.DECREMENT, [100, 99, 98]),
        (SeedControl.RANDOMIZE, None),
    ],
)
def test_seed_modes_over_a_batch_of_three(
    qtbot: QtBot,
    open_window: OpenWindow,
    demo_fake: RunningFake,
    tmp_path: Path,
    control: SeedControl,
    expected: list[int] | None,
) -> None:
    window = setup(
        qtbot, open_window, demo_fake, tmp_path / "app", "Seeds", pattern_workflow(steps=1, size=16)
    )
    window.form.set_value("1.seed", 100)
    window.form.set_seed_control("1.seed", control)
    window.batch.setValue(3)
    sent = submitted_graphs(window)
    window.run_workflow()
    qtbot.waitUntil(lambda: len(sent) == 3, timeout=RUN_TIMEOUT)
    seeds = [e.graph["1"].inputs["seed"] for e in sent if e.graph is not None]
    if expected is None:
        assert seeds[0] == 100 and len(set(seeds)) == 3
    else:
        assert seeds == expected
    qtbot.waitUntil(lambda: window.results.count() == 3, timeout=RUN_TIMEOUT)
    wait_idle(qtbot, window)


def test_cancel_interrupts_ours_and_clears_what_we_queued(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path
) -> None:
    window = setup(
        qtbot, open_window, real_fake, tmp_path / "app", "Slow", slow_workflow(steps=[1000], delay=0.01)
    )
    window.batch.setValue(3)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.queue_view.count() == 3, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: window.ctx.run_state.status is ExecutionStatus.RUNNING, timeout=RUN_TIMEOUT)
    assert window.cancel_button.isEnabled()
    window.cancel_button.click()
    wait_idle(qtbot, window)
    assert window.ctx.run_state.status is ExecutionStatus.CANCELLED
    assert window.queue_view.count() == 0
    qtbot.waitUntil(lambda: real_fake.state.queue_remaining() == 0, timeout=5_000)
    assert window.results.count() == 0


def test_ui_stays_responsive_under_a_flood(
    qtbot: QtBot,
    open_window: OpenWindow,
    real_fake: RunningFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4,900 progress messages, then 100 more each with a preview frame: 5,000 progress + 100 previews.
    prompt = slow_workflow(steps=[980] * 5, preview_steps=100)
    window = setup(qtbot, open_window, real_fake, tmp_path / "app", "Flood", prompt)
    decode_threads: set[str] = set()
    real_decode = images.decode_image

    def spy(*args: Any, **kwargs: Any) -> Any:
        decode_threads.add(threading.current_thread().name)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(images, "decode_image", spy)
    gaps: list[float] = []
    clock: list[float] = []
    probe = QTimer()
    probe.setInterval(20)

    def tick() -> None:
        now = time.monotonic()
        if clock:
            gaps.append(now - clock[-1])
        clock.append(now)

    probe.timeout.connect(tick)
    previews: list[object] = []
    steps: list[tuple[int, int]] = []
    window.ctx.run_state.preview_changed.connect(previews.append)
    window.ctx.run_state.step_progress_changed.connect(lambda v, m: steps.append((v, m)))
    probe.start()
    window.run_workflow()
    # The run may drain in well under a second on a quiet machine; keep probing a few ticks past the
    # result (thumbnailing, saving) so that there is always something to measure.
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=60_000)
    ticks_at_result = len(gaps)
    qtbot.waitUntil(lambda: len(gaps) >= ticks_at_result + 5, timeout=10_000)
    probe.stop()
    assert max(gaps) < 0.5, f"the UI thread stalled for {max(gaps):.3f} s"
    assert previews, "no preview reached the panel"
    assert decode_threads and threading.main_thread().name not in decode_threads
    assert (980, 980) in steps and (100, 100) in steps


def test_library_badges_problems_and_takes_dropped_files(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    import json

    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    data_dir = tmp_path / "app"
    broken = pattern_workflow()
    broken["1"]["inputs"]["pattern"] = "zebra"  # a choice the server does not offer ("missing model")
    broken["3"] = {"class_type": "NoSuchNode", "inputs": {}}
    write_workflow(data_dir, "Broken", broken)
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pane = window.workflow_pane
    qtbot.waitUntil(
        lambda: (e := window.ctx.library.entry("local:Broken.json")) is not None and e.has_problems
    )
    entry = window.ctx.library.entry("local:Broken.json")
    assert entry is not None
    assert any("NoSuchNode" in p for p in entry.problems) and any("zebra" in p for p in entry.problems)
    item = pane.item_for("local:Broken.json")
    assert item is not None and "⚠" in item.text(0) and "NoSuchNode" in item.toolTip(0)

    dropped = tmp_path / "incoming.json"
    dropped.write_text(json.dumps(pattern_workflow()))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    pane.dropEvent(event)
    qtbot.waitUntil(lambda: pane.item_for("local:incoming.json") is not None, timeout=5_000)
    assert (data_dir / "workflows" / "incoming.json").is_file()
    qtbot.waitUntil(lambda: window._current is not None and window._current.key == "local:incoming.json")

    window.ctx.library.rename("local:incoming.json", "Renamed: one/two")
    qtbot.waitUntil(lambda: pane.item_for("local:Renamed_ one_two.json") is not None, timeout=5_000)
    window.ctx.library.duplicate("local:Renamed_ one_two.json")
    qtbot.waitUntil(lambda: pane.item_for("local:Renamed_ one_two copy.json") is not None, timeout=5_000)
    window.ctx.library.delete("local:Renamed_ one_two copy.json")
    qtbot.waitUntil(lambda: pane.item_for("local:Renamed_ one_two copy.json") is None, timeout=5_000)
    assert not (data_dir / "workflows" / "Renamed_ one_two copy.json").exists()
