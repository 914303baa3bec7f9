"""The main window: opens at once with no server, first-run panel, demo engine, layout remembered."""

from __future__ import annotations

import socket
from pathlib import Path

import keyring
import pytest
import qasync
from keyring.backends import fail
from pytestqt.qtbot import QtBot

from comfydesk.app import create_main_window
from comfydesk.ui.main_window import MainWindow


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_keyring() -> object:
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(old)


def open_window(qtbot: QtBot, data_dir: Path, server: str | None) -> MainWindow:
    window = create_main_window(server=server, data_dir=data_dir)
    assert isinstance(window, MainWindow)
    qtbot.addWidget(window)
    window.show()
    return window


def test_opens_without_server_and_shows_first_run(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path, artifacts_dir: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    window = open_window(qtbot, tmp_path, url)
    # Opening returned at once; the failing connect happens in the background.
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    assert window.first_run.objectName() == "firstRunPanel"
    assert window.first_run.isVisible()
    label = window.findChild(object, "connectionStatus")
    assert label is not None and label.text().startswith("Disconnected:")
    window.grab().save(str(artifacts_dir / "01-first-run.png"))
