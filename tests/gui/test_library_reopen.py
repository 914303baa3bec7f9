"""Going back to a workflow opened a moment ago (LibraryModel with its OpenedCache): it is shown at once,
without reading the file again, and whatever changed since (the file on disk, the server's catalog) is
still what the user ends up seeing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from pytestqt.qtbot import QtBot

from comfydesk.app.library import CurrentWorkflow, LibraryModel
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.core.nodes import NodeCatalog
from tests.conftest import FIXTURES
from tests.gui.conftest import qloop  # noqa: F401 - fixture

UI = FIXTURES / "workflows" / "ui"
A, B = "local:default.json", "local:flux_schnell.json"


@pytest.fixture
def library(
    qtbot: QtBot,
    qloop: qasync.QEventLoop,  # noqa: F811
    tmp_path: Path,
    catalog: NodeCatalog,
) -> Iterator[tuple[LibraryModel, list[object], TaskRunner]]:
    folder = tmp_path / "workflows"
    folder.mkdir()
    for name in ("default.json", "flux_schnell.json"):
        shutil.copyfile(UI / name, folder / name)
    errors = ErrorModel()
    tasks = TaskRunner(errors)
    model = LibraryModel(tasks, folder)
    changes: list[object] = []
    model.current_changed.connect(changes.append)
    model.set_catalog(catalog)
    qtbot.waitUntil(lambda: model.entry(A) is not None and model.entry(B) is not None, timeout=10_000)
    yield model, changes, tasks
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=10_000)
    assert errors.history == [], [e.text for e in errors.history]


def _open(qtbot: QtBot, model: LibraryModel, key: str) -> CurrentWorkflow:
    model.select(key)
    qtbot.waitUntil(lambda: isinstance(c := model.current, CurrentWorkflow) and c.key == key, timeout=10_000)
    current = model.current
    assert isinstance(current, CurrentWorkflow) and current.spec is not None
    return current


def _seed(current: CurrentWorkflow) -> object:
    return next(n.inputs["seed"] for n in current.workflow.graph.values() if n.class_type == "KSampler")  # type: ignore[union-attr]


def test_going_back_shows_the_workflow_at_once_and_the_same(
    qtbot: QtBot, library: tuple[LibraryModel, list[object], TaskRunner]
) -> None:
    model, changes, tasks = library
    first = _open(qtbot, model, A)
    _open(qtbot, model, B)
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=10_000)
    before = len(changes)
    model.select(A)
    # Shown within select() itself, before any work in the background: the very object opened before.
    assert model.current is first and changes[before:] == [first]
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=10_000)
    assert changes[before:] == [first]  # the check found the file unchanged: nothing shown twice


def test_a_file_changed_since_is_shown_as_it_is_now(
    qtbot: QtBot, library: tuple[LibraryModel, list[object], TaskRunner], tmp_path: Path
) -> None:
    model, _changes, tasks = library
    first = _open(qtbot, model, A)
    _open(qtbot, model, B)
    path = tmp_path / "workflows" / "default.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    for node in doc["nodes"]:
        if node["type"] == "KSampler":
            node["widgets_values"][0] = 424242
    st = path.stat()
    path.write_text(json.dumps(doc), encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    model.select(A)
    qtbot.waitUntil(
        lambda: isinstance(c := model.current, CurrentWorkflow) and c is not first and _seed(c) == 424242,
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=10_000)


def test_a_new_catalog_opens_the_workflow_again(
    qtbot: QtBot,
    library: tuple[LibraryModel, list[object], TaskRunner],
    catalog: NodeCatalog,
) -> None:
    model, _changes, tasks = library
    first = _open(qtbot, model, A)
    _open(qtbot, model, B)
    other = NodeCatalog(catalog[k] for k in catalog)  # the same server read again: another catalog
    model.set_catalog(other)
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=10_000)
    again = _open(qtbot, model, A)
    assert again is not first and again.spec is not None
