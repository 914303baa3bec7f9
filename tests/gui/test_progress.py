"""RunState driven by core events, and the ProgressPanel bound to it."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import pytest
import qasync
from PIL import Image
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtGui import QImage
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
