"""The form of a V3 dynamic combo: switch the option, its sub-fields change, the values kept per option,
and the filled graph passes the fake ComfyUI's validation."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PIL import Image
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QSpinBox
from pytestqt.qtbot import QtBot

from comfydesk.backends.base import Execution
from comfydesk.core.graph import ApiGraph
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FormSpec, build_form
from comfydesk.core.workflow import Workflow
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.validation import validate_prompt
from comfydesk.ui.form import FormView
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

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


def pick_option(view: FormView, option: str) -> None:
    combo = view.rows["5.resize_type"].editor.focus_widget()
    assert isinstance(combo, QComboBox)
    combo.setCurrentIndex(combo.findText(option))


def spin_of(view: FormView, key: str) -> QSpinBox:
    spin = view.rows[key].editor.focus_widget()
    assert isinstance(spin, QSpinBox)
    return spin


def test_each_option_keeps_its_own_sub_values(qtbot: QtBot, catalog: NodeCatalog) -> None:
    """ "scale dimensions" and "scale width" both have a `width`: each option keeps its own while the form
    is open (A -> B -> A restores A's values, and B's too)."""
    spec = resize_spec(catalog)
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(spec)
    view.show()
    spin_of(view, "5.resize_type.width").setValue(800)

    pick_option(view, "scale width")
    qtbot.waitUntil(lambda: sub_rows(view) == ["5.resize_type.width"])
    fresh = spec.field("5.resize_type").sub_fields("scale width")[0].value
    assert view.values()["5.resize_type.width"] == fresh != 800  # its own default, not A's 800
    spin_of(view, "5.resize_type.width").setValue(300)
    assert spec.fill(view.values())["5"].inputs["resize_type.width"] == 300

    pick_option(view, "scale dimensions")
    qtbot.waitUntil(lambda: "5.resize_type.crop" in view.rows)
    assert spin_of(view, "5.resize_type.width").value() == 800
    assert (view.values()["5.resize_type.width"], view.values()["5.resize_type.height"]) == (800, 480)
    inputs = spec.fill(view.values())["5"].inputs
    assert (inputs["resize_type.width"], inputs["resize_type.height"]) == (800, 480)

    pick_option(view, "scale width")
    qtbot.waitUntil(lambda: sub_rows(view) == ["5.resize_type.width"])
    assert spin_of(view, "5.resize_type.width").value() == 300
    assert "5.resize_type.height" not in view.values()  # only the chosen option's sub-fields are values


BATCH: dict[str, Any] = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "2": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "3": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
    "4": {
        "class_type": "BatchImagesNode",
        "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0], "images.image2": ["3", 0]},
    },
    **{k: v for k, v in PROMPT.items() if k != "1"},
}
BATCH["5"] = copy.deepcopy(PROMPT["5"])
BATCH["5"]["inputs"]["input"] = ["4", 0]


def test_autogrow_shows_its_connected_slots_and_match_type_its_type(
    qtbot: QtBot, catalog: NodeCatalog
) -> None:
    spec = build_form(Workflow(name="batch", graph=ApiGraph.from_prompt(copy.deepcopy(BATCH))), catalog)
    batch = next(g for g in spec.groups if g.node_id == "4")
    assert batch.fields == () and batch.notes == ("Images: 3 connected (image0, image1, image2)",)
    resize = next(g for g in spec.groups if g.node_id == "5")
    assert resize.notes == ("Input: IMAGE",)  # the type of the output linked to it (BatchImagesNode's)

    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(spec)
    view.show()
    notes = {k: [n.text() for n in g.findChildren(QLabel, "groupNote")] for k, g in view.groups.items()}
    assert notes["4"] == ["Images: 3 connected (image0, image1, image2)"]
    assert notes["5"] == ["Input: IMAGE"]
    assert all(not n.isEnabled() for n in view.groups["4"].findChildren(QLabel, "groupNote"))  # read-only


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def real_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    Image.new("RGB", (32, 24), (200, 40, 40)).save(fake.data_dir / "input" / "example.png")
    yield fake
    fake.stop()


def test_switch_option_then_run_sends_the_option_and_its_sub_inputs(
    qtbot: QtBot, open_window: OpenWindow, real_fake: RunningFake, tmp_path: Path
) -> None:
    data = tmp_path / "app"
    key = write_workflow(data, "Resize", PROMPT)
    window = open_window(server=real_fake.url, data_dir=data)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)

    pick_option(window.form, "scale by multiplier")
    qtbot.waitUntil(lambda: "5.resize_type.multiplier" in window.form.rows)
    multiplier = window.form.rows["5.resize_type.multiplier"].editor.focus_widget()
    assert isinstance(multiplier, QDoubleSpinBox)
    multiplier.setValue(1.5)
    sent: list[Execution] = []
    window.ctx.controller.submitted.connect(sent.append)
    window.run_workflow()
    qtbot.waitUntil(lambda: len(sent) == 1, timeout=20_000)
    expected = {
        "resize_type": "scale by multiplier",
        "resize_type.multiplier": 1.5,
        "scale_method": "area",
        "input": ["1", 0],
    }
    graph = sent[0].graph
    assert graph is not None and graph["5"].inputs == expected
    # What the fake ComfyUI received, after its own validation (the V3 rules) accepted it.
    qtbot.waitUntil(lambda: real_fake.state.prompts_executed == 1, timeout=20_000)
    assert real_fake.state.prompts_posted == 1
    (entry,) = real_fake.state.history.values()
    assert entry["prompt"][2]["5"]["inputs"] == expected
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=20_000)
