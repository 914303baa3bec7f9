"""RunState driven by core events, and the ProgressPanel bound to it."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import qasync
from PIL import Image
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtGui import QFontInfo, QGuiApplication, QImage
from PySide6.QtWidgets import QLabel, QProgressBar
from pytestqt.qtbot import QtBot

from comfydesk.app import images
from comfydesk.app.run_state import RunState
from comfydesk.core.events import (
    Cached,
    Completed,
    ExecutionStatus,
    Failed,
    FailureInfo,
    Interrupted,
    NodeOutput,
    NodeStarted,
    OutputRef,
    Preview,
    Progress,
    Queued,
    Started,
)
from comfydesk.core.graph import ApiGraph
from comfydesk.core.messages import CATALOGUE
from comfydesk.ui.error_view import ErrorView
from comfydesk.ui.progress import BAR_HEIGHT, ProgressPanel

EXEC = "prompt-1"
TITLES = {
    "4": "Load Checkpoint",
    "5": "Empty Latent Image",
    "6": "Positive",
    "7": "Negative",
    "3": "KSampler",
    "8": "VAE Decode",
    "9": "Save Image",
}


@pytest.fixture
def graph() -> ApiGraph:
    return ApiGraph.from_prompt(
        {
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "model": ["4", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
        }
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def png_bytes(color: tuple[int, int, int] = (200, 80, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def record(state: RunState) -> list[tuple[str, Any]]:
    log: list[tuple[str, Any]] = []

    def rec(name: str) -> Callable[..., None]:
        return lambda *args: log.append((name, args[0] if len(args) == 1 else args))

    for name in (
        "status_changed",
        "queue_position_changed",
        "node_changed",
        "step_progress_changed",
        "eta_changed",
        "overall_progress_changed",
        "failed",
        "finished",
    ):
        getattr(state, name).connect(rec(name))
    return log


def test_recorded_run_signal_sequence(qtbot: QtBot, graph: ApiGraph) -> None:
    clock = FakeClock()
    state = RunState(clock=clock)
    log = record(state)
    state.begin(EXEC, graph=graph, node_titles=TITLES)
    assert log == [("status_changed", ExecutionStatus.QUEUED), ("overall_progress_changed", (0, 7))]
    log.clear()

    state.apply(Queued(EXEC, position=2))
    state.apply(Queued(EXEC, position=2))  # no change, no signal
    state.apply(Queued("someone-else", position=5))  # other executions are ignored
    state.apply(Queued(EXEC, position=0))
    state.apply(Started(EXEC))
    clock.now = 101.0
    state.apply(Cached(EXEC, node_ids=("4", "6", "7")))
    state.apply(NodeStarted(EXEC, node_id="5"))
    state.apply(NodeStarted(EXEC, node_id="3"))
    assert log == [
        ("queue_position_changed", 2),
        ("queue_position_changed", 0),
        ("queue_position_changed", None),
        ("status_changed", ExecutionStatus.RUNNING),
        ("overall_progress_changed", (3, 7)),  # cached nodes count as done
        ("node_changed", ("5", "Empty Latent Image")),
        ("overall_progress_changed", (4, 7)),
        ("node_changed", ("3", "KSampler")),
    ]
    log.clear()

    # 20 steps, one per 0.5 s: after step 4 the observed rate gives 16 * 0.5 = 8 s left.
    for step in range(1, 5):
        state.apply(Progress(EXEC, node_id="3", value=step, max=20))
        clock.now += 0.5
    qtbot.waitUntil(lambda: state.step_progress == (4, 20))
    assert state.eta == pytest.approx(8.0)  # 3 steps in 1.5 s: 2 steps/s, 16 steps left
    assert ("step_progress_changed", (1, 20)) in log  # leading edge of the throttle
    assert log[-1][0] in ("eta_changed", "step_progress_changed")
    assert state.elapsed() == pytest.approx(3.0)

    log.clear()
    state.apply(NodeStarted(EXEC, node_id="8"))
    state.apply(NodeStarted(EXEC, node_id="9"))
    state.apply(NodeOutput(EXEC, node_id="9", outputs=(OutputRef("9", "images", filename="x_00001_.png"),)))
    done = Completed(EXEC, outputs=(OutputRef("9", "images", filename="x_00001_.png"),))
    state.apply(done)
    state.apply(Progress(EXEC, node_id="9", value=1, max=1))  # after the end: ignored
    names = [name for name, _ in log]
    assert names.count("node_changed") == 3  # 8, 9, then "" at the end
    assert ("node_changed", ("", "")) in log
    assert ("overall_progress_changed", (7, 7)) in log
    assert log[-2:] == [("status_changed", ExecutionStatus.COMPLETED), ("finished", done)]
    assert state.overall_progress == (7, 7)
    clock.now += 10
    assert state.elapsed() == pytest.approx(3.0)  # frozen at the end


def test_eta_from_observed_rate(graph: ApiGraph) -> None:
    clock = FakeClock()
    state = RunState(clock=clock)
    etas: list[object] = []
    state.eta_changed.connect(etas.append)
    state.begin(EXEC, graph=graph, node_titles=TITLES)
    state.apply(Started(EXEC))
    state.apply(Progress(EXEC, node_id="3", value=1, max=11))
    assert etas == []  # one sample: no rate yet
    clock.now += 2.0
    state.apply(Progress(EXEC, node_id="3", value=2, max=11))
    state._flush_step()  # what the throttle timer does
    assert state.eta == pytest.approx(18.0)  # 1 step per 2 s, 9 steps left
    assert etas == [18.0]


def test_failure_carries_failure_info(graph: ApiGraph) -> None:
    state = RunState()
    log = record(state)
    state.begin(EXEC, graph=graph, node_titles=TITLES)
    state.apply(Started(EXEC))
    state.apply(NodeStarted(EXEC, node_id="3"))
    info = FailureInfo(
        message="CUDA out of memory",
        node_id="3",
        node_type="KSampler",
        exception_type="torch.OutOfMemoryError",
        traceback=("Traceback (most recent call last):\n", '  File "sample.py", line 1\n'),
    )
    event = Failed(EXEC, error=info)
    state.apply(event)
    assert log[-3:] == [
        ("status_changed", ExecutionStatus.FAILED),
        ("failed", info),
        ("finished", event),
    ]
    assert state.status is ExecutionStatus.FAILED


def test_interrupted_and_reset(graph: ApiGraph) -> None:
    state = RunState()
    log = record(state)
    state.begin(EXEC, graph=graph, node_titles=TITLES)
    state.apply(Interrupted(EXEC))
    assert ("status_changed", ExecutionStatus.CANCELLED) in log
    state.reset()
    assert state.status is None
    assert state.overall_progress == (0, 0)
    assert log[-1] == ("overall_progress_changed", (0, 0))


def test_flood_does_not_block_the_ui(
    qtbot: QtBot, qloop: qasync.QEventLoop, graph: ApiGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui_thread = threading.get_ident()
    decode_threads: list[int] = []
    real_decode = images.decode_image

    def spy(data: bytes, **kwargs: Any) -> QImage:
        decode_threads.append(threading.get_ident())
        return real_decode(data, **kwargs)

    monkeypatch.setattr(images, "decode_image", spy)
    state = RunState()
    state.begin(EXEC, graph=graph, node_titles=TITLES)
    steps: list[tuple[int, int]] = []
    previews: list[QImage] = []
    state.step_progress_changed.connect(lambda v, m: steps.append((v, m)))
    state.preview_changed.connect(previews.append)

    frames = [png_bytes((i * 2, 255 - i * 2, 128), (256, 256)) for i in range(100)]
    last_color = QImage.fromData(frames[-1]).pixelColor(5, 5)
    probe_elapsed: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    QTimer.singleShot(0, lambda: probe_elapsed.append(clock.elapsed()))

    # The whole burst is queued on the loop at once, as a backend reading a fast socket would.
    qloop.call_soon(state.apply, Started(EXEC))
    qloop.call_soon(state.apply, NodeStarted(EXEC, node_id="3"))
    for i in range(5000):
        qloop.call_soon(state.apply, Progress(EXEC, node_id="3", value=i + 1, max=5000))
        if i % 50 == 0:
            qloop.call_soon(state.apply, Preview(EXEC, node_id="3", image=frames[i // 50]))

    qtbot.waitUntil(lambda: bool(probe_elapsed), timeout=2000)
    assert probe_elapsed[0] < 2000
    qtbot.waitUntil(lambda: state.step_progress == (5000, 5000), timeout=5000)
    qtbot.waitUntil(lambda: state._preview_task is None and bool(previews), timeout=5000)
    assert len(steps) < 500  # throttled, not 5,000 emissions
    assert 1 <= len(previews) < 100  # stale frames dropped
    assert previews[-1].pixelColor(5, 5) == last_color  # the newest frame always lands
    assert decode_threads and all(t != ui_thread for t in decode_threads)


# ----------------------------------------------------------------------------------------------- the panel
def _failure() -> FailureInfo:
    return FailureInfo(
        message="Allocation on device 0 would exceed allowed memory. (out of memory)",
        node_id="3",
        node_type="KSampler",
        exception_type="torch.OutOfMemoryError",
        traceback=(
            "Traceback (most recent call last):\n",
            '  File "/ComfyUI/execution.py", line 327, in execute\n',
            "    output_data, output_ui, has_subgraph = get_output_data(obj, input_data_all)\n",
            '  File "/ComfyUI/comfy/samplers.py", line 1043, in sample\n',
            "    return sampler.sample(noise, positive, negative, cfg=cfg, latent_image=latent_image)\n",
            "torch.OutOfMemoryError: Allocation on device 0 would exceed allowed memory.\n",
        ),
    )


@pytest.fixture
def panel(qtbot: QtBot) -> ProgressPanel:
    widget = ProgressPanel()
    qtbot.addWidget(widget)
    widget.resize(560, 170)
    widget.show()
    return widget


def test_panel_follows_a_run(
    qtbot: QtBot, qloop: qasync.QEventLoop, panel: ProgressPanel, graph: ApiGraph, artifacts_dir: Path
) -> None:
    clock = FakeClock()
    state = RunState(clock=clock)
    panel.bind(state)
    assert panel.findChild(QLabel, "queuePositionLabel").text() == "Ready"
    state.begin(EXEC, graph=graph, node_titles=TITLES, batch_index=1, batch_total=4)
    state.apply(Queued(EXEC, position=2))
    assert panel.findChild(QLabel, "queuePositionLabel").text() == "Waiting — 2 ahead in the queue"
    state.apply(Queued(EXEC, position=0))
    assert panel.findChild(QLabel, "queuePositionLabel").text() == "Next in the queue"
    state.apply(Started(EXEC))
    assert panel.findChild(QLabel, "queuePositionLabel").text() == "Running — image 2 of 4"
    assert panel._timer.isActive()  # elapsed ticks only while running
    state.apply(Cached(EXEC, node_ids=("4", "6", "7")))
    state.apply(NodeStarted(EXEC, node_id="5"))
    state.apply(NodeStarted(EXEC, node_id="3"))
    for step in range(1, 13):
        clock.now += 0.25
        state.apply(Progress(EXEC, node_id="3", value=step, max=20))
    state.apply(Preview(EXEC, node_id="3", image=png_bytes((90, 140, 200), (512, 384))))
    state._flush_step()
    clock.now += 3
    panel._tick()

    assert panel.findChild(QLabel, "nodeLabel").text() == "KSampler"
    step_bar = panel.findChild(QProgressBar, "stepProgress")
    assert (step_bar.value(), step_bar.maximum(), step_bar.text()) == (12, 20, "12/20")
    assert panel.findChild(QLabel, "etaLabel").text() == "ETA 0:02"  # 8 steps at 4 steps/s
    overall = panel.findChild(QProgressBar, "overallProgress")
    assert (overall.value(), overall.maximum(), overall.text()) == (4, 7, "4/7 nodes")
    assert panel.findChild(QLabel, "elapsedLabel").text() == "0:06"
    # The preview is decoded off the UI thread for the canvas (tests/gui/test_canvas.py shows it there);
    # the panel is one bar of a fixed height, with no preview box of its own.
    qtbot.waitUntil(lambda: state.preview is not None)
    assert state.preview is not None and abs(state.preview.width() / state.preview.height() - 4 / 3) < 0.05
    assert panel.findChild(QLabel, "previewImage") is None and panel.height() == BAR_HEIGHT
    assert not panel.findChild(ErrorView, "errorView").isVisible()
    panel.grab().save(str(artifacts_dir / "progress_running.png"))

    state.apply(Completed(EXEC))
    assert panel.findChild(QLabel, "queuePositionLabel").text() == "Done"
    assert not panel._timer.isActive()
    assert overall.value() == 7


def test_panel_shows_failure_with_details_and_copy(
    qtbot: QtBot, panel: ProgressPanel, graph: ApiGraph, artifacts_dir: Path
) -> None:
    state = RunState()
    panel.bind(state)
    state.begin(EXEC, graph=graph, node_titles=TITLES)
    state.apply(Started(EXEC))
    state.apply(NodeStarted(EXEC, node_id="3"))
    state.apply(Progress(EXEC, node_id="3", value=3, max=20))
    state.apply(Failed(EXEC, error=_failure()))

    assert panel.findChild(QLabel, "queuePositionLabel").text() == "Failed"
    view = panel.findChild(ErrorView, "errorView")
    assert view.isVisible()
    assert view.title.text() == "The run stopped at “KSampler”"
    assert view.message.text() == CATALOGUE["out_of_memory"].format(node="KSampler")  # plain words
    assert not view.details.isVisible()
    qtbot.mouseClick(view.details_button, Qt.MouseButton.LeftButton)
    assert view.details.isVisible() and view.details.isReadOnly()
    assert "samplers.py" in view.details.toPlainText()
    assert QFontInfo(view.details.font()).fixedPitch()
    qtbot.mouseClick(view.copy_button, Qt.MouseButton.LeftButton)
    copied = QGuiApplication.clipboard().text()
    assert "The run stopped at “KSampler”" in copied and "Node: KSampler (#3)" in copied
    assert "torch.OutOfMemoryError: Allocation on device 0" in copied
    assert 'File "/ComfyUI/comfy/samplers.py", line 1043' in copied
    assert panel.height() == BAR_HEIGHT  # the banner is placed by its owner (over the canvas), the bar stays
    view.resize(560, 300)
    view.grab().save(str(artifacts_dir / "progress_failed.png"))


def test_panel_interrupted_and_rebind(panel: ProgressPanel, graph: ApiGraph) -> None:
    first, second = RunState(), RunState()
    panel.bind(first)
    first.begin(EXEC, graph=graph, node_titles=TITLES)
    first.apply(Started(EXEC))
    first.apply(Interrupted(EXEC))
    label = panel.findChild(QLabel, "queuePositionLabel")
    assert label.text() == "Cancelled"
    panel.bind(second)  # the first one is let go
    assert label.text() == "Ready"
    first.begin("other", graph=graph, node_titles=TITLES)
    assert label.text() == "Ready"
    second.begin(EXEC, graph=graph, node_titles=TITLES)
    assert label.text() == "Waiting in the queue"


def test_results_strip_newest_first_with_lazy_thumbnails(qtbot: QtBot, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from comfydesk.app.run_state import ResultItem
    from comfydesk.ui.results import ResultsStrip

    strip = ResultsStrip(open_in_viewer=False)
    qtbot.addWidget(strip)
    start = datetime(2024, 3, 20, 10, 0, 0)
    items = []
    for i in range(3):
        path = tmp_path / f"out_{i}.png"
        path.write_bytes(png_bytes((i * 80, 100, 200), (256, 256)))
        items.append(ResultItem(path, EXEC, "Blog Post Image", "9", start + timedelta(minutes=i)))
    strip.add_results(items[:2])
    strip.add_results(items[2:])
    assert [r.path.name for r in strip.results()] == ["out_2.png", "out_1.png", "out_0.png"]
    qtbot.waitUntil(lambda: all(r.thumbnail is not None for r in strip.results()))
    first = strip.item(0)
    assert first is not None
    with qtbot.waitSignal(strip.open_requested) as blocker:
        strip.itemActivated.emit(first)
    assert blocker.args == [items[2]]
