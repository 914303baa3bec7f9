"""The demo engine's samples are listed whenever the connected server is a demo engine, wherever it runs (an
external `comfydesk demo-server` here), and not for another server. Real sockets; no sleeps."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.context import profile_for_url
from comfydesk.app.demo import is_demo_server
from comfydesk.backends.base import ServerInfo
from comfydesk.backends.comfyui_documents import server_info_from_stats
from comfydesk.testing import FakeConfig, RunningFake, create_app, start_fake_comfyui
from comfydesk.testing.demo import demo_config, sample_workflows_dir
from comfydesk.ui.main_window import MainWindow
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

SAMPLES = sorted(p.stem for p in sample_workflows_dir().glob("*.json"))


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def demo_server(qtbot: QtBot, tmp_path: Path) -> Iterator[str]:
    """`comfydesk demo-server` in a process of its own, on 127.0.0.1; yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "comfydesk", "demo-server", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        qtbot.waitUntil(lambda: listening(port) or proc.poll() is not None, timeout=30_000)
        assert proc.poll() is None, "comfydesk demo-server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def plain_fake(tmp_path: Path) -> Iterator[RunningFake]:
    """The fake ComfyUI with the captured ComfyUI 0.8.0 catalogue: not a demo engine."""
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    yield fake
    fake.stop()


def samples_shown(window: MainWindow) -> list[str]:
    return sorted(e.path.stem for e in window.ctx.library.entries if e.source == "sample" and e.path)


def settled(window: MainWindow, local_key: str) -> bool:
    """Connected (the server said what it is), its catalogue read, the local workflow listed, and nothing
    left to do but listen to the server (so switching now cuts no request short)."""
    ctx = window.ctx
    return (
        ctx.connection.backend is not None
        and ctx.connection.server_info is not None
        and ctx.catalog.catalog is not None
        and ctx.library.entry(local_key) is not None
        and ctx.tasks.pending == 1
    )


def test_an_external_demo_server_lists_the_samples(
    qtbot: QtBot, open_window: OpenWindow, demo_server: str, tmp_path: Path
) -> None:
    window = open_window(server=demo_server, data_dir=tmp_path / "app")
    wait_connected(qtbot, window)
    assert is_demo_server(window.ctx.connection.server_info)
    assert not window.ctx.demo.running  # not started here: the server said what it is
    qtbot.waitUntil(lambda: samples_shown(window) == SAMPLES, timeout=10_000)
    assert len(window.workflow_pane.visible_names("sample")) == len(SAMPLES)

    # They work there: a sample opens into its form.
    pick(qtbot, window, "sample:plasma_wallpaper.json")
    entry = window.ctx.library.entry("sample:plasma_wallpaper.json")
    assert entry is not None and not entry.has_problems


def test_another_server_lists_no_samples_and_switching_hides_them(
    qtbot: QtBot, open_window: OpenWindow, plain_fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Mine", {"1": {"class_type": "EmptyImage", "inputs": {}}})
    window = open_window(server=plain_fake.url, data_dir=data_dir)
    qtbot.waitUntil(lambda: settled(window, key), timeout=10_000)
    assert not is_demo_server(window.ctx.connection.server_info)
    assert samples_shown(window) == [] and window.workflow_pane.visible_names("sample") == []

    # To a demo engine (the same code `comfydesk demo-server` serves, in a thread): the samples come...
    demo = start_fake_comfyui(demo_config(tmp_path / "demo"))
    try:
        window.ctx.connect_profile(profile_for_url(demo.url), remember=False)
        qtbot.waitUntil(lambda: samples_shown(window) == SAMPLES, timeout=10_000)
        qtbot.waitUntil(lambda: settled(window, key), timeout=10_000)
        # ...and back to the other server: they go; the user's own workflows stay.
        window.ctx.connect_profile(profile_for_url(plain_fake.url), remember=False)
        qtbot.waitUntil(lambda: samples_shown(window) == [], timeout=10_000)
        qtbot.waitUntil(lambda: settled(window, key), timeout=10_000)
        assert window.workflow_pane.visible_names("local") == ["Mine"]
        assert window.workflow_pane.visible_names("sample") == []
        assert window.ctx.errors.history == []  # switching servers alarms nobody
    finally:
        demo.stop()


def _info(raw: Any, kind: str = "comfyui") -> ServerInfo:
    return ServerInfo(kind=kind, version="0.8.0", url="http://x", raw=raw)


def test_demo_detection_trusts_only_what_the_server_says(tmp_path: Path) -> None:
    demo_stats = create_app(demo_config(tmp_path / "d")).state.fake.system_stats()
    plain = FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "p")
    plain_stats = create_app(plain).state.fake.system_stats()
    assert is_demo_server(server_info_from_stats(demo_stats, url="http://x"))
    assert not is_demo_server(server_info_from_stats(plain_stats, url="http://x"))
    # Odd or hostile answers are simply "not a demo engine", never an error.
    odd: list[dict[str, Any]] = [
        {},
        {"system": "demo"},
        {"system": {"argv": "comfydesk demo-server"}},
        {"system": {"argv": []}},
        {"system": {"argv": ["main.py", "--listen"]}},  # a real ComfyUI
    ]
    for raw in odd:
        assert not is_demo_server(_info(raw)), raw
    assert not is_demo_server(_info(demo_stats, kind="comfydesk-gateway"))
    assert not is_demo_server(None)
