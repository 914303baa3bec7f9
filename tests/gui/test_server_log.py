"""The managed local ComfyUI in the window: a profile "ComfyUI installed on this computer" starts the
stand-in main.py, the server log panel shows the wait with the last lines, the window connects once it
answers; a crash is told with its exit code (not as a network blip) and Restart server brings it back;
quitting stops it. Screenshots of the panel starting and after the crash go to docs/ on request."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.local_server import ServerState
from comfydesk.backends.base import ConnectionState
from comfydesk.store.profiles import MANAGED_KIND, Profile
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.profiles_dialog import ProfilesDialog
from tests.gui.helpers import OpenWindow, windows

MAIN_PY = "import sys\nfrom comfydesk.testing.standin_main import main\nsys.exit(main())\n"
TIMEOUT = 30_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def managed_profile(tmp_path: Path, extra: str) -> Profile:
    folder = tmp_path / "ComfyUI"
    folder.mkdir()
    (folder / "main.py").write_text(MAIN_PY, encoding="utf-8")
    return Profile.new(
        "ComfyUI on this computer",
        kind=MANAGED_KIND,
        url="http://127.0.0.1:0",
        comfyui_dir=str(folder),
        python=sys.executable,
        extra_args=extra,
    )


def test_managed_server_starts_shows_its_log_crashes_restarts_and_stops_on_quit(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, docs_shots: Path
) -> None:
    trigger, hold = tmp_path / "crash-now", tmp_path / "still-loading"
    hold.write_text("", encoding="utf-8")  # it goes on "loading" until the starting state has been checked
    profile = managed_profile(
        tmp_path, f"--startup-delay 0.5 --hold-file '{hold}' --crash-file '{trigger}' --crash-code 3"
    )
    window: MainWindow = open_window(server="http://127.0.0.1:9", data_dir=tmp_path / "data")
    window.resize(1000, 760)
    server = window.ctx.local_server
    assert server is not None and not window.server_log_dock.isVisible()

    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=TIMEOUT)  # no server
    errors: list[object] = []
    window.ctx.errors.error_changed.connect(errors.append)
    window.ctx.connect_profile(profile)
    panel = window.server_log
    qtbot.waitUntil(lambda: server.state is ServerState.STARTING or bool(errors), timeout=TIMEOUT)
    assert not errors, errors
    qtbot.waitUntil(lambda: "loading pack 6" in panel.last_lines.text(), timeout=TIMEOUT)
    # A visible wait: the dock shows itself, with a busy bar and the last log lines.
    assert window.server_log_dock.isVisible() and panel.busy.isVisible() and panel.last_lines.isVisible()
    assert panel.status.text().startswith("Starting ComfyUI… waiting for it to answer")
    assert "Total VRAM" in panel.log.toPlainText()
    window.server_log_dock.grab().save(str(docs_shots / "managed-server-starting.png"))
    hold.unlink()  # now it may listen

    qtbot.waitUntil(lambda: window.ctx.connection.backend is not None, timeout=TIMEOUT)
    assert window.ctx.connection.url == server.url and server.state is ServerState.RUNNING
    assert panel.status.text() == f"ComfyUI is running on this computer at {server.url}."
    assert not panel.busy.isVisible() and panel.stop_button.isVisible()

    trigger.write_text("", encoding="utf-8")
    qtbot.waitUntil(lambda: server.state is ServerState.EXITED, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: window.error_view.isVisible(), timeout=TIMEOUT)
    # Told apart from a network blip: the process's exit code, its last lines behind Details.
    assert panel.status.text().startswith("The server process exited with code 3.")
    assert panel.restart_button.isVisible() and panel.restart_action.isEnabled()
    assert "RuntimeError: stand-in crash on demand" in panel.log.toPlainText()
    banner = window.error_view.findChild(object, "errorMessage")
    assert banner is None or "exited with code 3" in banner.text()
    qtbot.waitUntil(
        lambda: window.ctx.connection.status.state is not ConnectionState.CONNECTED, timeout=TIMEOUT
    )
    window.server_log_dock.grab().save(str(docs_shots / "managed-server-crashed.png"))

    trigger.unlink()
    panel.restart_button.click()
    qtbot.waitUntil(lambda: server.state is ServerState.RUNNING, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: window.ctx.connection.status.state is ConnectionState.CONNECTED, timeout=TIMEOUT)
    pid = server.pid
    assert pid is not None

    window.close()  # quitting stops the server it started
    qtbot.waitUntil(lambda: window.ctx.closed, timeout=TIMEOUT)
    assert server.state is ServerState.STOPPED
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:  # a zombie until reaped counts as gone only if it is not running; check its state
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z"


def test_profiles_dialog_offers_a_comfyui_on_this_computer(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path
) -> None:
    window: MainWindow = open_window(server="http://127.0.0.1:9", data_dir=tmp_path / "data")
    dialog = ProfilesDialog(window.ctx.profiles, window.ctx.connection, parent=window)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.kind.setCurrentIndex(dialog.kind.findData(MANAGED_KIND))
    assert dialog.kind.currentText() == "ComfyUI installed on this computer"
    assert dialog.comfyui_dir.isVisible() and dialog.extra_args.isVisible() and not dialog.url.isVisible()

    folder = tmp_path / "ComfyUI"
    folder.mkdir()
    dialog.comfyui_dir.setText(str(folder))
    dialog.test_button.click()
    assert dialog.test_result.text().startswith("✗ There is no main.py in")
    (folder / "main.py").write_text(MAIN_PY, encoding="utf-8")
    dialog.test_button.click()
    assert dialog.test_result.text().startswith("✗ No Python was found")
    venv_python = folder / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_bytes(b"")
    dialog.comfyui_dir.clear()
    dialog.comfyui_dir.setText(str(folder))  # the note and placeholder follow the folder
    assert dialog.python.placeholderText() == str(venv_python)
    assert dialog.python_note.text().startswith("Found in the ComfyUI folder")
    dialog.extra_args.setText("--lowvram")
    dialog.test_button.click()
    assert dialog.test_result.text() == f"✓ Ready to start: main.py found, Python {venv_python}"

    saved = dialog.save_profile()
    assert saved.kind == MANAGED_KIND and saved.comfyui_dir == str(folder) and saved.extra_args == "--lowvram"
    assert saved.url.startswith("http://127.0.0.1:") and saved.auth == "none"
    again = window.ctx.profiles.store.get(saved.id)
    assert again == saved  # kept in profiles.json with its new fields
    assert dialog.current_profile().url == saved.url  # the port stays the same once chosen
