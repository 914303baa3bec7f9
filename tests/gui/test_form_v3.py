"""The form of a V3 dynamic combo: switch the option, its sub-fields change, the values kept per option,
and the filled graph passes the fake ComfyUI's validation."""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox
from pytestqt.qtbot import QtBot

from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FormSpec, build_form
from comfydesk.core.workflow import Workflow
from comfydesk.testing.validation import validate_prompt
from comfydesk.ui.form import FormView

PROMPT: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "5": {
        "class_type": "ResizeImageMaskNode",
        "inputs": {
            "resize_type": "scale dimensions",
            "resize_type.width": 640,
            "resize_type.height": 480,
            "resize_type.crop": "center",
            "scale_method": "area",
            "input": ["1", 0],
        },
    },
    "9": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
}


def resize_spec(catalog: NodeCatalog) -> FormSpec:
    return build_form(Workflow(name="resize", graph=ApiGraph.from_prompt(copy.deepcopy(PROMPT))), catalog)


def sub_rows(view: FormView) -> list[str]:
    return [k for k in view.rows if k.startswith("5.resize_type.")]


def test_switching_the_option_changes_the_sub_fields(
    qtbot: QtBot, catalog: NodeCatalog, object_info: dict[str, Any]
) -> None:
    spec = resize_spec(catalog)
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(spec)
    view.show()
    assert sub_rows(view) == ["5.resize_type.width", "5.resize_type.height", "5.resize_type.crop"]

    combo = view.rows["5.resize_type"].editor.focus_widget()
    assert isinstance(combo, QComboBox)
    combo.setCurrentIndex(combo.findText("scale by multiplier"))
    qtbot.waitUntil(lambda: sub_rows(view) == ["5.resize_type.multiplier"])
    spin = view.rows["5.resize_type.multiplier"].editor.focus_widget()
    assert isinstance(spin, QDoubleSpinBox)
    spin.setValue(2.5)
    assert view.values()["5.resize_type.multiplier"] == 2.5

    graph = spec.fill(view.values())
    assert graph["5"].inputs == {
        "resize_type": "scale by multiplier",
        "resize_type.multiplier": 2.5,
        "scale_method": "area",
        "input": ["1", 0],
    }
    assert validate_prompt(graph.to_prompt(), object_info, image_exists=lambda _: True).ok

    # back to the first option: its values were kept
    combo = view.rows["5.resize_type"].editor.focus_widget()
    assert isinstance(combo, QComboBox)
    combo.setCurrentIndex(combo.findText("scale dimensions"))
    qtbot.waitUntil(lambda: "5.resize_type.width" in view.rows)
    assert view.values()["5.resize_type.width"] == 640
    assert spec.fill(view.values())["5"].inputs["resize_type.height"] == 480
