"""Plain words, said once: each error the user meets shows in exactly one place (its field, or one banner),
in words for an artist, with the technical part behind "Details" and a Copy button. Against the fake
ComfyUI over real sockets; no sleeps."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from comfydesk.app.context import profile_for_url
from comfydesk.backends.base import ConnectionState, ConnectionStatus
from comfydesk.core.events import ExecutionStatus
from comfydesk.core.messages import CATALOGUE
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.main_window import MainWindow
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

RUN_TIMEOUT = 20_000
CLASS_NAMES = ("Error:", "UnidentifiedImageError", "Exception", "Traceback")


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def real_fake(tmp_path: Path) -> Iterator[RunningFake]:
    """The captured ComfyUI 0.8.0 catalogue; its input folder holds a file that is not an image."""
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    inputs = fake.data_dir / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "bad.png").write_bytes(b"this is not a PNG at all" * 8)
    yield fake
    fake.stop()


@pytest.fixture
def demo_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(
            object_info=demo_object_info_path(), data_dir=tmp_path / "fake", step_delay=0.002, demo=True
        )
    )
    yield fake
    fake.stop()


def load_image_workflow(image: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}, "_meta": {"title": "Photo"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "out"}},
    }


def pattern_workflow(steps: int) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": "plasma",
                "seed": 5,
                "width": 96,
                "height": 96,
                "steps": steps,
                "color_a": 1777502,
                "color_b": 16757575,
            },
            "_meta": {"title": "Pattern"},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo"}},
    }


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


def places(window: MainWindow) -> dict[str, str]:
    """Every place of the window that shows an error right now, with its text."""
    out: dict[str, str] = {}
    if window.error_view.isVisible():
        out["banner"] = window.error_view.message.text()
    if window.progress.error_view.isVisible():
        out["progress panel"] = window.progress.error_view.message.text()
    status = window.statusBar().currentMessage()
    if status and not status.startswith("Queued "):  # a run's "Queued 1 run of …" note is not an error
        out["status bar"] = status
    for key, row in window.form.rows.items():
        if row.messages:
            out[f"field {key}"] = " ".join(row.messages)
    for item in window.results.results():
        out[f"result {item.path.name}"] = item.path.name
    return out


def bottom(widget: QWidget | None) -> int:
    """The bottom edge of `widget`, in window coordinates."""
    assert widget is not None
    return widget.mapTo(widget.window(), widget.rect().bottomLeft()).y()


def assert_plain(text: str) -> None:
    assert text.strip()
    assert "/" not in text and "\\" not in text, f"a path in the short text: {text!r}"
    for word in CLASS_NAMES:
        assert word not in text, f"{word!r} in the short text: {text!r}"


def test_missing_input_image_is_said_once_on_its_field(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    window = setup(
        qtbot, open_window, real_fake, tmp_path / "app", "Missing", load_image_workflow("missing_photo.png")
    )
    window.run_workflow()
    qtbot.waitUntil(lambda: "1.image" in window.form.issues(), timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: window.ctx.errors.error is not None, timeout=5_000)
    shown = places(window)
    assert list(shown) == ["field 1.image"], shown
    text = shown["field 1.image"]
    assert text == CATALOGUE["missing_image"].format(name="missing_photo.png")
    assert_plain(text)
    assert window.form.rows["1.image"].error.isVisibleTo(window)
    assert real_fake.state.prompts_posted == 0
    window.grab().save(str(artifacts_dir / "error-on-field.png"))


def test_a_problem_with_no_field_is_one_banner(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path
) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}
    }
    window = setup(qtbot, open_window, real_fake, tmp_path / "app", "NoOutput", prompt)
    window.run_workflow()
    qtbot.waitUntil(window.error_view.isVisible, timeout=RUN_TIMEOUT)
    shown = places(window)
    assert list(shown) == ["banner"], shown
    assert shown["banner"] == CATALOGUE["prompt_no_outputs"]
    assert_plain(shown["banner"])
    assert window.error_view.title.text() == "The workflow was not run"
    assert "no output node" in window.error_view.details.toPlainText()  # our own wording, kept for details
    assert real_fake.state.prompts_posted == 0


def test_node_failing_at_run_time_shows_one_banner_with_details_and_copy(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path, docs_shots: Path
) -> None:
    window = setup(qtbot, open_window, real_fake, tmp_path / "app", "Broken", load_image_workflow("bad.png"))
    window.resize(1280, 860)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.ctx.run_state.status is ExecutionStatus.FAILED, timeout=RUN_TIMEOUT)
    view = window.progress.error_view
    qtbot.waitUntil(view.isVisible, timeout=5_000)
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)

    shown = places(window)
    assert list(shown) == ["progress panel"], shown
    text = view.message.text()
    assert text == CATALOGUE["broken_image"].format(name="bad.png")
    assert_plain(text)
    assert str(real_fake.data_dir) not in view.title.text() and "Photo" in view.title.text()

    # The technical part waits behind Details: the exception, its server path, the node, the traceback.
    assert not view.details.isVisible()
    qtbot.mouseClick(view.details_button, Qt.MouseButton.LeftButton)
    assert view.details.isVisible() and view.details_button.text() == "Hide details"

    # The pane makes room for the details (the splitter gives it their minimum height).
    def settled() -> bool:
        message = view.message
        return (
            view.details.height() >= view.details.minimumHeight()
            and message.height() >= message.heightForWidth(message.width())
            and view.copy_button.geometry().top() >= message.geometry().bottom()
            and bottom(view.details) < bottom(view) <= bottom(window.progress)
            and bottom(window.progress) <= bottom(window.progress.parentWidget())
        )

    qtbot.waitUntil(settled, timeout=5_000)
    details = view.details.toPlainText()
    assert "UnidentifiedImageError" in details and "bad.png" in details
    assert "Node: Photo (#1)" in details and 'File "' in details and "load_image" in details

    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(view.copy_button, Qt.MouseButton.LeftButton)
    copied = QGuiApplication.clipboard().text()
    assert text in copied and "UnidentifiedImageError" in copied and "load_image" in copied
    path = docs_shots / "error-details.png"
    assert window.grab().save(str(path))
    assert path.stat().st_size > 10_000


def test_connection_lost_mid_run_is_said_once(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    demo_fake.faults.drop_websocket_after(12)  # the run's socket drops mid-run…
    window = setup(qtbot, open_window, demo_fake, tmp_path / "app", "Pattern", pattern_workflow(steps=30))
    demo_fake.faults.refuse_websockets(1)  # …and the first try to reconnect is refused
    seen: list[dict[str, str]] = []
    labels: list[str] = []

    def on_status(status: ConnectionStatus) -> None:
        if status.state is ConnectionState.RECONNECTING:
            seen.append(places(window))
            labels.append(window.connection_label.text())

    window.ctx.connection.status_changed.connect(on_status)
    window.run_workflow()
    qtbot.waitUntil(lambda: bool(seen), timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    # While it reconnects, only the connection label says so: no banner, no failed panel, no status note.
    assert all(shown == {} for shown in seen), seen
    assert all(label.startswith("Reconnecting") for label in labels), labels
    assert_plain(labels[0])
    assert not window.error_view.isVisible() and not window.progress.error_view.isVisible()
    assert window.ctx.run_state.status is ExecutionStatus.COMPLETED


def test_the_form_summary_and_missing_panel_do_not_repeat_the_field(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path
) -> None:
    window = setup(
        qtbot, open_window, real_fake, tmp_path / "app", "Missing", load_image_workflow("missing_photo.png")
    )
    window.run_workflow()
    qtbot.waitUntil(lambda: "1.image" in window.form.issues(), timeout=RUN_TIMEOUT)
    assert not window.form.error_box.isVisible()
    assert not window.missing_panel.isVisible()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_is_said_plainly_with_the_raw_reason_behind_it(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, artifacts_dir: Path
) -> None:
    port = closed_port()
    window = open_window(server=f"http://127.0.0.1:{port}", data_dir=tmp_path / "app")
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    reason = window.first_run.reason
    assert reason.text() == CATALOGUE["no_answer"].format(name=f"127.0.0.1:{port}")
    assert_plain(reason.text().replace(f"127.0.0.1:{port}", "the address"))
    assert "cannot reach" in reason.toolTip()  # the raw reason, for whoever needs it
    label = window.connection_label.text()
    assert label == f"Disconnected: Can't reach 127.0.0.1:{port}"
    assert "cannot reach" not in label and "Error" not in label
    window.grab().save(str(artifacts_dir / "first-run-plain.png"))


def test_the_demo_note_follows_the_server_not_the_way_it_was_started(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, demo_fake: RunningFake, tmp_path: Path
) -> None:
    window = open_window(server=demo_fake.url, data_dir=tmp_path / "app")  # `comfydesk demo-server` alike
    wait_connected(qtbot, window)
    assert window.ctx.connection.profile is not None and window.ctx.connection.profile.id != "demo"
    assert "(demo engine)" in window.connection_label.text()
    window.ctx.connect_profile(profile_for_url(real_fake.url), remember=False)
    qtbot.waitUntil(lambda: window.ctx.connection.server_info is not None, timeout=10_000)
    qtbot.waitUntil(lambda: window.connection_label.text().startswith("Connected: "), timeout=10_000)
    assert "demo engine" not in window.connection_label.text()


def test_switching_servers_quickly_shows_no_false_error(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, demo_fake: RunningFake, tmp_path: Path
) -> None:
    real_fake.faults.delay_route("/queue", 2.0)  # the first server is slow to give its queue…
    window = open_window(server=real_fake.url, data_dir=tmp_path / "app")
    conn = window.ctx.connection
    wait_connected(qtbot, window)  # node list read (the catalog's own reads are not this test's subject)
    old_read = conn._queue_task
    assert old_read is not None and not old_read.done()
    # …and the user moves on to another one before it answers.
    window.ctx.connect_profile(profile_for_url(demo_fake.url), remember=False)
    qtbot.waitUntil(old_read.done, timeout=5_000)
    qtbot.waitUntil(lambda: conn.backend is not None and conn.url == demo_fake.url, timeout=10_000)
    new_read = conn._queue_task
    qtbot.waitUntil(lambda: new_read is None or new_read.done(), timeout=10_000)
    assert window.ctx.errors.error is None
    assert places(window) == {}
    assert window.connection_label.text().startswith("Connected: ")


def test_a_workflow_that_cannot_be_read_is_said_plainly(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    folder = data_dir / "workflows"
    folder.mkdir(parents=True)
    (folder / "Broken.json").write_text('{"1": {"class_type": ', encoding="utf-8")
    window = open_window(server=real_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    key = "local:Broken.json"
    qtbot.waitUntil(lambda: window.workflow_pane.item_for(key) is not None, timeout=10_000)
    item = window.workflow_pane.item_for(key)
    assert item is not None
    window.workflow_pane.tree.setCurrentItem(item)
    qtbot.waitUntil(lambda: window._current is not None and window._current.key == key, timeout=10_000)
    cur = window._current
    assert cur is not None and cur.spec is None
    assert cur.error == CATALOGUE["WorkflowFormatError"]
    assert window.form_message.text() == cur.error
    assert_plain(window.form_message.text())
    assert str(folder) in cur.error_details  # the file and the reader's words stay for the details
