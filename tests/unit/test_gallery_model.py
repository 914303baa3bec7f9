"""GalleryModel and ThumbnailCache without widgets, against a real journal in tmp_path.

Paging, live insertion at the top (no reset), filters, removal and undo, stars, and hostile files turned into
a broken state with a reason.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")

import pytest
import qasync
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfydesk.app.gallery import (
    GalleryModel,
    GroupRole,
    RecordRole,
    ThumbStateRole,
)
from comfydesk.app.journal import JournalModel
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.app.thumbnails import ThumbnailCache, cache_file, render_thumbnail
from comfydesk.core.errors import UnsafeInputError
from comfydesk.store.journal import Journal, OutputFilter, OutputRecord

T0 = 1_750_000_000.0


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        deadline = loop.time() + 5
        while any(not t.done() for t in pending) and loop.time() < deadline:
            qapp.processEvents()
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        asyncio.events._set_running_loop(None)
        loop.close()
        asyncio.set_event_loop(None)


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    image.putpixel((0, 0), (seed % 256, seed // 256 % 256, 7))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def fill(
    journal: Journal,
    runs: int,
    per_run: int,
    *,
    workflow: str = "Poster",
    server: str = "gpu-box",
    prompt: str = "a red fox",
    start: float = T0,
    data: Any = None,
) -> list[OutputRecord]:
    out: list[OutputRecord] = []
    for r in range(runs):
        run = journal.record_run(
            profile_id="p",
            server=server,
            workflow_name=workflow,
            workflow_id=None,
            api_graph={"1": {"class_type": "X", "inputs": {}}},
            ui_graph=None,
            values={"prompt": f"{prompt} {r}"},
            seed=1000 + r,
        )
        journal.set_status(run.id, "completed")
        for i in range(per_run):
            n = len(out)
            record = journal.add_output(
                run.id,
                node_id="9",
                kind="images",
                data=data if data is not None else png(n + int(start) % 1000),
                source=f"{workflow}-{r}-{i}",
                filename=f"out_{n}.png",
                created_at=start + n,
            )
            assert record is not None
            out.append(record)
    return out


class Gallery:
    def __init__(self, tmp: Path) -> None:
        self.journal = Journal(tmp / "journal.sqlite3", tmp / "blobs")
        self.journal_model = JournalModel(tmp / "journal.sqlite3", tmp / "blobs")
        self.errors = ErrorModel()
        self.tasks = TaskRunner(self.errors)
        self.thumbs = ThumbnailCache(tmp / "thumbs", threads=2)
        self.model = GalleryModel(self.journal_model, self.thumbs, self.tasks, page_size=50)

    def close(self) -> None:
        self.thumbs.close()
        self.journal_model.close(purge=False)
        self.journal.close()


@pytest.fixture
def gallery(tmp_path: Path, qloop: qasync.QEventLoop) -> Iterator[Gallery]:
    g = Gallery(tmp_path)
    try:
        yield g
    finally:
        g.close()


def load(qtbot: QtBot, model: GalleryModel) -> None:
    model.fetchMore(QModelIndex())
    qtbot.waitUntil(lambda: not model.loading, timeout=5000)


def ids(model: GalleryModel) -> list[int]:
    return [r.id for r in model.records()]


def test_pages_newest_first(qtbot: QtBot, gallery: Gallery) -> None:
    records = fill(gallery.journal, 12, 10)
    model = gallery.model
    assert model.canFetchMore(QModelIndex()) and model.rowCount() == 0
    load(qtbot, model)
    assert model.rowCount() == 50 and model.total == 120
    assert ids(model) == [r.id for r in reversed(records)][:50]
    while model.canFetchMore(QModelIndex()):
        load(qtbot, model)
    assert ids(model) == [r.id for r in reversed(records)]
    index = model.index(0, 0)
    assert index.data(Qt.ItemDataRole.DisplayRole) == "Poster"
    assert isinstance(index.data(RecordRole), OutputRecord)
    # Grouping: the newest tile of each run carries its header, the other tiles none.
    headers = [model.index(i, 0).data(GroupRole) for i in range(model.rowCount())]
    assert sum(h is not None for h in headers) == 12
    assert headers[0] is not None and "Poster" in headers[0] and "seed 1011" in headers[0]
    assert headers[1] is None


def test_next_page_read_ahead(qtbot: QtBot, gallery: Gallery) -> None:
    fill(gallery.journal, 15, 10)
    model = gallery.model
    load(qtbot, model)
    qtbot.waitUntil(lambda: model._ahead is not None, timeout=5000)
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 100 and not model.loading  # in at once: no round trip to the journal
    # A change meanwhile makes the page read ahead stale: it is asked for again.
    qtbot.waitUntil(lambda: model._ahead is not None, timeout=5000)
    gallery.tasks.start(gallery.journal_model.delete([model.records()[0].id]), what="test")
    qtbot.waitUntil(lambda: model.rowCount() == 99, timeout=5000)
    model.fetchMore(QModelIndex())
    assert model.loading
    qtbot.waitUntil(lambda: not model.loading, timeout=5000)
    assert model.rowCount() == 149 and len(set(ids(model))) == 149


def test_new_outputs_inserted_at_top_without_reset(qtbot: QtBot, gallery: Gallery) -> None:
    fill(gallery.journal, 3, 4)
    model = gallery.model
    load(qtbot, model)
    resets: list[int] = []
    inserted: list[tuple[int, int]] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
    run = gallery.journal.record_run(
        profile_id="p",
        server="gpu-box",
        workflow_name="Later",
        workflow_id=None,
        api_graph={},
        ui_graph=None,
        values={},
        seed=7,
    )

    async def add() -> None:
        for i in range(2):
            await gallery.journal_model.add_output(
                run.id, node_id="9", kind="images", data=png(500 + i), source=f"new{i}", filename="n.png"
            )

    with qtbot.waitSignal(model.rowsInserted, timeout=5000):
        gallery.tasks.start(add(), what="test")
    qtbot.waitUntil(lambda: model.rowCount() == 14, timeout=5000)
    assert not resets and inserted == [(0, 0), (0, 0)]
    assert [r.workflow_name for r in model.records()[:2]] == ["Later", "Later"]
    assert model.total == 14
    assert model.index(0, 0).data(GroupRole) is not None
    assert model.index(1, 0).data(GroupRole) is None  # the two share one run


def test_filters_requery(qtbot: QtBot, gallery: Gallery) -> None:
    fill(gallery.journal, 2, 3, workflow="Poster", prompt="a red fox")
    fill(gallery.journal, 2, 2, workflow="Portrait", server="laptop", prompt="a blue owl", start=T0 + 100)
    model = gallery.model
    load(qtbot, model)
    assert model.rowCount() == 10

    def apply(flt: OutputFilter) -> list[OutputRecord]:
        with qtbot.waitSignal(model.modelReset, timeout=5000):
            model.set_filter(flt)
        qtbot.waitUntil(lambda: not model.loading, timeout=5000)
        return model.records()

    assert {r.workflow_name for r in apply(OutputFilter(workflow="Portrait"))} == {"Portrait"}
    assert model.rowCount() == 4 and model.total == 4
    assert len(apply(OutputFilter(server="gpu-box"))) == 6
    assert {r.workflow_name for r in apply(OutputFilter(text="OWL"))} == {"Portrait"}
    assert len(apply(OutputFilter(since=T0 + 100))) == 4
    assert apply(OutputFilter(status="failed")) == []
    first = apply(OutputFilter())[0]
    gallery.journal.set_starred([first.id], True)
    assert [r.id for r in apply(OutputFilter(starred=True))] == [first.id]


def test_facets(qtbot: QtBot, gallery: Gallery) -> None:
    fill(gallery.journal, 1, 1, workflow="Poster")
    fill(gallery.journal, 1, 1, workflow="Portrait", server="laptop", start=T0 + 10)
    with qtbot.waitSignal(gallery.model.facets_changed, timeout=5000) as blocker:
        gallery.model.load_facets()
    assert blocker.args[0] == {"workflow": ["Portrait", "Poster"], "server": ["gpu-box", "laptop"]}


def test_removed_starred_and_undo(qtbot: QtBot, gallery: Gallery) -> None:
    records = fill(gallery.journal, 2, 3)
    model = gallery.model
    load(qtbot, model)
    jm = gallery.journal_model
    victims = [records[1].id, records[4].id]
    with qtbot.waitSignal(model.rowsRemoved, timeout=5000):
        gallery.tasks.start(jm.delete(victims), what="test")
    qtbot.waitUntil(lambda: model.rowCount() == 4, timeout=5000)
    assert not set(victims) & set(ids(model)) and model.total == 4
    gallery.tasks.start(jm.undo_delete(victims), what="test")
    qtbot.waitUntil(lambda: model.rowCount() == 6, timeout=5000)
    assert ids(model) == [r.id for r in reversed(records)]  # back in their places, not at the top
    changed: list[Any] = []
    model.dataChanged.connect(lambda a, _b, _r: changed.append(a.row()))
    gallery.tasks.start(jm.star([records[5].id], True), what="test")
    qtbot.waitUntil(lambda: model.records()[0].starred, timeout=5000)
    assert 0 in changed


def test_thumbnails_ready_cached_and_broken(qtbot: QtBot, gallery: Gallery, tmp_path: Path) -> None:
    good = fill(gallery.journal, 1, 1, data=png(1, (800, 600)))[0]
    bomb = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(bomb, "PNG")
    truncated = png(2, (300, 300))[:200]
    text_as_png = b"<html>502 Bad Gateway</html>"
    jpeg = io.BytesIO()
    Image.new("RGB", (320, 200), (10, 200, 30)).save(jpeg, "JPEG")
    hostile = [
        fill(gallery.journal, 1, 1, data=d, start=T0 + 10 * (i + 1))[0]
        for i, d in enumerate((bomb.getvalue(), truncated, text_as_png))
    ]
    renamed = fill(gallery.journal, 1, 1, data=jpeg.getvalue(), start=T0 + 50)[0]  # a JPEG named .png
    model = gallery.model
    load(qtbot, model)
    rows = {r.id: i for i, r in enumerate(model.records())}

    def state(record: OutputRecord) -> str:
        return str(model.index(rows[record.id], 0).data(ThumbStateRole))

    assert state(good) == "loading"  # asked: the job starts, nothing blocks
    for record in (good, renamed, *hostile):
        qtbot.waitUntil(lambda r=record: state(r) != "loading", timeout=10_000)
    assert state(good) == "ready" and state(renamed) == "ready"
    pixmap = model.index(rows[good.id], 0).data(Qt.ItemDataRole.DecorationRole)
    assert (pixmap.width(), pixmap.height()) == (256, 192)
    qtbot.waitUntil(lambda: gallery.thumbs.writes_pending == 0, timeout=5000)  # written once idle
    assert cache_file(tmp_path / "thumbs", good.sha256, 256).is_file()
    reasons = [state(r) for r in hostile]
    assert all(r.startswith("broken: ") for r in reasons), reasons
    assert "decompression bomb" in reasons[0]
    assert "truncated" in reasons[1] and reasons[2] == "broken: not an image (unknown format)"
    tip = model.index(rows[hostile[0].id], 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "Cannot show" in tip
    assert not gallery.errors.history  # broken files are tile states, never errors


def test_render_thumbnail_warm_from_disk(tmp_path: Path, qapp: QApplication) -> None:
    source = tmp_path / "a.png"
    source.write_bytes(png(3, (1024, 512)))
    image = render_thumbnail(source, "ab" * 32, tmp_path / "c")
    assert (image.width(), image.height()) == (256, 128)
    source.unlink()  # the disk cache answers now, the source is not read again
    again = render_thumbnail(source, "ab" * 32, tmp_path / "c")
    assert isinstance(again, QImage) and again.size() == image.size()
    with pytest.raises(UnsafeInputError, match="missing"):
        render_thumbnail(source, "cd" * 32, tmp_path / "c")


def test_memory_lru_is_bounded(qtbot: QtBot, tmp_path: Path, qapp: QApplication) -> None:
    cache = ThumbnailCache(tmp_path / "c", memory_bytes=3 * 256 * 256 * 3, threads=1)
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        p.write_bytes(png(i, (512, 512)))
        paths.append(p)
    for i, p in enumerate(paths):
        cache.request(f"{i:064x}", p)
    qtbot.waitUntil(lambda: cache.pending == 0, timeout=10_000)
    ready = [i for i in range(6) if cache.state(f"{i:064x}") == "ready"]
    assert 1 <= len(ready) <= 3
    cache.close()


def test_text_outputs_have_no_picture(qtbot: QtBot, gallery: Gallery) -> None:
    run = gallery.journal.record_run(
        profile_id="p",
        server="s",
        workflow_name="Caption",
        workflow_id=None,
        api_graph={},
        ui_graph=None,
        values={},
        seed=None,
    )
    gallery.journal.add_output(
        run.id, node_id="4", kind="text", data=None, text="a fox", source="t", filename=""
    )
    model = gallery.model
    load(qtbot, model)
    index = model.index(0, 0)
    assert index.data(ThumbStateRole) == "none" and gallery.thumbs.pending == 0
    assert index.data(RecordRole).text == "a fox"
    assert "seed" not in index.data(GroupRole)


def test_tiles_drag_out_as_the_stored_files(qtbot: QtBot, gallery: Gallery) -> None:
    records = fill(gallery.journal, 1, 3)
    model = gallery.model
    load(qtbot, model)
    indexes = [model.index(0, 0), model.index(2, 0)]
    assert all(model.flags(i) & Qt.ItemFlag.ItemIsDragEnabled for i in indexes)
    mime = model.mimeData(indexes)
    files = [Path(u.toLocalFile()) for u in mime.urls()]
    assert files == [records[2].path, records[0].path]
    assert all(f.is_file() for f in files)
    assert model.supportedDragActions() == Qt.DropAction.CopyAction
