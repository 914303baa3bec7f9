"""`install_gallery_actions` in the real main window: the gallery's shortcuts and context menu, the viewer
opened from the gallery, its keys, and an image opened from a file restoring its comfydesk values."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListView
from pytestqt.qtbot import QtBot

from comfydesk.app.journal import JournalModel
from comfydesk.core.pngmeta import read_embedded_workflow
from comfydesk.store.journal import OutputRecord
from comfydesk.ui.gallery import add_gallery_dock
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.viewer_actions import GalleryActionSet, install_gallery_actions
from tests.conftest import FIXTURES, load_json
from tests.gui.helpers import OpenWindow, windows

T = TypeVar("T")
TXT2IMG: dict[str, Any] = load_json("workflows/api/txt2img_tiny_sd15.json")


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(qtbot: QtBot, coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=10_000)
    return task.result()


def add_output(qtbot: QtBot, journal: JournalModel, seed: int, fixture: str) -> OutputRecord:
    graph = {**TXT2IMG, "3": {**TXT2IMG["3"], "inputs": {**TXT2IMG["3"]["inputs"], "seed": seed}}}
    record = run(
        qtbot,
        journal.record_run(
            profile_id="local",
            server="gpu-box",
            workflow_name="Cats",
            workflow_id=None,
            api_graph=graph,
            ui_graph=None,
            values={"3.seed": seed},
            seed=seed,
        ),
    )
    data = (FIXTURES / "view" / fixture).read_bytes()
    out = run(
        qtbot,
        journal.add_output(
            record.id,
            node_id="9",
            kind="images",
            data=data,
            source=fixture,
            filename=fixture,
            mime="image/png",
        ),
    )
    assert out is not None
    return out


def setup(qtbot: QtBot, window: MainWindow) -> tuple[GalleryActionSet, QListView]:
    action_set = getattr(window, "gallery_actions", None)  # the window installs them itself
    if action_set is None:
        if window.findChild(QListView, "gallery") is None:
            add_gallery_dock(window, window.ctx.gallery)
        action_set = install_gallery_actions(window, window.ctx)
    gallery = window.findChild(QListView, "gallery")
    assert isinstance(action_set, GalleryActionSet) and gallery is not None
    return action_set, gallery


def test_gallery_shortcuts_viewer_and_undo(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path)
    action_set, gallery = setup(qtbot, window)
    journal = window.ctx.journal
    first = add_output(qtbot, journal, 1, "txt2img_tiny_sd15.png")
    second = add_output(qtbot, journal, 2, "empty_blur_save.png")
    model = gallery.model()
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=10_000)
    assert action_set.save_action in gallery.menu_actions()  # type: ignore[attr-defined]

    window.activateWindow()
    gallery.setFocus()
    qtbot.waitUntil(gallery.hasFocus)
    assert gallery.select_record(second.id)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: [r.id for r in action_set.selection] == [second.id])
    qtbot.keyClick(gallery, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=10_000)
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=10_000)

    # Enter opens the viewer on the current tile, walking the gallery's rows.
    assert gallery.select_record(first.id)  # type: ignore[attr-defined]
    qtbot.keyClick(gallery, Qt.Key.Key_Return)
    viewer = action_set.viewer
    assert viewer is not None and viewer.isVisible()
    assert viewer.current().id == first.id  # type: ignore[union-attr]
    assert len(viewer.records()) == 2
    qtbot.waitUntil(lambda: viewer.current_image() is not None, timeout=5000)
    qtbot.waitUntil(lambda: viewer.run() is not None and viewer.run().seed == 1, timeout=5000)  # type: ignore[union-attr]
    viewer.activateWindow()
    viewer.canvas.setFocus()
    qtbot.waitUntil(viewer.canvas.hasFocus)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_S)  # star what the viewer shows
    qtbot.waitUntil(lambda: viewer.current().starred, timeout=5000)  # type: ignore[union-attr]
    assert "★" in viewer.title_label.text()
    assert viewer.mime_provider is not None
    dragged = viewer.mime_provider()  # what the viewer's drag handle hands to another application
    assert dragged is not None and dragged.hasImage()
    assert [u.toLocalFile() for u in dragged.urls()] == [str(first.path)]
    other = next(r for r in viewer.records() if r.id != first.id)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Right if viewer.current_index() == 0 else Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: viewer.current().id == other.id)  # type: ignore[union-attr]
    assert gallery.current_record().id == other.id  # type: ignore[attr-defined]  # the gallery follows
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: len(viewer.records()) == 1)
    assert viewer.current().id == first.id  # type: ignore[union-attr]
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=10_000)

    # Ctrl+S in the viewer: a file dialog named after the workflow and seed, then a PNG with the metadata.
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    dialog = action_set.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.selectedFiles()[0].endswith(f"Cats-1-{first.id}.png")
    target = tmp_path / "saved" / "cat.png"
    target.parent.mkdir()
    dialog.fileSelected.emit(str(target))
    dialog.reject()
    qtbot.waitUntil(target.exists, timeout=10_000)
    assert read_embedded_workflow(target.read_bytes())["prompt"]["3"]["inputs"]["seed"] == 1
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Escape)
    assert not viewer.isVisible()


def test_file_import_brings_comfyui_outputs_into_the_gallery(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File -> Import ComfyUI outputs…: PNGs saved by ComfyUI become gallery entries with their graph."""
    from PIL import Image, PngImagePlugin
    from PySide6.QtWidgets import QFileDialog

    folder = tmp_path / "ComfyUI-output"
    folder.mkdir()
    for n in range(3):
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(TXT2IMG))
        Image.new("RGB", (64 + n, 48), (n * 60, 90, 160)).save(folder / f"ComfyUI_{n:05}_.png", pnginfo=info)
    (folder / "notes.txt").write_text("not an image")
    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path / "app")
    action = window.import_outputs_action
    assert action in window.file_menu.actions()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    action.trigger()
    qtbot.waitUntil(lambda: window.ctx.gallery.rowCount() == 3, timeout=10_000)
    qtbot.waitUntil(lambda: "Imported 3 images" in window.statusBar().currentMessage(), timeout=10_000)
    records = [window.ctx.gallery.index(i, 0).data(Qt.ItemDataRole.UserRole + 1) for i in range(3)]
    assert sorted((r.width, r.height) for r in records) == [(64, 48), (65, 48), (66, 48)]
    run_record = run(qtbot, window.ctx.journal.run(records[0].run_id))
    assert run_record is not None and run_record.api_graph == TXT2IMG
