"""The window without a mouse: real key events from the search box to a cancelled run, the tab order through
a node group, and menus that show every action's shortcut. Keys go to whatever has focus, as a user's do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from comfydesk.backends.base import Execution
from comfydesk.core.events import ExecutionStatus
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.ui.form.color_field import ColorEditor
from comfydesk.ui.form.editors import IntEditor
from comfydesk.ui.main_window import MainWindow
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, wait_connected, windows, write_workflow

RUN_TIMEOUT = 20_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def fake_comfyui(tmp_path: Path) -> Iterator[RunningFake]:
    """As tests/integration/conftest.py's: the captured ComfyUI 0.8.0 catalogue with the test nodes."""
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    yield fake
    fake.stop()


def slow_prompt() -> dict[str, Any]:
    """EmptyImage (three numbers and a colour) -> a long TestSlowSteps -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "TestSlowSteps",
            "inputs": {"image": ["1", 0], "steps": 1000, "delay": 0.01, "preview": False},
        },
        "9": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}},
    }


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None, "nothing has focus"
    return widget


def press(
    qtbot: QtBot, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> QWidget:
    """Press `key` on the focused widget (as the keyboard does); returns the widget focused afterwards."""
    qtbot.keyClick(focused(), key, modifier)
    return focused()


def test_pick_edit_run_and_cancel_with_the_keyboard(
    qtbot: QtBot, open_window: OpenWindow, fake_comfyui: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    write_workflow(data_dir, "Another", {"1": {"class_type": "EmptyImage", "inputs": {}}})
    key = write_workflow(data_dir, "Slow steps", slow_prompt())
    window: MainWindow = open_window(server=fake_comfyui.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    qtbot.waitUntil(lambda: window.workflow_pane.item_for(key) is not None, timeout=10_000)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    pane = window.workflow_pane

    # Ctrl+1: the workflows pane's search box. Type to filter, Down into the list: the match is selected.
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert focused() is pane.search
    qtbot.keyClicks(pane.search, "slow")
    assert pane.visible_names() == ["Slow steps"]
    assert press(qtbot, Qt.Key.Key_Down) is pane.tree
    assert pane.tree.currentItem() is pane.item_for(key)

    # Enter: the workflow's form, with the focus on its first field.
    qtbot.keyClick(pane.tree, Qt.Key.Key_Return)
    qtbot.waitUntil(
        lambda: window.form.spec() is not None and window.form.spec().workflow_name == "Slow steps"
    )
    width = window.form.rows["1.width"].editor
    assert isinstance(width, IntEditor) and width.spin is not None
    qtbot.waitUntil(lambda: QApplication.focusWidget() is width.spin)

    # Type a value into it.
    press(qtbot, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(focused(), "80")
    assert window.form.values()["1.width"] == 80

    # The tab order: back to the library, then through the first node group top to bottom.
    header = window.form.groups["1"].header
    assert press(qtbot, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier) is header
    assert press(qtbot, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier) is pane.tree
    colour = window.form.rows["1.color"].editor
    assert isinstance(colour, ColorEditor)
    expected = [
        header,
        width.spin,
        window.form.rows["1.height"].editor.focus_widget(),
        window.form.rows["1.batch_size"].editor.focus_widget(),
        colour.swatch,
        colour.hex,
        window.form.groups["2"].header,
    ]
    visited = [press(qtbot, Qt.Key.Key_Tab) for _ in expected]
    assert [w.objectName() or w.accessibleName() for w in visited] == [
        w.objectName() or w.accessibleName() for w in expected
    ]
    assert visited == expected

    # Ctrl+Enter runs (from wherever the focus is), with the typed value.
    sent: list[Execution] = []
    window.ctx.controller.submitted.connect(sent.append)
    press(qtbot, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.ctx.run_state.status is ExecutionStatus.RUNNING, timeout=RUN_TIMEOUT)
    assert sent and sent[0].graph is not None and sent[0].graph["1"].inputs["width"] == 80
    assert window.progress.details_shown()

    # Esc cancels it.
    press(qtbot, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)
    assert window.ctx.run_state.status is ExecutionStatus.CANCELLED
    assert window.results.count() == 0


def test_menus_show_the_shortcuts(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    window = open_window(server="http://127.0.0.1:9", data_dir=tmp_path)
    in_menus: set[QAction] = set()
    for top in window.menuBar().actions():
        menu = top.menu()
        if menu is not None:
            in_menus.update(menu.actions())  # type: ignore[attr-defined]
    actions = {
        "Open": window.open_action,
        "Run": window.run_action,
        "Cancel": window.cancel_action,
        "Reconnect": window.reconnect_action,
        "Profiles": window.profiles_action,
        "Show library": window.library_toggle,
        "Show queue": window.queue_toggle,
        "Workflows pane": window.show_workflows_action,
        "Nodes pane": window.show_nodes_action,
        "Reset": window.reset_action,
        "Go to the form": window.focus_form_action,
        "Quit": window.quit_action,
        "About": window.about_action,
    }
    for name, action in actions.items():
        assert not action.shortcut().isEmpty(), f"{name} has no shortcut"
        assert action in in_menus, f"{name} is in no menu"
    keys = [a.shortcut().toString() for a in actions.values()]
    assert len(keys) == len(set(keys)), f"two actions share a shortcut: {keys}"
