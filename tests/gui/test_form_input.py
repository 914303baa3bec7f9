"""Form editors as a user meets them: colour inputs, the wheel over a scrolling form, accessible names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication, QColorDialog, QComboBox, QSpinBox, QWidget
from pytestqt.qtbot import QtBot

from comfydesk.core.nodes import NodeCatalog, parse_object_info
from comfydesk.core.templates import FieldKind, FormSpec, build_form
from comfydesk.core.workflow import load_workflow
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.form import FormView
from comfydesk.ui.form.color_field import ColorEditor
from comfydesk.ui.form.editors import IntEditor


@pytest.fixture
def every_kind(catalog: NodeCatalog, fixtures_dir: Path) -> FormSpec:
    """txt2img plus an EmptyImage (colour), a LoadImage, a boolean and a {prompt}: every editor there is."""
    doc: dict[str, Any] = json.loads((fixtures_dir / "workflows/api/txt2img_tiny_sd15.json").read_text())
    doc["6"]["inputs"]["text"] = "{prompt}"
    doc["10"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    doc["11"] = {
        "class_type": "ModelSamplingDiscrete",
        "inputs": {"model": ["4", 0], "sampling": "eps", "zsnr": False},
    }
    doc["12"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 1384541},
    }
    return build_form(load_workflow(doc, name="Everything"), catalog)


def show_form(qtbot: QtBot, spec: FormSpec, width: int = 520, height: int = 900) -> FormView:
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(spec)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    return view


def wheel(widget: QWidget, steps: int = -1) -> None:
    """One notch of the wheel over the middle of `widget`, delivered as Qt delivers it (with propagation)."""
    pos = QPointF(widget.rect().center())
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos)),
        QPoint(),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


# ------------------------------------------------------------------------------------------- colours
def test_colour_inputs_get_a_swatch_and_hex(
    qtbot: QtBot, every_kind: FormSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    field = every_kind.field("12.color")
    assert (field.kind, field.display) == (FieldKind.INT, "color")
    assert every_kind.field("3.steps").display == ""
    view = show_form(qtbot, every_kind)
    editor = view.rows["12.color"].editor
    assert isinstance(editor, ColorEditor)
    assert isinstance(view.rows["3.steps"].editor, IntEditor)
    assert editor.swatch.text() == "#15205D" == editor.hex.text()  # 1384541 == 0x15205D
    icon = editor.swatch.icon().pixmap(editor.swatch.iconSize()).toImage()
    assert icon.pixelColor(icon.width() // 2, icon.height() // 2) == QColor("#15205D")
    assert view.values()["12.color"] == 1384541

    # Typing a hex code sets the int.
    changed: list[dict[str, Any]] = []
    view.values_changed.connect(changed.append)
    editor.hex.setFocus()
    editor.hex.selectAll()
    qtbot.keyClicks(editor.hex, "#ff8800")
    assert view.values()["12.color"] == 0xFF8800
    assert changed and changed[-1]["12.color"] == 0xFF8800
    assert editor.swatch.text() == "#FF8800"
    assert view.issues() == {}

    # The swatch opens a colour dialog; picking a colour sets the value.
    monkeypatch.setattr(ColorEditor, "native_dialog", False)
    qtbot.mouseClick(editor.swatch, Qt.MouseButton.LeftButton)
    dialog = editor.dialog
    assert isinstance(dialog, QColorDialog) and dialog.isVisible()
    assert dialog.testOption(QColorDialog.ColorDialogOption.DontUseNativeDialog)
    assert dialog.currentColor() == QColor("#FF8800")
    dialog.setCurrentColor(QColor("#336699"))
    dialog.accept()
    assert view.values()["12.color"] == 0x336699
    assert (editor.swatch.text(), editor.hex.text()) == ("#336699", "#336699")

    view.reset_field("12.color")
    assert editor.hex.text() == "#15205D"


def test_demo_pattern_colours_use_the_colour_editor(qtbot: QtBot) -> None:
    catalog = parse_object_info(json.loads(demo_object_info_path().read_text()))
    doc = {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": "plasma",
                "seed": 1,
                "width": 64,
                "height": 64,
                "steps": 2,
                "color_a": 1777502,
                "color_b": 16757575,
            },
        }
    }
    view = show_form(qtbot, build_form(load_workflow(doc, name="Pattern"), catalog))
    for key, text in (("1.color_a", "#1B1F5E"), ("1.color_b", "#FFB347")):
        editor = view.rows[key].editor
        assert isinstance(editor, ColorEditor), key
        assert editor.hex.text() == text


# ------------------------------------------------------------------------------------------- wheel
def test_wheel_scrolls_the_form_not_an_unfocused_editor(qtbot: QtBot, every_kind: FormSpec) -> None:
    view = show_form(qtbot, every_kind, width=480, height=260)  # short: the form scrolls
    assert view.verticalScrollBar().maximum() > 0
    steps = view.rows["3.steps"].editor
    assert isinstance(steps, IntEditor) and isinstance(steps.spin, QSpinBox)
    spin = steps.spin
    combo = view.rows["3.sampler_name"].editor.focus_widget()
    assert isinstance(combo, QComboBox)
    for widget in (spin, combo):
        assert widget.focusPolicy() == Qt.FocusPolicy.StrongFocus  # the wheel does not take focus

    view.activateWindow()
    view.rows["12.color"].editor.focus_widget().setFocus()  # the focus is elsewhere
    qtbot.waitUntil(lambda: QApplication.focusWidget() is view.rows["12.color"].editor.focus_widget())
    view.verticalScrollBar().setValue(0)
    before_value, before_index = spin.value(), combo.currentIndex()
    wheel(spin, -1)  # towards the user: scroll down
    assert spin.value() == before_value
    scrolled = view.verticalScrollBar().value()
    assert scrolled > 0  # the form scrolled instead
    wheel(combo, -1)
    assert combo.currentIndex() == before_index
    assert view.verticalScrollBar().value() > scrolled
    assert view.values()["3.steps"] == before_value

    # With focus, the wheel is the user's intent: it steps the value.
    view.activateWindow()
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    wheel(spin, 1)
    assert spin.value() == before_value + 1
    assert view.values()["3.steps"] == before_value + 1


# ------------------------------------------------------------------------------------------- names
def test_every_editor_has_its_label_as_accessible_name(qtbot: QtBot, every_kind: FormSpec) -> None:
    view = show_form(qtbot, every_kind)
    kinds = {row.field.kind for row in view.rows.values()}
    assert kinds == set(FieldKind)  # the walk below covers every editor there is
    assert any(isinstance(row.editor, ColorEditor) for row in view.rows.values())
    for key, row in view.rows.items():
        main = row.editor.focus_widget()
        assert main.accessibleName() == row.field.label != "", key
        for widget in row.editor.focus_chain():
            assert widget.accessibleName().strip(), f"{key}: {type(widget).__name__} has no accessible name"
        assert row.label.buddy() is main, key
