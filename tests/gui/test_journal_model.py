"""JournalModel: every journal call runs on its one worker thread, never the UI thread; writes come out as
signals (added, changed, removed, facets) after they are on disk; close purges what was deleted."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PIL import Image
from pytestqt.qtbot import QtBot

from comfydesk.app.journal import JournalModel
from comfydesk.core.pngmeta import embed_workflow_png
from comfydesk.store import journal as store_journal
from comfydesk.store.journal import OutputFilter, OutputRecord

T = TypeVar("T")


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def model(qloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[JournalModel]:
    m = JournalModel(tmp_path / "journal.sqlite3", tmp_path / "blobs")
    yield m
    m.close()


def wait(qtbot: QtBot, coro: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(coro)
    qtbot.waitUntil(task.done, timeout=10_000)
    return task.result()


async def a_run(model: JournalModel, workflow: str = "Portrait") -> int:
    run = await model.record_run(
        profile_id="p",
        server="Studio",
        workflow_name=workflow,
        workflow_id=None,
        api_graph={},
        ui_graph=None,
        values={"prompt": "a fox"},
        seed=3,
    )
    return run.id


def test_every_call_runs_on_the_one_worker_thread(
    qtbot: QtBot, model: JournalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    original = store_journal.Journal._tx

    def spy(self: store_journal.Journal) -> Any:
        threads.add(threading.current_thread().name)
        return original(self)

    monkeypatch.setattr(store_journal.Journal, "_tx", spy)
    run_id = wait(qtbot, a_run(model))
    wait(
        qtbot,
        model.add_output(
            run_id, node_id="9", kind="images", data=png((1, 1, 1)), source="a", filename="a.png"
        ),
    )
    wait(qtbot, model.set_status(run_id, "completed"))
    assert len(threads) == 1 and next(iter(threads)).startswith("journal")
    assert threading.current_thread().name not in threads


def test_writes_come_out_as_signals(qtbot: QtBot, model: JournalModel) -> None:
    added: list[OutputRecord] = []
    changed: list[OutputRecord] = []
    removed: list[int] = []
    facets: list[dict[str, list[str]]] = []
    model.outputs_added.connect(added.extend)
    model.outputs_changed.connect(changed.extend)
    model.outputs_removed.connect(removed.extend)
    model.facets_changed.connect(facets.append)

    run_id = wait(qtbot, a_run(model))
    first = wait(
        qtbot,
        model.add_output(
            run_id, node_id="9", kind="images", data=png((1, 0, 0)), source="a", filename="a.png"
        ),
    )
    assert first is not None and added == [first]
    assert facets == [{"workflow": ["Portrait"], "server": ["Studio"]}]
    assert (
        wait(
            qtbot,
            model.add_output(run_id, node_id="9", kind="images", data=b"x", source="a", filename="a.png"),
        )
        is None
    )
    assert len(added) == 1  # nothing new, nothing said

    wait(qtbot, model.star([first.id], True))
    assert [c.starred for c in changed] == [True]
    assert wait(qtbot, model.count(OutputFilter(starred=True))) == 1

    assert wait(qtbot, model.delete([first.id])) == [first.id]
    assert removed == [first.id] and wait(qtbot, model.count()) == 0
    assert facets[-1] == {"workflow": [], "server": []}
    wait(qtbot, model.undo_delete([first.id]))
    assert [o.id for o in added] == [first.id, first.id]
    assert wait(qtbot, model.outputs()) == [wait(qtbot, model.output(first.id))]
    assert wait(qtbot, model.outputs_of_run(run_id))[0].id == first.id
    run = wait(qtbot, model.run(run_id))
    assert run is not None and run.seed == 3
    assert wait(qtbot, model.facets()) == {"workflow": ["Portrait"], "server": ["Studio"]}


def test_imports_announce_their_outputs(qtbot: QtBot, model: JournalModel, tmp_path: Path) -> None:
    folder = tmp_path / "output"
    folder.mkdir()
    for i in range(3):
        prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": i}}}
        (folder / f"ComfyUI_{i:05d}_.png").write_bytes(embed_workflow_png(png((i, i, i)), prompt=prompt))
    added: list[OutputRecord] = []
    model.outputs_added.connect(added.extend)
    assert wait(qtbot, model.import_folder(folder)) == 3
    assert len(added) == 3 and {o.seed for o in added} == {0, 1, 2}
    assert [o.created_at for o in added] == sorted(o.created_at for o in added)  # newest last


def test_close_purges_deleted_outputs(qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path) -> None:
    model = JournalModel(tmp_path / "j.sqlite3", tmp_path / "blobs")
    run_id = wait(qtbot, a_run(model))
    out = wait(
        qtbot,
        model.add_output(
            run_id, node_id="9", kind="images", data=png((5, 5, 5)), source="a", filename="a.png"
        ),
    )
    assert out is not None and out.path is not None and out.path.is_file()
    wait(qtbot, model.delete([out.id]))
    wait(qtbot, model.aclose())
    assert not out.path.exists()
    with pytest.raises(RuntimeError, match="closed"):
        wait(qtbot, model.count())


def test_a_journal_that_cannot_open_fails_its_calls_not_the_app(
    qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path
) -> None:
    (tmp_path / "j.sqlite3").write_bytes(b"this is not a database" * 100)
    model = JournalModel(tmp_path / "j.sqlite3", tmp_path / "blobs")
    with pytest.raises(RuntimeError, match="not open"):
        wait(qtbot, model.count())
    model.close()
