"""The main window: opens at once with no server, first-run panel, demo engine, layout remembered."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget
from pytestqt.qtbot import QtBot

from comfydesk.app.demo import DEMO_LABEL
from comfydesk.testing.demo import sample_workflows_dir
from tests.gui.helpers import OpenWindow, pick, windows, write_workflow


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_opens_without_server_then_demo_engine(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, artifacts_dir: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    window = open_window(server=url, data_dir=tmp_path)
    assert time.monotonic() - started < 2.0  # no network on the UI thread, no blocking dialog
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    panel = window.findChild(QLabel, "firstRunReason")
    assert panel is not None and "127.0.0.1" in panel.text()
    label = window.findChild(QLabel, "connectionStatus")
    assert label is not None and label.text().startswith("Disconnected:")
    assert window.first_run.demo_button.toolTip() == DEMO_LABEL
    window.grab().save(str(artifacts_dir / "01-first-run.png"))

    notes: list[str] = []
    window.statusBar().messageChanged.connect(notes.append)
    window.first_run.demo_button.click()
    qtbot.waitUntil(lambda: window.ctx.connection.backend is not None, timeout=15_000)
    qtbot.waitUntil(lambda: not window.ctx.demo.starting, timeout=15_000)
    assert "Starting the demo engine…" in notes
    assert not window.statusBar().currentMessage().startswith("Starting the demo engine")  # it is up
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.splitter, timeout=5_000)
    samples = sorted(sample_workflows_dir().glob("*.json"))
    qtbot.waitUntil(lambda: len(window.workflow_pane.visible_names("sample")) == len(samples), timeout=10_000)
    assert label.text().startswith("Connected: ")
    qtbot.waitUntil(lambda: window.ctx.catalog.catalog is not None, timeout=10_000)
    assert "DemoPattern" in window.node_pane.leaf_ids()
    window.grab().save(str(artifacts_dir / "02-demo-library.png"))

    # The whole flow works on the demo engine: a sample with a {prompt} placeholder, run with a preview.
    pick(qtbot, window, "sample:poster_from_a_prompt.json")
    row = window.form.rows["prompt"]
    row.editor.set_value("Spring sale — everything must go")
    row.editor.edited.emit()
    shots: list[bool] = []

    def on_preview(_image: object) -> None:
        if not shots and window.ctx.run_state.step_progress[0] >= 6:
            shots.append(window.grab().save(str(artifacts_dir / "07-demo-running.png")))

    window.ctx.run_state.preview_changed.connect(on_preview)
    window.run_workflow()
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=30_000)
    assert shots
    window.grab().save(str(artifacts_dir / "08-demo-result.png"))


def test_geometry_and_last_workflow_restored(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    first = open_window(server=url, data_dir=tmp_path)
    first.resize(760, 560)  # inside the offscreen screen (800x800): Qt clamps to it
    first.move(40, 30)
    first.queue_dock.hide()
    key = write_workflow(tmp_path, "Something", {"1": {"class_type": "EmptyImage", "inputs": {}}})
    first.ctx.settings.last_workflow = key
    qtbot.waitUntil(lambda: first.stack.currentWidget() is first.first_run, timeout=10_000)
    first.close()
    second = open_window(server=url, data_dir=tmp_path)
    assert (second.width(), second.height()) == (760, 560)
    assert not second.queue_dock.isVisible()
    qtbot.waitUntil(lambda: second.ctx.library.selected_key == key, timeout=5_000)
    qtbot.waitUntil(lambda: second.workflow_pane.tree.currentItem() is second.workflow_pane.item_for(key))


def test_node_pane_filters_as_you_type(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    import json

    from comfydesk.core.nodes import parse_object_info
    from comfydesk.testing.demo import demo_object_info_path

    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path)
    catalog = parse_object_info(json.loads(demo_object_info_path().read_text()))
    window.ctx.catalog.set_catalog(catalog)
    assert len(window.node_pane.leaf_ids()) == len(catalog)
    qtbot.keyClicks(window.node_pane.search, "pattern")
    qtbot.waitUntil(lambda: window.node_pane.leaf_ids() == ["DemoPattern"], timeout=2_000)
    html = window.node_pane.details.toHtml()
    assert "Demo: Pattern" in html and "seed" in html and "plasma" in html


def test_profiles_dialog_without_keyring(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    import stat

    from PySide6.QtWidgets import QComboBox, QDialog

    from comfydesk.ui.profiles_dialog import ProfilesDialog

    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    window.first_run.edit_button.click()  # "Edit address" opens the dialog, window-modal, not blocking
    dialog = window.findChild(QDialog, "profilesDialog")
    assert isinstance(dialog, ProfilesDialog) and dialog.isVisible()
    assert "session only" in dialog.secret_note.text()
    assert dialog.secret_file.isVisibleTo(dialog)
    kind = dialog.findChild(QComboBox, "profileKind")
    assert kind is not None
    gateway = kind.model().index(2, 0)  # type: ignore[union-attr]
    assert kind.model().flags(gateway) & Qt.ItemFlag.ItemIsEnabled  # type: ignore[union-attr]

    dialog.add_profile()
    dialog.name.setText("Studio GPU")
    dialog.url.setText("https://gpu-box:8188")
    dialog.auth.setCurrentIndex(dialog.auth.findData("token"))
    dialog.secret.setText("s3cret-token")
    profile = dialog.save_profile()
    assert window.ctx.profiles.secret(profile) == "s3cret-token"
    assert not (tmp_path / "secrets.json").exists()  # session only until the user opts in
    assert "s3cret" not in (tmp_path / "profiles.json").read_text()

    dialog.secret_file.setChecked(True)
    secrets_file = tmp_path / "secrets.json"
    assert secrets_file.is_file() and stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert "file" in dialog.secret_note.text()
    assert window.ctx.settings.secrets_in_file

    dialog.url.setText(f"http://127.0.0.1:{closed_port()}")
    dialog.test_profile()  # answered later on profile_tested; the dialog shows it
    qtbot.waitUntil(lambda: dialog.test_result.text().startswith("✗"), timeout=10_000)
    dialog.reject()


def test_actions_have_shortcuts_in_tooltips_and_menus(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path
) -> None:
    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path)
    assert "Ctrl+Return" in window.run_button.toolTip()
    assert "Esc" in window.cancel_button.toolTip()
    assert window.batch.objectName() == "batchCount"
    assert (window.batch.minimum(), window.batch.maximum()) == (1, 100)
    for action in (window.run_action, window.cancel_action, window.open_action, window.profiles_action):
        assert not action.shortcut().isEmpty()
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Run", "View", "Server", "Help"]
    assert window.findChild(QLabel, "connectionStatus") is not None
    for name in ("workflowPane", "nodePane", "workflowForm", "progressPanel", "resultsStrip", "queueView"):
        assert window.findChild(QWidget, name) is not None, name
