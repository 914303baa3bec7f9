"""Workflows with missing pieces, in the window, against the fake ComfyUI serving the captured catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QComboBox, QLabel
from pytestqt.qtbot import QtBot

from comfydesk.core.messages import CATALOGUE
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.ui.form.editors import NOT_ON_SERVER, ChoiceEditor
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.template_browser import template_key
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

TINY = "tiny-random-sd15.safetensors"
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
SD15_URL = (
    "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
    "v1-5-pruned-emaonly-fp16.safetensors?download=true"
)


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RunningFake]:
    # A copy of its own: the test changes the model lists (`set_model_files`).
    object_info: dict[str, Any] = json.loads((FIXTURES / "object_info.json").read_text(encoding="utf-8"))
    running = start_fake_comfyui(
        FakeConfig(object_info=object_info, captures_dir=FIXTURES, data_dir=tmp_path / "fake")
    )
    yield running
    running.stop()


def _window(qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, data_dir: Path) -> MainWindow:
    window = open_window(server=fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    return window


def _texts(window: MainWindow, name: str) -> list[str]:
    from PySide6.QtWidgets import QLabel

    return [w.text() for w in window.missing_panel.findChildren(QLabel, name) if w.isVisibleTo(window)]


def _with_unknown_node(data_dir: Path) -> str:
    """ComfyUI's `default` template plus a custom node of a pack this server lacks."""
    doc: dict[str, Any] = json.loads((FIXTURES / "workflows" / "ui" / "default.json").read_text("utf-8"))
    doc["nodes"].append(
        {
            "id": 30,
            "type": "DWPreprocessor",
            "pos": [0, 0],
            "size": [300, 200],
            "flags": {},
            "order": 9,
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {"cnr_id": "comfyui_controlnet_aux", "Node name for S&R": "DWPreprocessor"},
            "widgets_values": ["enable", "enable", "disable", 512, "yolox_l.onnx"],
        }
    )
    return write_workflow(data_dir, "Pose from a photo", doc)


def test_template_with_absent_models(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    window = _window(qtbot, open_window, fake, tmp_path / "data")
    pick(qtbot, window, template_key("sdxl_simple_example"))
    panel = window.missing_panel
    qtbot.waitUntil(panel.isVisible, timeout=5_000)
    assert "This workflow needs things this server doesn't have" in _texts(window, "missingTitle")[0]
    assert not window.form_message.isVisible()  # the panel says it, once
    names = _texts(window, "missingModelName")
    assert names == ["• sd_xl_base_1.0.safetensors", "• sd_xl_refiner_1.0.safetensors"]
    assert _texts(window, "missingModelFolder") == ["goes in models/checkpoints"] * 2
    # Copy link puts the download URL from the file on the clipboard.
    button = panel.copy_buttons["sd_xl_refiner_1.0.safetensors"]
    assert button.isEnabled()
    with qtbot.waitSignal(panel.link_copied) as copied:
        button.click()
    url = QGuiApplication.clipboard().text()
    assert copied.args == [url]
    assert url.startswith("https://huggingface.co/stabilityai/stable-diffusion-xl-refiner-1.0/")
    assert button.text() == "Copied"
    # Run waits for the models; the reason is next to it; the fields say what is wrong.
    assert not window.run_button.isEnabled() and not window.run_action.isEnabled()
    assert window.run_reason.isVisible()
    assert window.run_reason.text() == "Can't run: 2 models are missing."
    # The panel is the one place that says what each model is and where it goes; its field has a short mark.
    issues = window.form.issues()
    assert issues["4.ckpt_name"] == issues["12.ckpt_name"] == [CATALOGUE["missing_model_marker"]]
    assert not any("sd_xl" in m for messages in issues.values() for m in messages)
    # Both fields sit in the closed "Advanced" group: the box at the top names them as links, no sentence.
    box = window.form.error_box
    assert box.isVisible() and box.text().startswith("2 fields need a look: ")
    assert 'href="field:4.ckpt_name"' in box.text() and 'href="field:12.ckpt_name"' in box.text()
    assert CATALOGUE["missing_model_marker"] not in box.text() and "sd_xl" not in box.text()
    # The field still offers the server's model; "Choose another" brings it into view.
    combo = window.form.rows["4.ckpt_name"].editor.findChild(QComboBox)
    assert combo is not None
    assert [combo.itemText(i) for i in range(combo.count())] == [TINY, "sd_xl_base_1.0.safetensors"]
    assert window.grab().save(str(artifacts_dir / "missing-pieces-template.png"))
    panel.choose_buttons["sd_xl_base_1.0.safetensors"].click()
    qtbot.waitUntil(lambda: combo.hasFocus() or combo.isAncestorOf(QApplication.focusWidget()), timeout=3_000)


def test_unknown_node_form_greyed_and_run_disabled(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path, docs_shots: Path
) -> None:
    data_dir = tmp_path / "data"
    key = _with_unknown_node(data_dir)
    window = _window(qtbot, open_window, fake, data_dir)
    window.resize(1440, 900)
    pick(qtbot, window, key)
    cur = window._current
    assert cur is not None and cur.spec is not None and not cur.error
    # The form is there: the known nodes' fields work, the custom node's are greyed with the pack named.
    assert window.form.rows["3.steps"].editor.isEnabled()
    row = window.form.rows["30.value 1"]
    assert not row.editor.isEnabled() and not row.label.isEnabled()
    assert "comfyui_controlnet_aux" in row.editor.toolTip()
    assert _texts(window, "missingPack") == ["• <b>comfyui_controlnet_aux</b>: DWPreprocessor"]
    assert not window.run_button.isEnabled()
    assert window.run_reason.text() == "Can't run: 1 custom node and 1 model are missing."
    # Greyed stays greyed when the form is rebuilt (a field pinned).
    window.form.set_pinned("3.steps", True)
    assert not window.form.rows["30.value 1"].editor.isEnabled()

    window.form.ensureWidgetVisible(window.form.rows["30.value 1"].frame)
    qtbot.waitUntil(lambda: window.missing_panel.isVisible(), timeout=3_000)

    def laid_out() -> bool:  # every row at its full height: the rebuilt form's layout has settled
        rows = window.form.rows.values()
        return all(r.frame.height() >= r.frame.minimumSizeHint().height() for r in rows)

    qtbot.waitUntil(laid_out, timeout=3_000)
    window.form.ensureWidgetVisible(window.form.rows["30.value 1"].frame)  # where it is now laid out
    path = docs_shots / "missing-pieces.png"
    assert window.grab().save(str(path))
    assert path.stat().st_size > 10_000


def test_picking_an_available_model_enables_run(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    window = _window(qtbot, open_window, fake, tmp_path / "data")
    pick(qtbot, window, template_key("default"))
    qtbot.waitUntil(window.missing_panel.isVisible, timeout=5_000)
    assert window.missing_panel.copy_buttons[SD15].toolTip() == SD15_URL
    assert not window.run_button.isEnabled()
    editor = window.form.rows["4.ckpt_name"].editor
    assert isinstance(editor, ChoiceEditor)
    editor.combo.setCurrentIndex(editor.combo.findData(TINY))  # as the user picks it
    qtbot.waitUntil(lambda: window.run_button.isEnabled(), timeout=3_000)
    assert window.missing.pieces is None
    assert not window.missing_panel.isVisible() and not window.run_reason.isVisible()
    assert "4.ckpt_name" not in window.form.issues()
    # Picking the missing one again brings it all back.
    editor.combo.setCurrentIndex(editor.combo.findData(SD15))
    qtbot.waitUntil(lambda: not window.run_button.isEnabled(), timeout=3_000)
    assert window.missing_panel.isVisible()


def test_missing_image_is_flagged_before_the_run(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    prompt = json.loads((FIXTURES / "workflows" / "api" / "load_invert_scale_save.json").read_text("utf-8"))
    prompt["10"]["inputs"]["image"] = "holiday.png"
    key = write_workflow(data_dir, "Invert a photo", prompt)
    window = _window(qtbot, open_window, fake, data_dir)
    pick(qtbot, window, key)
    # Said once, on the field, in the catalogue's words: not in the panel, not in the form's top box.
    qtbot.waitUntil(lambda: "10.image" in window.form.issues(), timeout=5_000)
    sentence = CATALOGUE["missing_image"].format(name="holiday.png")
    assert window.form.issues() == {"10.image": [sentence]}
    assert window.missing.pieces is not None and window.missing.pieces.files  # known to the app…
    assert not window.missing_panel.isVisible()  # …but the panel leaves what a field says
    assert not window.form.error_box.isVisible()
    assert window.run_button.isEnabled()  # a warning: another file can be picked or uploaded
    assert not window.run_reason.isVisible()
    editor = window.form.rows["10.image"].editor
    assert isinstance(editor, ImageEditor)
    assert editor.thumb.text() == "Not on\nthe server"  # no "Loading…" for a file the server lacks
    assert editor.source_label.text() != "On the server: holiday.png"
    editor.combo.setCurrentIndex(editor.combo.findData("example.png"))
    qtbot.waitUntil(lambda: window.missing.pieces is None, timeout=3_000)
    assert "10.image" not in window.form.issues()
    assert editor.thumb.text() != "Not on\nthe server"


def test_model_lists_follow_the_server_on_f5_and_reconnect(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    window = _window(qtbot, open_window, fake, tmp_path / "data")
    pick(qtbot, window, template_key("default"))
    qtbot.waitUntil(window.missing_panel.isVisible, timeout=5_000)

    # The model is put on the server; F5 reads the lists again. The form keeps its widgets (and the user's
    # place and typing): each combo gets the new list in place.
    editor = window.form.rows["4.ckpt_name"].editor
    steps = window.form.rows["3.steps"].editor
    window.form.set_value("3.steps", 33)
    fake.server.set_model_files("checkpoints", [TINY, SD15])
    assert httpx.get(f"{fake.url}/models/checkpoints").json() == [TINY, SD15]
    window.reconnect_action.trigger()
    qtbot.waitUntil(lambda: window.missing.pieces is None and window.run_button.isEnabled(), timeout=10_000)
    assert window.form.rows["4.ckpt_name"].editor is editor and window.form.rows["3.steps"].editor is steps
    assert isinstance(editor, ChoiceEditor)
    assert editor.choices == [TINY, SD15] and editor.value() == SD15
    assert window.form.values()["3.steps"] == 33
    assert not window.missing_panel.isVisible()
    assert "4.ckpt_name" not in window.form.issues()

    # The server restarts without it: once the connection is back the field and the panel follow.
    fake.server.set_model_files("checkpoints", [TINY])
    fake.restart()
    qtbot.waitUntil(lambda: window.missing_panel.isVisible(), timeout=15_000)
    assert window.form.rows["4.ckpt_name"].editor is editor
    assert isinstance(editor, ChoiceEditor) and editor.choices == [TINY]
    assert editor.value() == SD15  # kept, and marked: the field points to the panel, which says the rest
    assert editor.combo.itemData(editor.combo.currentIndex(), Qt.ItemDataRole.ToolTipRole) == NOT_ON_SERVER
    qtbot.waitUntil(
        lambda: window.form.issues().get("4.ckpt_name") == [CATALOGUE["missing_model_marker"]], timeout=3_000
    )
    assert not window.run_button.isEnabled()
    assert window.run_reason.text() == "Can't run: 1 model is missing."


def test_the_panel_of_a_workflow_switched_back_to_is_shown_again_not_rebuilt(qtbot: QtBot) -> None:
    """Going back and forth between workflows shows each one's panel again (the same widgets, its buttons
    still working), for the last KEEP_BODIES panels; older ones are let go."""
    from comfydesk.core.missing import MissingModel, MissingNodes, MissingPieces
    from comfydesk.ui.missing_panel import KEEP_BODIES, MissingPanel

    panel = MissingPanel()
    qtbot.addWidget(panel)
    panel.show()
    fields = {("4", "ckpt_name"): "4.ckpt_name"}
    panel.set_pieces(None, lambda node, name: fields.get((node, name)))

    def pieces(n: int) -> MissingPieces:
        model = MissingModel(
            f"model-{n}.safetensors",
            "checkpoints",
            f"https://example.org/{n}",
            inputs=(("4", "ckpt_name"),),
            choices=("tiny.safetensors",),
        )
        return MissingPieces(nodes=(MissingNodes("some_pack", (f"Node{n}",), ("9",)),), models=(model,))

    panel.set_pieces(pieces(1))
    first, copy_first = panel._body, panel.copy_buttons["model-1.safetensors"]
    panel.set_pieces(pieces(2))
    assert panel._body is not first and not first.isVisible()
    panel.set_pieces(pieces(1))
    assert panel._body is first and first.isVisible() and panel.isVisible()
    assert panel.copy_buttons["model-1.safetensors"] is copy_first
    with qtbot.waitSignal(panel.link_copied) as copied:
        copy_first.click()
    assert copied.args == ["https://example.org/1"]
    with qtbot.waitSignal(panel.field_requested) as wanted:
        panel.choose_buttons["model-1.safetensors"].click()
    assert wanted.args == ["4.ckpt_name"]
    panel.set_pieces(None)
    assert not panel.isVisible()
    for n in range(2, 3 + KEEP_BODIES):  # more panels than are kept: the first one is let go
        panel.set_pieces(pieces(n))
    panel.set_pieces(pieces(1))
    assert panel._body is not first
    assert [t.text() for t in panel._body.findChildren(QLabel) if "model-1" in t.text()]


def test_a_form_switched_back_to_is_greyed_again_as_the_server_still_lacks_its_node(
    qtbot: QtBot, open_window: OpenWindow, fake: RunningFake, tmp_path: Path
) -> None:
    """The form of a workflow gone back to is the one kept aside (pages.py): it comes back with the fields
    of the missing node greyed out, the pack named, and Run disabled, as a form built anew."""
    data_dir = tmp_path / "data"
    key = _with_unknown_node(data_dir)
    doc = json.loads((FIXTURES / "workflows" / "ui" / "flux_schnell.json").read_text("utf-8"))
    other = write_workflow(data_dir, "Flux", doc)
    window = _window(qtbot, open_window, fake, data_dir)
    pick(qtbot, window, key)
    # Back and forth until the workflow's form spec stays the same across a round: right after connecting,
    # the server's lists can still arrive and rightly make a new one (a new form).
    for _round in range(5):
        assert window._current is not None
        spec, row = window._current.spec, window.form.rows["30.value 1"]
        assert not row.editor.isEnabled()
        pick(qtbot, window, other)
        assert window.form.kept_forms() >= 1
        pick(qtbot, window, key)
        if window._current.spec is spec:
            break
    else:
        raise AssertionError("the workflow's form spec never stayed the same across a round")
    assert window.form.rows["30.value 1"] is row  # the same widgets, not built again
    assert not row.editor.isEnabled() and not row.label.isEnabled()
    assert "comfyui_controlnet_aux" in row.editor.toolTip()
    assert window.form.rows["3.steps"].editor.isEnabled()
    assert _texts(window, "missingPack") == ["• <b>comfyui_controlnet_aux</b>: DWPreprocessor"]
    assert not window.run_button.isEnabled()
    assert window.run_reason.text() == "Can't run: 1 custom node and 1 model are missing."
    # A new catalog makes every workflow's spec anew: the kept forms would never come back, so they go.
    assert window.form.kept_forms() >= 1
    window.ctx.catalog.catalog_changed.emit(window.ctx.catalog.catalog)
    assert window.form.kept_forms() == 0
