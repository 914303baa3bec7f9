"""FormView built from a real workflow and the real node catalog."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QPlainTextEdit, QSpinBox
from pytestqt.qtbot import QtBot

from comfydesk.app.run_state import PastedImage
from comfydesk.core.errors import ValidationIssue
from comfydesk.core.messages import CATALOGUE
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FieldKind, FormSpec, SeedControl, build_form
from comfydesk.core.workflow import load_workflow, load_workflow_file
from comfydesk.ui.form import FormView
from comfydesk.ui.form.editors import NOT_ON_SERVER, ChoiceEditor, SeedEditor
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.theme import error_color

SEED_MAX = 2**64 - 1


@pytest.fixture
def tiny_spec(catalog: NodeCatalog, fixtures_dir: Path) -> FormSpec:
    """The captured txt2img workflow, as the server's own catalog types it."""
    return build_form(load_workflow_file(fixtures_dir / "workflows/api/txt2img_tiny_sd15.json"), catalog)


@pytest.fixture
def rich_spec(catalog: NodeCatalog, fixtures_dir: Path) -> FormSpec:
    """txt2img plus a {prompt} placeholder, a LoadImage and a boolean input: every field kind."""
    import json

    doc: dict[str, Any] = json.loads((fixtures_dir / "workflows/api/txt2img_tiny_sd15.json").read_text())
    doc["6"]["inputs"]["text"] = "{prompt}"
    doc["10"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    doc["11"] = {
        "class_type": "ModelSamplingDiscrete",
        "inputs": {"model": ["4", 0], "sampling": "eps", "zsnr": False},
    }
    return build_form(load_workflow(doc, name="Blog Post Image"), catalog)


@pytest.fixture
def form(qtbot: QtBot, rich_spec: FormSpec) -> FormView:
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(rich_spec, {"prompt": "A beautiful landscape at dawn"})
    view.resize(520, 900)
    view.show()
    return view


def png_file(tmp_path: Path, name: str = "cat.png") -> Path:
    path = tmp_path / name
    Image.new("RGB", (300, 200), (30, 140, 220)).save(path)
    return path


def test_every_kind_gets_its_widget(form: FormView, rich_spec: FormSpec) -> None:
    kinds = {f.kind for f in rich_spec.fields()}
    assert kinds == set(FieldKind)
    width = form.rows["5.width"].editor.focus_widget()
    assert isinstance(width, QSpinBox)
    assert (width.minimum(), width.maximum(), width.singleStep()) == (16, 16384, 8)
    cfg = form.rows["3.cfg"].editor.focus_widget()
    assert isinstance(cfg, QDoubleSpinBox)
    assert (cfg.minimum(), cfg.maximum(), cfg.singleStep(), cfg.decimals()) == (0.0, 100.0, 0.1, 2)
    sampler = form.rows["3.sampler_name"].editor.focus_widget()
    assert isinstance(sampler, QComboBox) and sampler.isEditable()
    choices = list(rich_spec.field("3.sampler_name").choices or ())
    assert [sampler.itemText(i) for i in range(sampler.count())] == choices
    completer = sampler.completer()
    assert completer is not None
    assert completer.filterMode() == Qt.MatchFlag.MatchContains
    assert completer.caseSensitivity() == Qt.CaseSensitivity.CaseInsensitive
    prompt = form.rows["prompt"].editor.focus_widget()
    assert isinstance(prompt, QPlainTextEdit)
    assert prompt.height() >= prompt.fontMetrics().lineSpacing() * 4
    assert isinstance(form.rows["11.zsnr"].editor.focus_widget(), QCheckBox)
    assert isinstance(form.rows["10.image"].editor, ImageEditor)
    seed = form.rows["3.seed"].editor
    assert isinstance(seed, SeedEditor)
    assert seed.control() is SeedControl.RANDOMIZE
    assert not seed.reuse.isEnabled()


def test_layout_prompt_first_groups_per_node(form: FormView) -> None:
    keys = list(form.groups)
    assert keys[0] == "__prompt__"
    assert form.groups["__prompt__"].header is None
    # The loader's one checkpoint and the file name prefix are graph plumbing: they sit in "Advanced",
    # which starts collapsed (issue 11); titles are names a person would say, never ids.
    assert keys[1:] == ["7", "5", "3", "10", "11", "__advanced__"]
    header = form.groups["3"].header
    assert header is not None and header.text() == "Sampler"
    assert "#3" in header.toolTip()
    advanced = form.groups["__advanced__"]
    assert advanced.collapsed and [r.key for r in advanced.rows] == ["4.ckpt_name", "9.filename_prefix"]


def test_seed_holds_the_full_64_bit_range(qtbot: QtBot, form: FormView) -> None:
    seed = form.rows["3.seed"].editor
    assert isinstance(seed, SeedEditor)
    seed.edit.setFocus()
    seed.edit.selectAll()
    seen: list[dict[str, Any]] = []
    form.values_changed.connect(seen.append)
    qtbot.keyClicks(seed.edit, str(SEED_MAX))
    assert seen[-1]["3.seed"] == SEED_MAX
    assert form.values()["3.seed"] == SEED_MAX
    assert type(form.values()["3.seed"]) is int
    assert "3.seed" not in form.issues()
    qtbot.keyClick(seed.edit, Qt.Key.Key_Up)  # at the top of the range: stays
    assert form.values()["3.seed"] == SEED_MAX
    qtbot.keyClick(seed.edit, Qt.Key.Key_Down)
    assert form.values()["3.seed"] == SEED_MAX - 1


def test_editing_emits_typed_values(qtbot: QtBot, form: FormView) -> None:
    seen: list[dict[str, Any]] = []
    form.values_changed.connect(seen.append)
    steps = form.rows["3.steps"].editor.focus_widget()
    assert isinstance(steps, QSpinBox)
    steps.setValue(25)
    cfg = form.rows["3.cfg"].editor.focus_widget()
    assert isinstance(cfg, QDoubleSpinBox)
    cfg.setValue(6.5)
    zsnr = form.rows["11.zsnr"].editor.focus_widget()
    assert isinstance(zsnr, QCheckBox)
    qtbot.mouseClick(zsnr, Qt.MouseButton.LeftButton)
    sampler = form.rows["3.sampler_name"].editor.focus_widget()
    assert isinstance(sampler, QComboBox)
    sampler.setCurrentIndex(sampler.findText("dpmpp_2m"))
    prompt = form.rows["prompt"].editor.focus_widget()
    assert isinstance(prompt, QPlainTextEdit)
    prompt.setFocus()
    qtbot.keyClick(prompt, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(prompt, ", misty")
    values = seen[-1]
    assert values["3.steps"] == 25 and type(values["3.steps"]) is int
    assert values["3.cfg"] == 6.5 and type(values["3.cfg"]) is float
    assert values["11.zsnr"] is True
    assert values["3.sampler_name"] == "dpmpp_2m"
    assert values["prompt"].endswith(", misty")
    assert form.values() == values


def test_choice_only_accepts_list_values(qtbot: QtBot, form: FormView) -> None:
    sampler = form.rows["3.sampler_name"].editor.focus_widget()
    assert isinstance(sampler, QComboBox)
    line = sampler.lineEdit()
    assert line is not None
    line.setFocus()
    line.selectAll()
    qtbot.keyClicks(line, "no such sampler")
    qtbot.keyClick(line, Qt.Key.Key_Return)
    assert form.values()["3.sampler_name"] == "euler"
    assert sampler.currentText() == "euler"


def test_reset_field_and_reset_all(qtbot: QtBot, form: FormView) -> None:
    steps = form.rows["3.steps"].editor.focus_widget()
    assert isinstance(steps, QSpinBox)
    steps.setValue(40)
    assert form.values()["3.steps"] == 40
    assert "Default: 3" in steps.toolTip()
    qtbot.mouseClick(form.rows["3.steps"].reset, Qt.MouseButton.LeftButton)
    assert form.values()["3.steps"] == 3 and steps.value() == 3
    steps.setValue(41)
    form.set_value("prompt", "something else")
    with qtbot.waitSignal(form.values_changed):
        form.reset_to_defaults()
    assert form.values()["3.steps"] == 3
    assert form.values()["prompt"] == ""


def test_pin_and_hide_prefs(qtbot: QtBot, form: FormView) -> None:
    with qtbot.waitSignal(form.prefs_changed) as blocker:
        form.set_pinned("3.steps", True)
    assert blocker.args == [{"pinned": ["3.steps"], "hidden": [], "collapsed": []}]
    assert list(form.groups)[1] == "__pinned__"
    assert [r.key for r in form.groups["__pinned__"].rows] == ["3.steps"]
    assert "3.steps" not in [r.key for r in form.groups["3"].rows]

    with qtbot.waitSignal(form.prefs_changed) as blocker:
        form.set_hidden("9.filename_prefix", True)
    assert blocker.args is not None and blocker.args[0]["hidden"] == ["9.filename_prefix"]
    assert "9.filename_prefix" not in form.rows
    assert "9" not in form.groups  # its only field is hidden
    assert form.values()["9.filename_prefix"] == "fixture_txt2img"  # hidden, still submitted
    assert form.show_hidden_box.isVisibleTo(form)
    form.show_hidden_box.setChecked(True)
    assert "9.filename_prefix" in form.rows

    header = form.groups["5"].header
    assert header is not None
    with qtbot.waitSignal(form.prefs_changed) as blocker:
        qtbot.mouseClick(header, Qt.MouseButton.LeftButton)
    assert blocker.args is not None and blocker.args[0]["collapsed"] == ["5"]
    assert not form.groups["5"].body.isVisibleTo(form)


def test_set_spec_restores_prefs(qtbot: QtBot, rich_spec: FormSpec) -> None:
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(rich_spec, pinned=["3.seed"], hidden=["4.ckpt_name"], collapsed=["5"])
    assert [r.key for r in view.groups["__pinned__"].rows] == ["3.seed"]
    assert "4.ckpt_name" not in view.rows
    assert view.groups["5"].collapsed


def test_issues_land_on_their_field_and_links_focus_it(qtbot: QtBot, form: FormView) -> None:
    form.groups["3"].set_collapsed(True)
    issue = ValidationIssue(
        node_id="3",
        input_name="cfg",
        field_key=None,  # placed by node and input, as a server's node_errors give them
        message="CFG must be at most 100.0, got 120.",
    )
    other = ValidationIssue(
        node_id="4", input_name="ckpt_name", field_key="4.ckpt_name", message="Not on the server"
    )
    form.show_issues([issue, other])
    row = form.rows["3.cfg"]
    assert row.error.text() == "CFG must be at most 100.0, got 120."
    assert not row.error.isHidden()
    assert row.frame.border == error_color(form.palette())  # a border in the error colour, painted
    # Both fields are out of sight (a closed group, "Advanced"): the box at the top names them as links,
    # in one line, without saying their messages again.
    box = form.error_box
    assert box.isVisibleTo(form)
    assert box.text().startswith("2 fields need a look: ")
    assert 'href="field:3.cfg"' in box.text() and 'href="field:4.ckpt_name"' in box.text()
    assert "at most" not in box.text() and "Not on the server" not in box.text()

    form.activateWindow()
    box.linkActivated.emit("field:3.cfg")
    assert not form.groups["3"].collapsed  # expanded to show the field
    target = row.editor.focus_widget()
    qtbot.waitUntil(target.hasFocus)
    form.groups["__advanced__"].set_collapsed(False)
    assert not box.isVisibleTo(form)  # every problem is in sight now: each field says its own

    form.clear_issues()
    assert row.error.isHidden()
    assert not box.isVisibleTo(form)


def test_a_problem_no_field_takes_is_in_the_box_in_plain_words(qtbot: QtBot, form: FormView) -> None:
    on_field = ValidationIssue(
        node_id="3", input_name="cfg", field_key="3.cfg", message="CFG must be at most 100.0, got 120."
    )
    loose = ValidationIssue(node_id="", message="prompt has no output node", kind="prompt_no_outputs")
    form.show_issues([on_field, loose])
    assert form.error_box.isVisibleTo(form)
    assert form.error_box.text() == CATALOGUE["prompt_no_outputs"]
    assert form.rows["3.cfg"].messages == ["CFG must be at most 100.0, got 120."]


def test_validation_as_you_type(qtbot: QtBot, form: FormView) -> None:
    seed = form.rows["3.seed"].editor
    assert isinstance(seed, SeedEditor)
    seed.edit.setFocus()
    seed.edit.selectAll()
    qtbot.keyClicks(seed.edit, str(SEED_MAX + 1))  # one too many
    row = form.rows["3.seed"]
    assert not row.error.isHidden()
    # In the catalogue's words (not the check's own "Seed must be at most …"), and only on the field.
    assert row.error.text() == CATALOGUE["value_bigger_than_max"].format(limit=SEED_MAX)
    assert not form.error_box.isVisibleTo(form)
    qtbot.keyClick(seed.edit, Qt.Key.Key_Backspace)  # ...616 -> ...61
    qtbot.keyClicks(seed.edit, "5")  # ...615, the largest 64-bit seed
    assert form.values()["3.seed"] == SEED_MAX
    assert row.error.isHidden()
    assert not form.error_box.isVisibleTo(form)


def test_a_choice_checked_after_an_edit_speaks_plainly(qtbot: QtBot, form: FormView) -> None:
    editor = form.rows["10.image"].editor
    assert isinstance(editor, ImageEditor)
    editor.set_value("missing_photo.png")  # as a stale value, then the user confirms it
    editor.edited.emit()
    assert form.issues()["10.image"] == [CATALOGUE["missing_image"].format(name="missing_photo.png")]
    assert "listed options" not in form.rows["10.image"].error.text()
    assert editor.thumb.text() == "Not on\nthe server"  # no preview to wait for


def _with_models(object_info: dict[str, Any], fixtures_dir: Path, models: list[str]) -> FormSpec:
    """The rich form against a server whose checkpoints folder holds `models`."""
    import copy
    import json

    from comfydesk.core.nodes import parse_object_info

    info = copy.deepcopy(object_info)
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = models
    catalog = parse_object_info(info)
    doc: dict[str, Any] = json.loads((fixtures_dir / "workflows/api/txt2img_tiny_sd15.json").read_text())
    doc["6"]["inputs"]["text"] = "{prompt}"
    doc["10"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    doc["11"] = {
        "class_type": "ModelSamplingDiscrete",
        "inputs": {"model": ["4", 0], "sampling": "eps", "zsnr": False},
    }
    return build_form(load_workflow(doc, name="Blog Post Image"), catalog)


def test_fresh_model_lists_update_the_combos_in_place(
    qtbot: QtBot, form: FormView, object_info: dict[str, Any], fixtures_dir: Path
) -> None:
    tiny = "tiny-random-sd15.safetensors"
    editor = form.rows["4.ckpt_name"].editor
    steps = form.rows["3.steps"].editor
    form.set_value("3.steps", 31)
    assert isinstance(editor, ChoiceEditor) and editor.choices == [tiny]

    # A new model on the server: the same widgets, the new list, the value kept.
    form.set_spec(_with_models(object_info, fixtures_dir, [tiny, "new.safetensors"]))
    assert form.rows["4.ckpt_name"].editor is editor and form.rows["3.steps"].editor is steps
    assert editor.choices == [tiny, "new.safetensors"] and editor.value() == tiny
    assert form.values()["3.steps"] == 31 and form.issues() == {}

    # The chosen model is gone: still chosen, marked, and its field says so in the catalogue's words.
    form.set_spec(_with_models(object_info, fixtures_dir, ["other.safetensors"]))
    assert form.rows["4.ckpt_name"].editor is editor
    assert editor.value() == tiny
    assert [editor.combo.itemText(i) for i in range(editor.combo.count())] == ["other.safetensors", tiny]
    assert editor.combo.itemData(editor.combo.currentIndex(), Qt.ItemDataRole.ToolTipRole) == NOT_ON_SERVER
    assert form.issues() == {"4.ckpt_name": [CATALOGUE["missing_model"].format(name=tiny)]}

    # Back on the server: the mark goes.
    form.set_spec(_with_models(object_info, fixtures_dir, [tiny]))
    assert editor.choices == [tiny] and editor.value() == tiny and form.issues() == {}


@pytest.mark.parametrize(
    ("mode", "start", "expected"),
    [
        (SeedControl.FIXED, 42, 42),
        (SeedControl.INCREMENT, 42, 43),
        (SeedControl.DECREMENT, 42, 41),
        (SeedControl.INCREMENT, SEED_MAX, 0),
        (SeedControl.DECREMENT, 0, SEED_MAX),
    ],
)
def test_apply_seed_controls(form: FormView, mode: SeedControl, start: int, expected: int) -> None:
    form.set_value("3.seed", start)
    form.set_seed_control("3.seed", mode)
    values = form.apply_seed_controls()
    assert values["3.seed"] == expected
    assert form.values()["3.seed"] == expected
    seed = form.rows["3.seed"].editor
    assert isinstance(seed, SeedEditor) and seed.edit.text() == str(expected)


def test_apply_seed_controls_randomize(form: FormView) -> None:
    form.set_seed_control("3.seed", SeedControl.RANDOMIZE)
    values = form.apply_seed_controls(rng=random.Random(7))
    assert values["3.seed"] == random.Random(7).randint(0, SEED_MAX)


def test_reuse_last_seed(qtbot: QtBot, form: FormView) -> None:
    seed = form.rows["3.seed"].editor
    assert isinstance(seed, SeedEditor)
    form.set_last_seed("3.seed", 123456789012345678)
    assert seed.reuse.isEnabled()
    with qtbot.waitSignal(form.reuse_seed_requested) as blocker:
        qtbot.mouseClick(seed.reuse, Qt.MouseButton.LeftButton)
    assert blocker.args == ["3.seed"]
    assert form.values()["3.seed"] == 123456789012345678
    qtbot.mouseClick(seed.dice, Qt.MouseButton.LeftButton)
    assert 0 <= form.values()["3.seed"] <= SEED_MAX


def test_accessible_names_and_tab_order(form: FormView) -> None:
    for key, row in form.rows.items():
        assert row.editor.focus_widget().accessibleName() == row.field.label, key
        for widget in row.editor.focus_chain():
            assert widget.accessibleName(), (key, widget)
    order = [w for r in form.rows.values() for w in r.editor.focus_chain()]
    first = order[0]
    walked = [first]
    widget = first.nextInFocusChain()
    while widget is not first and len(walked) < 500:
        if widget in order:
            walked.append(widget)
        widget = widget.nextInFocusChain()
    assert walked == order


def test_image_field_local_file_and_paste(qtbot: QtBot, form: FormView, tmp_path: Path) -> None:
    editor = form.rows["10.image"].editor
    assert isinstance(editor, ImageEditor)
    assert form.values()["10.image"] == "example.png"
    assert "example.png" in editor.source_label.text()

    path = png_file(tmp_path)
    ImageEditor.native_dialogs = False
    try:
        qtbot.mouseClick(editor.browse, Qt.MouseButton.LeftButton)
        dialog = editor.dialog
        assert dialog is not None and dialog.isVisible()
        with qtbot.waitSignal(form.values_changed):
            dialog.fileSelected.emit(str(path))
            dialog.reject()
    finally:
        ImageEditor.native_dialogs = True
    assert form.values()["10.image"] == path
    qtbot.waitUntil(lambda: not editor.thumb.pixmap().isNull())
    assert max(editor.thumb.pixmap().width(), editor.thumb.pixmap().height()) == 96  # THUMB (was 72)
    assert "10.image" not in form.issues()  # a local file is uploaded by the caller, not an error

    clipboard = QGuiApplication.clipboard()
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (250, 200, 0)).save(buf, "PNG")
    mime = QMimeData()
    mime.setData("image/png", buf.getvalue())
    clipboard.setMimeData(mime)
    with qtbot.waitSignal(form.values_changed):
        editor.paste()
    value = form.values()["10.image"]
    assert isinstance(value, PastedImage) and value.data == buf.getvalue()

    # Dropping (or pasting) a file URL gives a Path.
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    clipboard.setMimeData(mime)
    editor.paste()
    assert form.values()["10.image"] == path


def test_highlight_node(form: FormView) -> None:
    form.highlight_node("3")
    assert form.groups["3"].property("active") is True
    assert form.groups["5"].property("active") is False
    form.highlight_node(None)
    assert form.groups["3"].property("active") is False


def test_tiny_workflow_form_and_screenshot(
    qtbot: QtBot, tiny_spec: FormSpec, rich_spec: FormSpec, artifacts_dir: Path, qapp: QApplication
) -> None:
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(tiny_spec)
    assert view.values() == tiny_spec.defaults()
    assert view.values()["3.seed"] == 42
    view.set_spec(rich_spec, {"prompt": "A beautiful landscape at dawn, mountains, mist"}, pinned=["3.steps"])
    view.resize(540, 1320)
    view.show()
    qtbot.waitExposed(view)
    view.grab().save(str(artifacts_dir / "form.png"))
    issue = ValidationIssue(node_id="3", input_name="cfg", field_key="3.cfg", message="CFG must be <= 100.")
    view.show_issues([issue])
    view.highlight_node("3")
    qapp.processEvents()  # let the layout take the summary box in before grabbing
    qtbot.waitUntil(lambda: view.widget().width() == view.viewport().width())
    view.grab().save(str(artifacts_dir / "form_issues.png"))
    assert (artifacts_dir / "form.png").stat().st_size > 0
