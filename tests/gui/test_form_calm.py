"""The calm form (issue 11): names a person would say, plumbing under "Advanced", linked inputs shown once,
size presets and swap, a compact seed row, one-click Pin and Hide, reset only on changed fields, image
previews fetched through the app layer; and a screenshot of it all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QEnterEvent, QImage
from PySide6.QtWidgets import QApplication, QComboBox, QHBoxLayout, QLineEdit, QWidget
from pytestqt.qtbot import QtBot

from comfydesk.core.nodes import NodeCatalog, parse_object_info
from comfydesk.core.templates import FormSpec, build_form
from comfydesk.core.workflow import load_workflow
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path, sample_workflows_dir
from comfydesk.ui.form import FormView
from comfydesk.ui.form.editors import NUMBER_WIDTH, SeedEditor
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.form.view import ADVANCED_GROUP, PINNED_GROUP
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow

UI_DIR = FIXTURES / "workflows/ui"


@pytest.fixture(scope="module")
def demo_catalog() -> NodeCatalog:
    return parse_object_info(json.loads(demo_object_info_path().read_text()))


def poster_spec(demo_catalog: NodeCatalog) -> FormSpec:
    path = sample_workflows_dir() / "poster_from_a_prompt.json"
    return build_form(load_workflow(path.read_text(), catalog=demo_catalog, name="Poster"), demo_catalog)


def sdxl_spec(catalog: NodeCatalog) -> FormSpec:
    doc = json.loads((UI_DIR / "sdxl_simple_example.json").read_text())
    return build_form(load_workflow(doc, catalog=catalog, name="SDXL"), catalog)


def txt2img_ui_spec(catalog: NodeCatalog) -> FormSpec:
    doc = json.loads((UI_DIR / "default.json").read_text())
    return build_form(load_workflow(doc, catalog=catalog, name="txt2img"), catalog)


def tiny_spec(catalog: NodeCatalog) -> FormSpec:
    doc = json.loads((FIXTURES / "workflows/api/txt2img_tiny_sd15.json").read_text())
    return build_form(load_workflow(doc, catalog=catalog, name="tiny"), catalog)


def show(qtbot: QtBot, spec: FormSpec, **kwargs: Any) -> FormView:
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(spec, **kwargs)
    view.resize(540, 900)
    view.show()
    qtbot.waitExposed(view)
    return view


def headers(view: FormView) -> dict[str, str]:
    return {k: g.header.text() for k, g in view.groups.items() if g.header is not None}


# ------------------------------------------------------------------------------------------- titles
def test_group_titles_are_names_never_ids(
    qtbot: QtBot, catalog: NodeCatalog, demo_catalog: NodeCatalog
) -> None:
    view = show(qtbot, tiny_spec(catalog))
    assert headers(view) == {
        "6": "Prompt",
        "7": "Negative prompt",
        "5": "Image size",
        "3": "Sampler",
        ADVANCED_GROUP: "Advanced",
    }
    # the node's own title from the UI file wins
    sdxl = show(qtbot, sdxl_spec(catalog))
    assert "KSampler (Advanced) - BASE" in headers(sdxl).values()
    poster = show(qtbot, poster_spec(demo_catalog))
    for text in [*headers(view).values(), *headers(sdxl).values(), *headers(poster).values()]:
        assert "#" not in text and "·" not in text, text
    assert "Demo" not in " ".join(headers(poster).values())  # "Pattern", not "(#1 · DemoPattern)"
    assert view.groups["3"].header is not None and "#3" in view.groups["3"].header.toolTip()


# ------------------------------------------------------------------------------------------- advanced
def test_plumbing_starts_in_a_collapsed_advanced_section(qtbot: QtBot, demo_catalog: NodeCatalog) -> None:
    view = show(qtbot, poster_spec(demo_catalog))
    advanced = view.groups[ADVANCED_GROUP]
    assert list(view.groups)[-1] == ADVANCED_GROUP
    assert [r.key for r in advanced.rows] == ["3.filename_prefix"]
    assert advanced.collapsed and not advanced.rows[0].frame.isVisible()
    assert advanced.header is not None
    qtbot.mouseClick(advanced.header, Qt.MouseButton.LeftButton)
    assert not advanced.collapsed and advanced.rows[0].frame.isVisible()
    assert ADVANCED_GROUP not in view.prefs()["collapsed"]  # it starts closed every time, not remembered


# ------------------------------------------------------------------------------------------- linked
def test_linked_size_is_shown_once_and_sets_both_nodes(qtbot: QtBot, demo_catalog: NodeCatalog) -> None:
    spec = poster_spec(demo_catalog)
    view = show(qtbot, spec)
    assert "2.width" not in view.rows and "2.height" not in view.rows
    width = view.rows["1.width"]
    assert width.label.text() == "Width"
    assert width.linked is not None and width.linked.text() == "used by 2 nodes"
    assert spec.field("1.width").linked == (("2", "width"),)
    spin = width.editor.focus_widget()
    spin.setFocus()
    spin.selectAll()  # type: ignore[attr-defined]
    qtbot.keyClicks(spin, "640")
    assert view.values()["1.width"] == 640
    graph = spec.fill(view.values())
    assert graph["1"].inputs["width"] == graph["2"].inputs["width"] == 640
    assert graph["1"].inputs["height"] == graph["2"].inputs["height"] == 512


def test_a_primitive_of_the_ui_file_links_its_inputs(catalog: NodeCatalog) -> None:
    spec = sdxl_spec(catalog)
    steps = spec.field("10.steps")
    assert steps.label == "Steps" and steps.linked == (("11", "steps"),)
    assert spec.field_for("11", "steps") is steps
    models = {k: spec.field(k).choices[0] for k in ("4.ckpt_name", "12.ckpt_name")}  # type: ignore[index]
    values = spec.defaults() | models | {"10.steps": 31}
    graph = spec.fill(values)
    assert graph["10"].inputs["steps"] == graph["11"].inputs["steps"] == 31


# ------------------------------------------------------------------------------------------- size tools
def test_size_presets_follow_the_checkpoint_and_swap(qtbot: QtBot, catalog: NodeCatalog) -> None:
    spec = sdxl_spec(catalog)  # sd_xl_base_1.0.safetensors: SDXL sizes
    view = show(qtbot, spec)
    tools = view.size_tools["5"]
    labels = [p.label for p in tools.presets]
    assert labels[0] == "SDXL 1:1 · 1024×1024" and any("16:9 · 1344×768" in t for t in labels)
    assert any(t == "SD1.5 native · 512×512" for t in labels)
    changed: list[dict[str, Any]] = []
    view.values_changed.connect(changed.append)
    tools.pick(labels.index(next(t for t in labels if "16:9" in t)))
    assert (view.values()["5.width"], view.values()["5.height"]) == (1344, 768)
    assert changed and changed[-1]["5.width"] == 1344
    assert tools.combo.currentIndex() == 0  # it reads "Size presets…" again
    qtbot.mouseClick(tools.swap, Qt.MouseButton.LeftButton)
    assert (view.values()["5.width"], view.values()["5.height"]) == (768, 1344)
    models = {k: spec.field(k).choices[0] for k in ("4.ckpt_name", "12.ckpt_name")}  # type: ignore[index]
    assert spec.fill(view.values() | models)["5"].inputs["width"] == 768
    assert view.rows["5.width"].reset.isVisibleTo(view)  # changed, so it can go back


def test_sd15_checkpoint_offers_512(qtbot: QtBot, catalog: NodeCatalog) -> None:
    view = show(qtbot, tiny_spec(catalog))
    assert "sd15" in view.values()["4.ckpt_name"]  # tiny-random-sd15.safetensors
    assert view.size_tools["5"].presets[0].label == "SD1.5 1:1 · 512×512"


# ------------------------------------------------------------------------------------------- row layout
def test_compact_seed_and_numbers_on_one_grid(qtbot: QtBot, catalog: NodeCatalog) -> None:
    view = show(qtbot, tiny_spec(catalog))
    seed = view.rows["3.seed"].editor
    assert isinstance(seed, SeedEditor)
    assert seed.edit.width() < 200
    assert seed.width() < 360
    numbers = [view.rows[k].editor.focus_widget() for k in ("3.steps", "3.cfg", "3.denoise", "5.width")]
    assert {w.width() for w in numbers} == {NUMBER_WIDTH}
    lefts = {w.mapTo(view.widget(), w.rect().topLeft()).x() for w in numbers}
    assert len(lefts) == 1  # one editor column across groups
    qtbot.waitUntil(lambda: view.widget().width() <= view.viewport().width())  # nothing cut off at 540 px


def test_reset_only_on_changed_fields_and_no_menu(qtbot: QtBot, catalog: NodeCatalog) -> None:
    view = show(qtbot, tiny_spec(catalog))
    assert not any(row.reset.isVisibleTo(view) for row in view.rows.values())
    row = view.rows["3.steps"]
    assert row.reset.menu() is None
    spin = row.editor.focus_widget()
    spin.setValue(7)  # type: ignore[attr-defined]
    assert row.reset.isVisibleTo(view)
    qtbot.mouseClick(row.reset, Qt.MouseButton.LeftButton)
    assert view.values()["3.steps"] == tiny_spec(catalog).field("3.steps").value
    assert not row.reset.isVisibleTo(view)


def hover(widget: QWidget) -> None:
    QApplication.sendEvent(widget, QEnterEvent(QPointF(2, 2), QPointF(2, 2), QPointF(2, 2)))


def test_pin_and_hide_are_one_click_on_hover(qtbot: QtBot, catalog: NodeCatalog) -> None:
    view = show(qtbot, tiny_spec(catalog))
    row = view.rows["3.cfg"]
    assert not row.pin.isVisibleTo(view) and not row.hide.isVisibleTo(view)
    hover(row.label)
    assert row.pin.isVisibleTo(view) and row.hide.isVisibleTo(view)
    QApplication.sendEvent(row.label, QEvent(QEvent.Type.Leave))
    assert not row.pin.isVisibleTo(view)
    before = row.actions.geometry()
    hover(row.frame)
    assert row.actions.geometry() == before  # the icons take their room all the time: nothing moves

    with qtbot.waitSignal(view.prefs_changed):
        qtbot.mouseClick(row.pin, Qt.MouseButton.LeftButton)
    assert view.prefs()["pinned"] == ["3.cfg"]
    assert [r.key for r in view.groups[PINNED_GROUP].rows] == ["3.cfg"]

    row = view.rows["3.steps"]
    hover(row.label)
    with qtbot.waitSignal(view.prefs_changed):
        qtbot.mouseClick(row.hide, Qt.MouseButton.LeftButton)
    assert "3.steps" not in view.rows and view.prefs()["hidden"] == ["3.steps"]
    assert view.show_hidden_box.isVisibleTo(view)


# ------------------------------------------------------------------------------------------- images
def image_spec(catalog: NodeCatalog) -> FormSpec:
    doc = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    spec = build_form(load_workflow(doc, catalog=catalog, name="img"), catalog)
    return spec


def test_choosing_a_server_image_asks_for_its_preview(qtbot: QtBot, catalog: NodeCatalog) -> None:
    view = FormView()
    qtbot.addWidget(view)
    wanted: list[tuple[str, str]] = []
    view.image_preview_wanted.connect(lambda k, n: wanted.append((k, n)))
    view.set_spec(image_spec(catalog))
    editor = view.rows["1.image"].editor
    assert isinstance(editor, ImageEditor)
    # The captured server lists neither image: nothing to ask for, and the box says so.
    assert wanted == []
    assert editor.thumb.text() == "Not on\nthe server" and editor.missing_on_server()
    view.set_image_choices(["a.png", "b.png"])  # the server's fresh list has both
    assert wanted == [("1.image", "a.png")]
    assert editor.thumb.text() == "Loading…"
    editor.combo.setCurrentIndex(editor.combo.findData("b.png"))
    assert wanted[-1] == ("1.image", "b.png")
    red, blue = QImage(8, 8, QImage.Format.Format_RGB32), QImage(8, 8, QImage.Format.Format_RGB32)
    red.fill(Qt.GlobalColor.red)
    blue.fill(Qt.GlobalColor.blue)
    view.set_image_thumbnail("1.image", red, "a.png")  # late answer for the old choice: not shown
    assert editor.thumb.pixmap().isNull()
    view.set_image_thumbnail("1.image", blue, "b.png")
    assert editor.thumb.pixmap().toImage().pixelColor(4, 4) == Qt.GlobalColor.blue
    editor.combo.setCurrentIndex(editor.combo.findData("a.png"))  # cached: no new request
    assert wanted[-1] == ("1.image", "b.png")
    assert editor.thumb.pixmap().toImage().pixelColor(4, 4) == Qt.GlobalColor.red


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def image_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    for name, colour in (("a.png", (220, 30, 30)), ("b.png", (30, 30, 220))):
        Image.new("RGB", (40, 30), colour).save(fake.data_dir / "input" / name)
    yield fake
    fake.stop()


def test_server_previews_and_list_refresh_in_the_window(
    qtbot: QtBot, open_window: OpenWindow, image_fake: RunningFake, tmp_path: Path
) -> None:
    data = tmp_path / "app"
    key = write_workflow(data, "Image", image_spec_doc())
    window = open_window(server=image_fake.url, data_dir=data)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    editor = window.form.rows["1.image"].editor
    assert isinstance(editor, ImageEditor)
    # the preview of the server's a.png (red), fetched by the app layer from /view
    qtbot.waitUntil(lambda: not editor.thumb.pixmap().isNull(), timeout=10_000)
    assert editor.thumb.pixmap().toImage().pixelColor(20, 10).red() > 200
    editor.combo.setCurrentIndex(editor.combo.findData("b.png"))
    qtbot.waitUntil(lambda: editor.thumb.pixmap().toImage().pixelColor(20, 10).blue() > 200, timeout=10_000)

    # a file added on the server shows up when the list gets focus (no F5), without rebuilding the form
    Image.new("RGB", (40, 30), (30, 200, 30)).save(image_fake.data_dir / "input" / "c.png")
    window.activateWindow()
    editor.combo.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(lambda: editor.combo.findData("c.png") >= 0, timeout=10_000)
    assert window.form.rows["1.image"].editor is editor and editor.combo.hasFocus()
    assert window.form.values()["1.image"] == "b.png"

    # after a run uploads a local file, the server's list has it at once
    local = tmp_path / "my photo.png"
    Image.new("RGB", (40, 30), (240, 240, 30)).save(local)
    editor.set_local_file(local)
    qtbot.waitUntil(lambda: editor.thumb.pixmap().toImage().pixelColor(20, 10).green() > 200, timeout=10_000)
    window.run_workflow()
    qtbot.waitUntil(lambda: editor.combo.findData("my photo.png") >= 0, timeout=20_000)
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=20_000)
    assert image_fake.state.uploads == 1


def image_spec_doc() -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


# ------------------------------------------------------------------------------------------- keyboard
def test_tab_still_walks_the_fields_in_order(qtbot: QtBot, catalog: NodeCatalog) -> None:
    view = show(qtbot, tiny_spec(catalog))
    chain = view.tab_chain()
    fields = [w for w in chain if w.accessibleName() in ("Steps", "CFG")]
    assert [w.accessibleName() for w in fields] == ["Steps", "CFG"]
    assert all(w.focusPolicy() & Qt.FocusPolicy.TabFocus for w in chain)
    for row in view.rows.values():  # the row icons are for the mouse: no extra Tab stops
        for button in (row.reset, row.pin, row.hide):
            assert button.focusPolicy() == Qt.FocusPolicy.NoFocus


# ------------------------------------------------------------------------------------------- screenshot
def test_calm_form_screenshot(
    qtbot: QtBot, catalog: NodeCatalog, demo_catalog: NodeCatalog, docs_shots: Path
) -> None:
    """The demo sample and a real txt2img UI workflow side by side, Advanced collapsed."""
    holder = QWidget()
    qtbot.addWidget(holder)
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for spec in (poster_spec(demo_catalog), txt2img_ui_spec(catalog)):
        view = FormView(holder)
        view.set_spec(spec, {"prompt": "A lighthouse at dusk, warm light"} if spec is not None else None)
        view.setFixedWidth(540)
        layout.addWidget(view)
        row = view.rows.get("1.width") or view.rows["5.width"]
        hover(row.label)
    holder.resize(1090, 1000)
    holder.show()
    qtbot.waitExposed(holder)
    for view in holder.findChildren(FormView):
        qtbot.waitUntil(lambda v=view: v.widget().width() <= v.viewport().width())
    path = docs_shots / "form-calm.png"
    assert holder.grab().save(str(path))
    assert path.stat().st_size > 10_000
    assert not holder.findChildren(QLineEdit, "nonexistent")
    assert all(isinstance(c, QComboBox) for c in holder.findChildren(QComboBox, "sizePresets"))
