"""`comfydesk` shows the window's frame first (menus, docks, status bar, in the saved size and theme), then
builds the app state and the panes into it (`comfydesk.gui.run`): the frame must lay out exactly as a
window built whole, use the saved theme from its first paint, and a window closed before its panes came
must end the app cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
import qasync
from keyring.backends import fail
from PySide6.QtCore import QByteArray, QTimer
from PySide6.QtWidgets import QApplication, QDockWidget
from pytestqt.qtbot import QtBot

from comfydesk.core.nodes import parse_object_info
from comfydesk.gui import (
    attach_app_state,
    create_main_window,
    first_server,
    list_cached_nodes,
    run,
    show_frame,
)
from comfydesk.store.catalog_cache import CatalogCache, catalogs_dir
from comfydesk.store.settings import Preferences, Settings
from comfydesk.testing import FakeConfig, start_fake_comfyui
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.node_pane import ID_ROLE
from comfydesk.ui.theme import apply_theme, current_theme, is_dark
from comfydesk.ui.window_layout import LIBRARY_TAB_KEY
from tests.conftest import FIXTURES, load_json
from tests.gui.helpers import wait_connected
from tests.gui.test_main_window import closed_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def opened(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[list[MainWindow]]:
    """Windows to close (and their app state to shut down) after the test; the keyring fails meanwhile."""
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    windows: list[MainWindow] = []
    try:
        yield windows
    finally:
        for window in windows:
            window.close()
            if window.is_attached:
                qtbot.waitUntil(lambda w=window: w.ctx.tasks.pending == 0, timeout=10_000)
            window.deleteLater()
        keyring.set_keyring(old)
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        apply_theme(app, "system")


def docks(window: MainWindow) -> dict[str, tuple[bool, int, int]]:
    """Each dock's visibility and size, and the centre's, as laid out now."""
    found = {d.objectName(): (d.isVisible(), d.width(), d.height()) for d in window.findChildren(QDockWidget)}
    centre = window.centralWidget()
    assert centre is not None
    found["centre"] = (centre.isVisible(), centre.width(), centre.height())
    return found


def saved_layout(qtbot: QtBot, opened: list[MainWindow], data_dir: Path) -> None:
    """A session that moved things around: the window moved, the gallery wider, the queue closed; then
    closed (its layout saved)."""
    from PySide6.QtCore import Qt

    window = create_main_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=data_dir)
    opened.append(window)
    window.move(30, 20)
    window.show()
    qtbot.waitExposed(window)
    window.queue_dock.hide()
    before = window.gallery_dock.width()
    window.resizeDocks([window.gallery_dock], [before + 80], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: window.gallery_dock.width() > before)
    window.close()
    window.ctx.settings.flush()
    qtbot.waitUntil(lambda: window.ctx.tasks.pending == 0, timeout=10_000)


@pytest.mark.parametrize("session", ["first start", "layout saved"])
def test_the_frame_then_its_panes_lay_out_as_a_window_built_whole(
    qtbot: QtBot, qapp: QApplication, opened: list[MainWindow], tmp_path: Path, session: str
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    staged_dir, whole_dir = tmp_path / "staged", tmp_path / "whole"
    staged_dir.mkdir()
    if session == "layout saved":
        saved_layout(qtbot, opened, staged_dir)
        assert Settings(staged_dir / "settings.json").window_state() is not None
    shutil.copytree(staged_dir, whole_dir)

    frame = show_frame(qapp, staged_dir)
    opened.append(frame)
    assert frame.isVisible() and not frame.is_attached
    assert frame.statusBar().currentMessage() == "Starting…"
    assert [a.text() for a in frame.menuBar().actions()] == ["&File", "&Run", "&View", "&Server", "&Help"]
    frame_docks = docks(frame)
    assert frame.frame_settings is not None
    first = first_server(url, staged_dir, frame.frame_settings)
    list_cached_nodes(qapp, frame, first)  # nothing cached, no server: the pane lists nothing yet
    assert frame.lists_nodes and frame.node_pane.shown_count() == 0 and not frame.is_attached
    ctx = attach_app_state(frame, url, staged_dir, first=first)
    assert ctx.profiles.store is first.profiles
    assert frame.is_attached and frame.ctx is ctx and ctx.settings is frame.frame_settings
    assert frame.statusBar().currentMessage() == ""
    staged = docks(frame)

    whole = create_main_window(server=url, data_dir=whole_dir)
    opened.append(whole)
    whole.show()
    qtbot.waitExposed(whole)
    qapp.processEvents()
    assert staged == docks(whole)
    assert frame.geometry() == whole.geometry()
    if session == "first start":
        # The frame showed the docks where the panes then came: only the panes' insides changed. (A saved
        # layout squeezed into a screen this small, 800 px offscreen, moves by the panes' minimum widths.)
        assert {k: v for k, v in frame_docks.items() if k != "centre"} == {
            k: v for k, v in staged.items() if k != "centre"
        }
    if session == "layout saved":
        assert not frame.queue_dock.isVisible()
    # The menus the frame showed are the ones the panes' actions went into.
    assert frame.file_menu.actions() and frame.run_menu.actions() and frame.server_menu.actions()
    assert frame.view_menu.menuAction() in frame.menuBar().actions()
    # The app state of a staged start writes its settings in the background, like one built whole.
    assert ctx.settings.writer is not None
    frame.save_layout()
    ctx.settings.flush()
    saved = Settings(staged_dir / "settings.json")
    assert frame.restoreState(QByteArray(saved.window_state() or b""))


def test_the_cached_nodes_are_listed_before_the_app_state_and_stay_as_the_user_left_them(
    qtbot: QtBot, qapp: QApplication, opened: list[MainWindow], tmp_path: Path
) -> None:
    """The start's second step lists the node cache's summaries of the server (the nodes pane in front, as
    the user left it); the definitions read once the app state exists take their place without redrawing
    the list: the category the user opened stays open, the node picked shows its details."""
    url = f"http://127.0.0.1:{closed_port()}"
    catalog = parse_object_info(load_json("object_info.json"))
    CatalogCache(catalogs_dir(tmp_path)).save(url, catalog)
    Settings(tmp_path / "settings.json").set(LIBRARY_TAB_KEY, "nodes")

    frame = show_frame(qapp, tmp_path)
    opened.append(frame)
    assert frame.frame_settings is not None
    start = first_server(url, tmp_path, frame.frame_settings)
    assert start.prefetch is None  # cached: the connection asks for the fresh definitions, as always
    list_cached_nodes(qapp, frame, start)
    pane = frame.node_pane
    assert not frame.is_attached and pane.isVisible() and frame.left_tabs.currentWidget() is pane
    assert pane.shown_count() == len(catalog)
    assert sorted(pane.leaf_ids()) == sorted(catalog)
    first = pane.tree.topLevelItem(0)
    assert first is not None
    first.setExpanded(True)  # the user opens a category and picks a node before the definitions come
    leaf = first.child(0)
    assert leaf is not None
    while leaf.childCount() or not leaf.data(0, ID_ROLE):  # a node, not a sub-category
        leaf.setExpanded(True)
        leaf = leaf.child(0)
    pane.tree.setCurrentItem(leaf)
    assert "Reading its inputs and outputs" in pane.details.toPlainText()

    ctx = attach_app_state(frame, url, tmp_path, first=start)
    assert frame.left_tabs.currentWidget() is pane and frame.left_tabs.widget(0) is frame.workflow_pane
    qtbot.waitUntil(lambda: ctx.catalog.catalog is not None, timeout=10_000)  # the cached definitions
    node = ctx.catalog.catalog[str(leaf.data(0, ID_ROLE))]
    assert pane.tree.topLevelItem(0) is first and first.isExpanded() and pane.tree.currentItem() is leaf
    assert "Reading" not in pane.details.toPlainText()
    assert node.title in pane.details.toPlainText() and "Inputs" in pane.details.toPlainText()

    frame.left_tabs.setCurrentWidget(frame.workflow_pane)  # the library tab in front is kept
    frame.save_layout()
    assert ctx.settings.get(LIBRARY_TAB_KEY) == "workflows"


def test_with_nothing_cached_the_server_is_asked_once_and_its_nodes_listed_before_the_app_state(
    qtbot: QtBot, qapp: QApplication, opened: list[MainWindow], tmp_path: Path
) -> None:
    """A first start with a ComfyUI on this computer: its node definitions are asked for before the frame
    (`first_server`), listed right after it, and the connection takes them instead of asking again; they
    are then kept in the node cache for the next start."""
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    try:
        data = tmp_path / "data"
        settings = Settings(data / "settings.json")
        start = first_server(fake.url, data, settings)
        assert start.prefetch is not None
        frame = show_frame(qapp, data, settings)
        opened.append(frame)
        list_cached_nodes(qapp, frame, start)
        pane = frame.node_pane
        listed = pane._catalog
        assert not frame.is_attached and listed is not None
        assert pane.shown_count() == len(load_json("object_info.json"))
        ctx = attach_app_state(frame, fake.url, data, first=start)
        wait_connected(qtbot, frame)
        qtbot.waitUntil(lambda: CatalogCache(catalogs_dir(data)).path_for(fake.url).exists(), timeout=10_000)
        assert ctx.catalog.catalog is listed and pane._catalog is listed  # the same definitions throughout
        asked = fake.faults.requests_to("/object_info") + fake.faults.requests_to("/api/object_info")
        assert asked == 1
        backend = ctx.connection.backend
        assert backend is not None
        asked_again = asyncio.ensure_future(backend.node_catalog())
        qtbot.waitUntil(asked_again.done, timeout=5_000)
        assert asked_again.result() is listed  # the connection's own now: not asked for again
        assert fake.faults.requests_to("/object_info") + fake.faults.requests_to("/api/object_info") == 1
    finally:
        fake.stop()


def test_an_early_ask_that_fails_leaves_the_connection_to_ask_as_always(
    qtbot: QtBot, qapp: QApplication, opened: list[MainWindow], tmp_path: Path
) -> None:
    """The server answers the start's early ask with an error: nothing is listed early, no error is shown
    for it, and the connection asks again and lists the nodes."""
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    fake.faults.fail_route("/object_info", 500, body=b'{"error": "busy"}', times=1)
    try:
        data = tmp_path / "data"
        settings = Settings(data / "settings.json")
        start = first_server(fake.url, data, settings)
        frame = show_frame(qapp, data, settings)
        opened.append(frame)
        list_cached_nodes(qapp, frame, start)
        assert start.prefetch is not None and start.prefetch.done() and start.prefetch.catalog() is None
        assert frame.node_pane.shown_count() == 0
        ctx = attach_app_state(frame, fake.url, data, first=start)
        wait_connected(qtbot, frame)
        count = len(load_json("object_info.json"))
        qtbot.waitUntil(lambda: frame.node_pane.shown_count() == count, timeout=10_000)
        assert fake.faults.requests_to("/object_info") + fake.faults.requests_to("/api/object_info") == 2
        assert ctx.errors.history == []  # the early ask is an optimisation: its failure is nobody's news
    finally:
        fake.stop()


def test_the_frame_has_the_saved_theme_from_its_first_paint(
    qtbot: QtBot, qapp: QApplication, opened: list[MainWindow], tmp_path: Path
) -> None:
    settings = Settings(tmp_path / "settings.json")
    settings.preferences = Preferences(theme="dark", reduce_motion=True)
    painted: list[bool] = []
    frame = show_frame(qapp, tmp_path)
    opened.append(frame)
    painted.append(is_dark(frame.palette()))
    assert painted == [True] and current_theme(qapp) == "dark"
    assert not frame.isAnimated()  # reduce motion: docks jump, from the frame on
    attach_app_state(frame, f"http://127.0.0.1:{closed_port()}", tmp_path)
    assert frame.settings_ui.theme_actions["dark"].isChecked() and is_dark(frame.palette())


def test_a_window_closed_while_its_frame_shows_ends_the_app_without_starting_it(
    qapp: QApplication, tmp_path: Path
) -> None:
    """The user closes the window before its panes come (or the session ends then): `run` returns 0 at
    once, having built no app state (no journal, no connection) and left Qt as it found it."""
    closed: list[MainWindow] = []

    def close_it() -> None:
        window = next(w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        assert not window.is_attached
        window.close()
        closed.append(window)

    QTimer.singleShot(0, close_it)
    quit_on_close = qapp.quitOnLastWindowClosed()
    try:
        assert run(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path) == 0
    finally:
        apply_theme(qapp, "system")
    assert len(closed) == 1 and not closed[0].is_attached and not closed[0].isVisible()
    assert not (tmp_path / "journal.sqlite3").exists()
    assert qapp.quitOnLastWindowClosed() == quit_on_close
    closed[0].deleteLater()


FIRST_FRAME_CHILD = """
import json, os, sys
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QWindow
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])

class Exposed(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Expose and isinstance(obj, QWindow) and obj.isExposed():
            mods = sorted(m for m in sys.modules if m.startswith("comfydesk"))
            print(json.dumps(mods), flush=True)
            os._exit(0)
        return False

watch = Exposed()
app.installEventFilter(watch)
from comfydesk.cli import main
main(["--data-dir", sys.argv[1], "--server", sys.argv[2]])
"""


def test_the_first_frame_is_shown_before_the_app_state_and_the_commands_are_imported(tmp_path: Path) -> None:
    """What `comfydesk` has imported when its window is first on screen: the frame's few modules, not the
    app state, the panes, the network clients or the command-line subcommands (all of which come after,
    or never for the window). A fresh interpreter, as the user starts it."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_FRAME_CHILD, str(tmp_path), f"http://127.0.0.1:{closed_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert {"comfydesk.gui", "comfydesk.ui.main_window", "comfydesk.store.settings"} <= loaded
    for module in (
        "comfydesk.app.context",
        "comfydesk.ui.form",
        "comfydesk.ui.canvas",
        "comfydesk.backends.comfyui",
        "comfydesk.store.journal",
        "comfydesk.store.writer",
        "comfydesk.commands.run",
        "comfydesk.commands.serve",
    ):
        assert module not in loaded, f"{module} is imported before the first frame"
