"""The connection label's tooltip: the address (never a secret in it) and, when down, what to do and why."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from comfydesk.backends.base import ConnectionState, ConnectionStatus
from comfydesk.ui.status_line import connection_tooltip


def test_connected_shows_the_address_alone() -> None:
    tip = connection_tooltip(ConnectionStatus(ConnectionState.CONNECTED), "http://gpu-box:8188/")
    assert tip == "Server: http://gpu-box:8188"


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:s3cret-pass@gpu-box:8188",
        "http://gpu-box:8188/?token=s3cret-pass",
        "https://gpu-box:8188/comfy#s3cret-pass",
    ],
)
def test_no_secret_of_the_address_is_shown(url: str) -> None:
    tip = connection_tooltip(ConnectionStatus(ConnectionState.CONNECTED), url)
    assert "s3cret-pass" not in tip and "alice" not in tip
    assert "gpu-box:8188" in tip


def test_disconnected_says_what_to_do_and_keeps_the_reason_as_details() -> None:
    reason = "cannot reach http://gpu-box:8188: connection refused (is ComfyUI running there?)"
    tip = connection_tooltip(
        ConnectionStatus(ConnectionState.DISCONNECTED, reason=reason), "http://gpu-box:8188"
    )
    server, said, details = tip.split("\n\n")
    assert server == "Server: http://gpu-box:8188"
    assert said and "Traceback" not in said
    assert details.startswith("Details: ") and "connection refused" in details


def test_the_label_carries_it(qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QMainWindow

    from comfydesk.app.connection import ConnectionModel
    from comfydesk.app.tasks import ErrorModel, TaskRunner
    from comfydesk.ui.status_line import StatusLine

    window = QMainWindow()
    qtbot.addWidget(window)
    connection = ConnectionModel(TaskRunner(ErrorModel()), lambda profile, secret: None)  # type: ignore[arg-type,return-value]
    line = StatusLine(window.statusBar(), connection, window)
    down = ConnectionStatus(ConnectionState.DISCONNECTED, reason="cannot reach http://h:1: refused")
    connection._set_status(down)
    line.on_status(connection.status)
    assert line.label.text().startswith("Disconnected")
    assert "Details: cannot reach http://h:1: refused" in line.label.toolTip()
