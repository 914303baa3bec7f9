"""Settings are written off the UI thread and flushed on close; closing shuts everything down in order."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import keyring
import pytest
import qasync
from keyring.backends import fail
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfydesk.app.context import AppContext
from comfydesk.backends.base import ConnectionState
from comfydesk.store import atomic
from tests.gui.helpers import OpenWindow, windows

KEY = "local:Blog.json"


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def read_settings(data_dir: Path) -> dict[str, object]:
    doc = json.loads((data_dir / "settings.json").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def prompt_of(doc: dict[str, object]) -> object:
    workflows = doc["workflows"]
    assert isinstance(workflows, dict)
    return workflows[KEY]["values"]["prompt"]


def test_settings_writes_coalesce_off_the_ui_thread_and_close_flushes(
    qtbot: QtBot, qapp: QApplication, open_window: OpenWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []  # the thread of each settings write
    gate = threading.Event()  # cleared: a write blocks in its thread until the test lets it go
    gate.set()
    real_write = atomic.atomic_write_bytes

    def spy(path: Path, data: bytes, *, mode: int | None = None) -> None:
        if path.name == "settings.json":
            writes.append(threading.get_ident())
            assert gate.wait(10)
        real_write(path, data, mode=mode)

    monkeypatch.setattr(atomic, "atomic_write_bytes", spy)
    window = open_window(server=closed_url(), data_dir=tmp_path)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    writer = window.ctx.settings.writer
    assert writer is not None
    qtbot.waitUntil(lambda: not writer.pending, timeout=5_000)
    writes.clear()
    ui_thread = threading.get_ident()
    memory = window.ctx.memory

    try:
        gate.clear()
        for i in range(100):  # a burst of form changes, each reaching the settings as the debounce would
            memory.remember(KEY, values={"prompt": f"value {i}"})
            memory.flush()
            qapp.processEvents()  # the loop runs between changes: the UI thread never waits for the disk
            if i == 0:
                qtbot.waitUntil(lambda: len(writes) == 1, timeout=5_000)  # in flight, held in its thread
        assert len(writes) == 1
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not writer.pending, timeout=5_000)
    assert len(writes) == 2  # the one in flight, then one with the newest state
    assert all(ident != ui_thread for ident in writes)
    assert prompt_of(read_settings(tmp_path)) == "value 99"

    # Pending at close, not written yet (the form memory waits for a pause, the writer for the loop):
    memory.remember(KEY, values={"prompt": "last words"})
    window.ctx.settings.set("late", 1)
    window.close()
    doc = read_settings(tmp_path)
    assert prompt_of(doc) == "last words" and doc["late"] == 1
    qtbot.waitUntil(lambda: window.ctx.closed, timeout=5_000)


def test_close_shuts_down_the_connection_and_the_demo_engine(
    qtbot: QtBot, qloop: qasync.QEventLoop, open_window: OpenWindow, tmp_path: Path
) -> None:
    window = open_window(server=closed_url(), data_dir=tmp_path)
    ctx = window.ctx
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    ctx.start_demo()
    qtbot.waitUntil(lambda: ctx.connection.backend is not None, timeout=15_000)
    backend = ctx.connection.backend
    assert backend is not None and ctx.demo.url is not None
    port = urlsplit(ctx.demo.url).port
    assert port is not None
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # the demo engine listens
    server_threads = [t for t in threading.enumerate() if t.name == "fake-comfyui"]
    assert server_threads

    window.close()
    qtbot.waitUntil(lambda: ctx.closed, timeout=5_000)
    qtbot.waitUntil(lambda: ctx.tasks.pending == 0, timeout=2_000)
    assert backend.status.state is ConnectionState.DISCONNECTED
    assert ctx.connection.backend is None and not ctx.demo.running
    assert not any(t.is_alive() for t in server_threads)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert [t for t in asyncio.all_tasks(qloop) if not t.done()] == []
    assert not [t for t in threading.enumerate() if t.name.startswith("comfydesk-settings")]


@pytest.mark.parametrize("how", ["close", "quit"])
def test_run_returns_after_an_orderly_shutdown(qapp: QApplication, tmp_path: Path, how: str) -> None:
    """`comfydesk` itself: the loop stops only once the connection and the demo engine are closed, whether
    the window was closed or the application told to quit (the session ends)."""
    from comfydesk.gui import QUIET_LOGGERS, run
    from comfydesk.ui.main_window import MainWindow

    seen: dict[str, object] = {}

    def started() -> None:
        window = next(w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        QTimer.singleShot(20_000, window, window.close)  # a safety net: the assertions below say what failed
        if not window.is_attached:  # its frame is on screen, the app state comes next
            window.attached.connect(lambda: QTimer.singleShot(0, lambda: bound(window)))  # once the loop runs
        else:
            bound(window)

    def bound(window: MainWindow) -> None:
        seen["window"], seen["ctx"] = window, window.ctx
        seen["frozen"] = gc.get_freeze_count()  # start-up's objects, kept out of the collector's walks

        def on_backend(backend: object) -> None:
            if backend is not None and "port" not in seen:
                seen["port"] = urlsplit(window.ctx.demo.url or "").port
                seen["threads"] = [t for t in threading.enumerate() if t.name == "fake-comfyui"]
                QTimer.singleShot(0, window.close if how == "close" else qapp.quit)

        window.ctx.connection.backend_changed.connect(on_backend)
        window.ctx.start_demo()

    levels = {n: logging.getLogger(n).level for n in ("comfydesk", *QUIET_LOGGERS)}
    old_keyring = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        QTimer.singleShot(0, started)
        assert run(server=closed_url(), data_dir=tmp_path) == 0
    finally:
        keyring.set_keyring(old_keyring)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    window, ctx = seen["window"], seen["ctx"]
    assert isinstance(window, MainWindow) and isinstance(ctx, AppContext)
    window.deleteLater()
    assert ctx.closed
    threads = seen["threads"]
    assert isinstance(threads, list) and threads and not any(t.is_alive() for t in threads)
    port = seen["port"]
    assert isinstance(port, int)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert qapp.quitOnLastWindowClosed()
    frozen = seen["frozen"]
    assert isinstance(frozen, int) and frozen > 10_000
    assert gc.get_freeze_count() == 0  # given back to the collector when run returned


def test_a_window_closed_before_its_deferred_start_never_connects(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    from comfydesk.gui import create_main_window

    window = create_main_window(server=closed_url(), data_dir=tmp_path)
    ctx = window.ctx
    window.close()  # before the loop has run the start that create_main_window deferred
    qtbot.waitUntil(lambda: ctx.closed, timeout=5_000)
    qtbot.waitUntil(lambda: ctx.tasks.pending == 0, timeout=2_000)
    assert ctx.connection.profile is None and ctx.connection.backend is None
    assert [t for t in asyncio.all_tasks(qloop) if not t.done()] == []
    window.deleteLater()
