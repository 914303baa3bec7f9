"""Actions on results against a real journal, library and form: delete with undo, star, re-run into the form
(values, seed, seed control fixed), use as input, save as -> open in the library -> same graph and values,
copy, reveal."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication
from pytestqt.qtbot import QtBot

from comfydesk.app.gallery_actions import GalleryActions
from comfydesk.app.journal import JournalModel
from comfydesk.app.library import CurrentWorkflow, LibraryModel
from comfydesk.app.tasks import ErrorModel, TaskRunner
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.pngmeta import read_embedded_workflow
from comfydesk.core.templates import SeedControl
from comfydesk.store.journal import OutputRecord, RunRecord
from comfydesk.ui.form import FormView
from tests.conftest import FIXTURES, load_json

T = TypeVar("T")
TXT2IMG: dict[str, Any] = load_json("workflows/api/txt2img_tiny_sd15.json")
INVERT: dict[str, Any] = load_json("workflows/api/load_invert_scale_save.json")
UI_DEFAULT: dict[str, Any] = load_json("workflows/ui/default.json")
UI_DEFAULT_API: dict[str, Any] = load_json("workflows/ui_reference_api/default.json")


@dataclass
class Env:
    qtbot: QtBot
    tasks: TaskRunner
    errors: ErrorModel
    journal: JournalModel
    library: LibraryModel
    form: FormView
    actions: GalleryActions
    tmp: Path

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(coro)
        self.qtbot.waitUntil(task.done, timeout=10_000)
        return task.result()

    def add_workflow(self, name: str, doc: dict[str, Any]) -> str:
        folder = self.library.library_dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(doc), encoding="utf-8")
        self.library.refresh()
        return f"local:{name}.json"

    def pick(self, key: str) -> CurrentWorkflow:
        self.qtbot.waitUntil(lambda: self.library.entry(key) is not None, timeout=10_000)
        self.library.select(key)
        return self.wait_form(key)

    def wait_form(self, key: str) -> CurrentWorkflow:
        def ready() -> bool:
            cur = self.library.current
            return (
                cur is not None and cur.key == key and cur.spec is not None and self.form.spec() is cur.spec
            )

        self.qtbot.waitUntil(ready, timeout=10_000)
        assert self.library.current is not None
        return self.library.current

    def output(
        self,
        *,
        graph: dict[str, Any],
        values: dict[str, Any],
        name: str = "Cats",
        workflow_id: str | None = None,
        ui: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> tuple[RunRecord, OutputRecord]:
        run = self.run(
            self.journal.record_run(
                profile_id="local",
                server="gpu-box:8188",
                workflow_name=name,
                workflow_id=workflow_id,
                api_graph=graph,
                ui_graph=ui,
                values=values,
                seed=seed,
            )
        )
        data = (FIXTURES / "view/txt2img_tiny_sd15.png").read_bytes()
        record = self.run(
            self.journal.add_output(
                run.id,
                node_id="9",
                kind="images",
                data=data,
                source="output/fixture_txt2img_00001_.png",
                filename="fixture_txt2img_00001_.png",
                width=64,
                height=64,
                mime="image/png",
            )
        )
        assert record is not None
        return run, record


@pytest.fixture
def env(qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path, catalog: NodeCatalog) -> Iterator[Env]:
    errors = ErrorModel()
    tasks = TaskRunner(errors)
    journal = JournalModel(tmp_path / "journal.sqlite", tmp_path / "blobs")
    library = LibraryModel(tasks, tmp_path / "workflows")
    form = FormView()
    qtbot.addWidget(form)

    def shown(current: object) -> None:  # what the main window does with the current workflow
        form.set_spec(current.spec if isinstance(current, CurrentWorkflow) else None)

    library.current_changed.connect(shown)
    library.set_catalog(catalog)
    actions = GalleryActions(tasks, journal, library=library, form=form)
    actions.values_restored.connect(form.values_changed)
    library.current_changed.connect(
        lambda cur: actions.apply_embedded(cur) if isinstance(cur, CurrentWorkflow) else None
    )
    e = Env(qtbot, tasks, errors, journal, library, form, actions, tmp_path)
    yield e
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=10_000)
    journal.close(purge=False)
    assert errors.history == [], [err.text for err in errors.history]


def with_inputs(graph: dict[str, Any], node: str, **inputs: Any) -> dict[str, Any]:
    out = copy.deepcopy(graph)
    out[node]["inputs"].update(inputs)
    return out


def test_delete_with_undo_and_redo(env: Env) -> None:
    _run, record = env.output(graph=TXT2IMG, values={})
    with env.qtbot.waitSignal(env.actions.deleted) as deleted:
        env.actions.delete([record])
    assert deleted.args == [[record.id]]
    assert env.run(env.journal.count()) == 0
    assert env.actions.undo_stack.canUndo()
    with env.qtbot.waitSignal(env.actions.restored):
        env.actions.undo_stack.undo()
    assert [r.id for r in env.run(env.journal.outputs())] == [record.id]
    with env.qtbot.waitSignal(env.actions.deleted):
        env.actions.undo_stack.redo()
    assert env.run(env.journal.count()) == 0


def test_star_toggles(env: Env) -> None:
    _run, record = env.output(graph=TXT2IMG, values={})
    with env.qtbot.waitSignal(env.journal.outputs_changed) as changed:
        env.actions.star([record])
    starred = changed.args[0][0]
    assert starred.starred
    with env.qtbot.waitSignal(env.journal.outputs_changed) as changed:
        env.actions.star([starred])  # all starred: unstar
    assert not changed.args[0][0].starred


def test_rerun_puts_values_and_seed_back_fixed(env: Env) -> None:
    key = env.add_workflow("Cats", TXT2IMG)
    env.pick(key)
    env.form.set_seed_control("3.seed", SeedControl.RANDOMIZE)
    env.form.set_value("3.steps", 12)  # the user moved on since
    sent = with_inputs(TXT2IMG, "3", seed=987654321, steps=7)
    sent = with_inputs(sent, "6", text="a red fox in the snow")
    values = {"3.seed": 987654321, "3.steps": 7, "6.text": "a red fox in the snow", "3.cfg": 7.0}
    _run, record = env.output(graph=sent, values=values, workflow_id=key, seed=987654321)
    remembered: list[dict[str, Any]] = []
    env.form.values_changed.connect(remembered.append)
    env.run(env.actions._rerun(record))
    got = env.form.values()
    assert got["3.seed"] == 987654321
    assert got["3.steps"] == 7
    assert got["6.text"] == "a red fox in the snow"
    assert env.form.seed_controls()["3.seed"] is SeedControl.FIXED
    row = env.form.rows["3.seed"].editor
    assert row.value() == 987654321
    assert remembered and remembered[-1]["3.seed"] == 987654321  # the window remembers the restored values


def test_rerun_of_a_workflow_no_longer_in_the_library(env: Env) -> None:
    sent = with_inputs(TXT2IMG, "3", seed=55, steps=4)
    _run, record = env.output(graph=sent, values={"3.seed": 55, "3.steps": 4}, name="Gone", seed=55)
    env.run(env.actions._rerun(record))
    current = env.wait_form("local:Gone.json")
    assert current.entry.source == "local"
    assert env.form.values()["3.seed"] == 55
    assert env.form.values()["3.steps"] == 4
    assert env.form.seed_controls()["3.seed"] is SeedControl.FIXED


def test_use_as_input(env: Env) -> None:
    key = env.add_workflow("Invert", INVERT)
    env.pick(key)
    _run, record = env.output(graph=TXT2IMG, values={})
    assert env.actions.image_fields() == [("10.image", env.form.spec().field("10.image").label)]  # type: ignore[union-attr]
    with env.qtbot.waitSignal(env.actions.values_restored):
        env.actions.use_as_input(record)
    assert env.form.values()["10.image"] == record.path
    editor = env.form.rows["10.image"].editor
    assert "Local file" in editor.source_label.text()  # type: ignore[attr-defined]


def test_use_as_input_without_an_image_field_says_so(env: Env) -> None:
    key = env.add_workflow("Cats", TXT2IMG)
    env.pick(key)
    _run, record = env.output(graph=TXT2IMG, values={})
    with env.qtbot.waitSignal(env.actions.message_changed) as message:
        env.actions.use_as_input(record)
    assert "no image input" in message.args[0]


def test_save_as_then_open_restores_graph_and_values(env: Env) -> None:
    """The UI graph in the file is the library's (its old widget values); the comfydesk chunk brings the run's
    values back on top when comfydesk opens the file, and ComfyUI reads its graph as it wrote it."""
    sent = with_inputs(UI_DEFAULT_API, "3", seed=4242, steps=9)
    sent = with_inputs(sent, "6", text="a lighthouse at dusk, oil painting")
    values = {"3.seed": 4242, "3.steps": 9, "6.text": "a lighthouse at dusk, oil painting"}
    _run, record = env.output(graph=sent, values=values, ui=UI_DEFAULT, name="Default", seed=4242)
    target = env.tmp / "out" / "lighthouse.png"
    target.parent.mkdir()
    with env.qtbot.waitSignal(env.actions.saved, timeout=10_000):
        env.actions.save_as(record, target)
    embedded = read_embedded_workflow(target.read_bytes())
    assert embedded == {"prompt": sent, "workflow": UI_DEFAULT}
    env.library.add_files([target])
    current = env.wait_form("local:lighthouse.png")
    assert current.workflow is not None and current.workflow.format == "png"
    assert current.embedded_values == values
    env.qtbot.waitUntil(lambda: env.form.values()["3.seed"] == 4242)
    got = env.form.values()
    assert {k: got[k] for k in values} == values
    # Every field of the form holds what the run sent (the file's UI graph still has its old widget values).
    for key, value in got.items():
        node_id, _dot, name = key.partition(".")
        assert sent[node_id]["inputs"][name] == value, key
    assert UI_DEFAULT_API["3"]["inputs"]["seed"] != 4242


def test_save_as_webp_and_text(env: Env) -> None:
    _run, record = env.output(graph=TXT2IMG, values={"3.seed": 42}, seed=42)
    target = env.tmp / "cat.webp"
    with env.qtbot.waitSignal(env.actions.saved):
        env.actions.save_as(record, target)
    assert read_embedded_workflow(target.read_bytes())["prompt"] == TXT2IMG
    text = OutputRecord(
        **{**_fields(record), "kind": "text", "path": None, "text": "a caption", "mime": "text/plain"}
    )
    with env.qtbot.waitSignal(env.actions.saved):
        env.actions.save_as(text, env.tmp / "caption.txt")
    assert (env.tmp / "caption.txt").read_text() == "a caption"


def _fields(record: OutputRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in OutputRecord.__slots__}  # type: ignore[attr-defined]


def test_copy_puts_the_image_and_the_file_on_the_clipboard(env: Env) -> None:
    _run, record = env.output(graph=TXT2IMG, values={})
    QGuiApplication.clipboard().clear()
    with env.qtbot.waitSignal(env.actions.message_changed, timeout=5000):
        env.actions.copy(record)  # decoded off the UI thread, then put on the clipboard
    mime = QGuiApplication.clipboard().mimeData()
    assert mime is not None and mime.hasImage()
    assert [u.toLocalFile() for u in mime.urls()] == [str(record.path)]
    assert QGuiApplication.clipboard().image().width() == 64
    drag = env.actions.mime_data([record])
    assert drag.hasUrls() and not drag.hasImage()


class _Urls(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.opened: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url)


def test_reveal_and_open_external(env: Env) -> None:
    _run, record = env.output(graph=TXT2IMG, values={})
    urls = _Urls()
    QDesktopServices.setUrlHandler("file", urls, "open")
    try:
        env.actions.reveal(record)
        env.actions.open_external(record)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert record.path is not None
    assert [u.toLocalFile() for u in urls.opened] == [str(record.path.parent), str(record.path)]
