"""The gallery grid with qtbot: placeholders then thumbnails, broken tiles with their reason, the filter bar,
new outputs at the top (and the user's place kept), opening, selection, the context menu, the main window."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QColor, QContextMenuEvent
from PySide6.QtWidgets import QAbstractItemView, QApplication, QMenu
from pytestqt.qtbot import QtBot

from comfydesk.app import thumbnails as thumbnails_module
from comfydesk.app.gallery import GalleryModel, RecordRole, ThumbStateRole
from comfydesk.app.journal import JournalModel
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.app.thumbnails import ThumbnailCache
from comfydesk.store.journal import Journal, OutputRecord
from comfydesk.ui.gallery import GalleryPane
from tests.gui.helpers import OpenWindow, windows

T0 = 1_750_000_000.0
COLORS = [(200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 180, 30)]


def png(n: int, color: tuple[int, int, int], size: tuple[int, int] = (300, 300)) -> bytes:
    image = Image.new("RGB", size, color)
    image.putpixel((0, 0), (n % 256, n // 256 % 256, 1))  # every file its own bytes
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.journal = Journal(tmp / "journal.sqlite3", tmp / "blobs")
        self.journal_model = JournalModel(tmp / "journal.sqlite3", tmp / "blobs")
        self.errors = ErrorModel()
        self.tasks = TaskRunner(self.errors)
        self.thumbs = ThumbnailCache(tmp / "thumbs", threads=2)
        self.model = GalleryModel(self.journal_model, self.thumbs, self.tasks, page_size=60)
        self.pane = GalleryPane()
        self.pane.bind(self.model)
        self.pane.resize(640, 720)
        self.n = 0

    def add_run(
        self,
        workflow: str,
        count: int,
        *,
        prompt: str = "fox",
        data: bytes | None = None,
        at: float | None = None,
    ) -> list[OutputRecord]:
        run = self.journal.record_run(
            profile_id="p",
            server="gpu-box",
            workflow_name=workflow,
            workflow_id=None,
            api_graph={},
            ui_graph=None,
            values={"prompt": prompt},
            seed=42 + self.n,
        )
        self.journal.set_status(run.id, "completed")
        out = []
        for i in range(count):
            self.n += 1
            record = self.journal.add_output(
                run.id,
                node_id="9",
                kind="images",
                source=f"{run.id}-{i}",
                filename=f"{self.n}.png",
                data=data if data is not None else png(self.n, COLORS[self.n % len(COLORS)]),
                created_at=(at if at is not None else T0) + self.n,
            )
            assert record is not None
            out.append(record)
        return out

    def close(self) -> None:
        self.pane.bind(None)
        self.thumbs.close()
        self.journal_model.close(purge=False)
        self.journal.close()


@pytest.fixture
def env(qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    qtbot.addWidget(e.pane)
    try:
        yield e
    finally:
        e.close()


def show(qtbot: QtBot, env: Env, rows: int) -> None:
    env.pane.show()
    qtbot.waitExposed(env.pane)
    qtbot.waitUntil(lambda: env.model.rowCount() >= rows and not env.model.loading, timeout=10_000)


def tile_center(env: Env, row: int) -> QPoint:
    rect = env.pane.view.visualRect(env.model.index(row, 0))
    return QPoint(rect.center().x(), rect.y() + 6 + 88)  # the middle of the picture's box


def pixel(env: Env, point: QPoint) -> QColor:
    return env.pane.view.viewport().grab().toImage().pixelColor(point)


def close_to(a: QColor, rgb: tuple[int, int, int], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip((a.red(), a.green(), a.blue()), rgb, strict=True))


def test_placeholder_first_then_thumbnails(
    qtbot: QtBot, env: Env, monkeypatch: pytest.MonkeyPatch, artifacts_dir: Path
) -> None:
    records = env.add_run("Poster", 12)
    gate = threading.Event()
    real = thumbnails_module._thumbnail
    ui_thread = threading.get_ident()
    threads: set[int] = set()

    def slow(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.get_ident())
        gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(thumbnails_module, "_thumbnail", slow)
    show(qtbot, env, 12)
    view, model = env.pane.view, env.model
    assert view.objectName() == "gallery" and isinstance(view, QAbstractItemView)
    assert view.viewMode() == view.ViewMode.IconMode
    qtbot.waitUntil(lambda: model.index(0, 0).data(ThumbStateRole) == "loading")
    placeholder = view.palette().color(view.palette().ColorRole.Button)
    assert close_to(pixel(env, tile_center(env, 0) + QPoint(0, 30)), placeholder.getRgb()[:3])
    gate.set()
    qtbot.waitUntil(
        lambda: all(model.index(i, 0).data(ThumbStateRole) == "ready" for i in range(6)), timeout=10_000
    )
    newest = records[-1]
    assert model.index(0, 0).data(RecordRole).id == newest.id
    qtbot.waitUntil(lambda: close_to(pixel(env, tile_center(env, 0)), COLORS[env.n % len(COLORS)]))
    assert threads and ui_thread not in threads  # made on the pool, never on the UI thread
    env.pane.grab().save(str(artifacts_dir / "gallery-thumbnails.png"))


def test_broken_tile_shows_reason(qtbot: QtBot, env: Env, artifacts_dir: Path) -> None:
    bomb = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(bomb, "PNG")
    env.add_run("Poster", 2)
    env.add_run("Broken", 1, data=bomb.getvalue(), at=T0 + 100)
    env.add_run("Broken", 1, data=png(1, (1, 2, 3), (300, 300))[:150], at=T0 + 200)
    env.add_run("Broken", 1, data=b"<html>not an image</html>", at=T0 + 300)
    show(qtbot, env, 5)
    model = env.model
    qtbot.waitUntil(
        lambda: all(model.index(i, 0).data(ThumbStateRole) != "loading" for i in range(5)), timeout=10_000
    )
    states = [str(model.index(i, 0).data(ThumbStateRole)) for i in range(3)]
    assert all(s.startswith("broken: ") for s in states), states
    assert "not an image" in states[0] and "truncated" in states[1] and "decompression bomb" in states[2]
    assert "Cannot show" in model.index(2, 0).data(Qt.ItemDataRole.ToolTipRole)
    image = env.pane.view.viewport().grab().toImage()
    rect = env.pane.view.visualRect(model.index(2, 0))
    reds = sum(
        1
        for x in range(rect.left(), rect.right(), 2)
        for y in range(rect.top(), rect.bottom(), 2)
        if close_to(image.pixelColor(x, y), (214, 69, 65), 30)
    )
    assert reds > 20  # the broken tile's red outline and sign are painted
    assert not env.errors.history
    env.pane.grab().save(str(artifacts_dir / "gallery-broken.png"))


def test_filter_bar_narrows_the_grid(qtbot: QtBot, env: Env) -> None:
    env.add_run("Poster", 4, prompt="a red fox")
    env.add_run("Portrait", 3, prompt="an old owl", at=T0 + 100)
    show(qtbot, env, 7)
    bar, model = env.pane.filter_bar, env.model
    assert bar.objectName() == "galleryFilter"
    qtbot.waitUntil(lambda: bar.workflow.count() == 3)  # all + the two facets
    bar.workflow.setCurrentIndex(bar.workflow.findData("Portrait"))
    qtbot.waitUntil(lambda: model.rowCount() == 3 and not model.loading)
    assert {r.workflow_name for r in model.records()} == {"Portrait"}
    assert env.pane.summary.text() == "3 outputs match"
    bar.workflow.setCurrentIndex(0)
    qtbot.waitUntil(lambda: model.rowCount() == 7 and not model.loading)
    qtbot.keyClicks(bar.search, "fox")
    qtbot.waitUntil(lambda: model.rowCount() == 4 and not model.loading)
    bar.search.clear()
    qtbot.waitUntil(lambda: model.rowCount() == 7 and not model.loading)
    bar.starred.click()
    qtbot.waitUntil(lambda: model.rowCount() == 0 and not model.loading)
    assert env.pane.hint.isVisible() and "No outputs match" in env.pane.hint.text()


def test_custom_date_range(qtbot: QtBot, env: Env) -> None:
    from PySide6.QtCore import QDateTime

    from comfydesk.ui.gallery_filter import CUSTOM_RANGE

    env.add_run("Monday", 2)
    env.add_run("Thursday", 3, at=T0 + 3 * 86_400)
    show(qtbot, env, 5)
    bar, model = env.pane.filter_bar, env.model
    day = QDateTime.fromSecsSinceEpoch(int(T0)).date()
    bar.first_day.setDate(day)
    bar.last_day.setDate(day)
    assert not bar.custom.isVisibleTo(bar)
    bar.dates.setCurrentText(CUSTOM_RANGE)
    assert bar.custom.isVisibleTo(bar)
    qtbot.waitUntil(lambda: model.rowCount() == 2 and not model.loading)
    assert {r.workflow_name for r in model.records()} == {"Monday"}
    bar.last_day.setDate(day.addDays(2))
    bar.first_day.setDate(day.addDays(5))  # the other way round: still the days in between
    qtbot.waitUntil(lambda: model.rowCount() == 3 and not model.loading)
    assert {r.workflow_name for r in model.records()} == {"Thursday"}


def test_new_run_outputs_appear_at_top_and_place_is_kept(qtbot: QtBot, env: Env) -> None:
    env.add_run("Poster", 40)
    show(qtbot, env, 40)
    view, model = env.pane.view, env.model
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    columns = max(1, view.viewport().width() // view.gridSize().width())

    def add(workflow: str, count: int) -> None:
        run = env.journal.record_run(
            profile_id="p",
            server="gpu-box",
            workflow_name=workflow,
            workflow_id=None,
            api_graph={},
            ui_graph=None,
            values={},
            seed=1,
        )

        async def go() -> None:
            for i in range(count):
                env.n += 1
                await env.journal_model.add_output(
                    run.id,
                    node_id="9",
                    kind="images",
                    data=png(env.n, (9, 9, 9)),
                    source=str(i),
                    filename="x.png",
                )

        env.tasks.start(go(), what="test")

    # At the top: the new outputs come into view.
    add("Fresh", 2)
    qtbot.waitUntil(lambda: model.rowCount() == 42)
    assert [r.workflow_name for r in model.records()[:2]] == ["Fresh", "Fresh"]
    assert view.verticalScrollBar().value() == 0 and view.indexAt(QPoint(5, 5)).row() == 0

    # Scrolled down: the tile under the cursor stays the same tile.
    view.verticalScrollBar().setValue(view.gridSize().height() * 3)
    probe = QPoint(view.gridSize().width() // 2, view.gridSize().height() + 20)
    before = view.indexAt(probe).data(RecordRole).id
    add("Later", columns)
    qtbot.waitUntil(lambda: model.rowCount() == 42 + columns)
    assert view.indexAt(probe).data(RecordRole).id == before
    assert not resets


def test_open_select_and_context_menu(qtbot: QtBot, env: Env) -> None:
    env.add_run("Poster", 6)
    show(qtbot, env, 6)
    view, model = env.pane.view, env.model
    opened: list[OutputRecord] = []
    selections: list[list[OutputRecord]] = []
    env.pane.open_requested.connect(opened.append)
    view.selection_changed.connect(selections.append)
    view.setFocus()
    view.setCurrentIndex(model.index(0, 0))
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.currentIndex().row() == 1
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert [r.id for r in opened] == [model.records()[1].id]
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert [r.id for r in selections[-1]] == [r.id for r in model.records()[1:3]]
    hits: list[bool] = []
    action = QAction("Star", view)
    action.triggered.connect(lambda: hits.append(True))
    action.setShortcut("Ctrl+Shift+S")
    view.add_actions([action])
    assert view.menu_actions() == [action] and action in view.actions()
    requested: list[Any] = []
    view.context_menu_requested.connect(lambda recs, _pos: requested.append(recs))
    pos = view.visualRect(model.index(2, 0)).center()
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, view.viewport().mapToGlobal(pos))
    QApplication.sendEvent(view.viewport(), event)
    assert requested and len(requested[-1]) == 2  # on a selected tile: the whole selection
    menu = view.findChild(QMenu, "galleryMenu")
    assert menu is not None and menu.actions() == [action]
    menu.close()
    qtbot.keyClick(
        view, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert hits


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


def test_main_window_has_the_gallery(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite3", tmp_path / "blobs")
    run = journal.record_run(
        profile_id="p",
        server="gpu-box",
        workflow_name="Old",
        workflow_id=None,
        api_graph={},
        ui_graph=None,
        values={},
        seed=3,
    )
    journal.add_output(
        run.id, node_id="9", kind="images", data=png(1, (1, 1, 1)), source="a", filename="a.png"
    )
    journal.close()
    window = open_window(server="http://127.0.0.1:9", data_dir=tmp_path)
    view = window.findChild(QAbstractItemView, "gallery")
    assert view is window.gallery and window.gallery_dock.isVisible()
    assert window.findChild(type(window.gallery_pane.filter_bar), "galleryFilter") is not None
    qtbot.waitUntil(lambda: window.ctx.gallery.rowCount() == 1, timeout=10_000)
    assert window.gallery_toggle.shortcut().toString() == "Ctrl+Shift+G"
