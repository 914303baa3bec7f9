"""Going back to a workflow puts its form back as it was left (the same widgets, what the user typed),
starting as a fresh form does (nothing marked, highlighted or greyed out); anything a fresh build would
show differently is built anew, and only the last few forms are kept."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from comfydesk.core.errors import ValidationIssue
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FormSpec
from comfydesk.ui.form import FormView
from comfydesk.ui.form.pages import PAGES_KEPT
from tests.gui.test_form_deferred import shown_form, ui_spec

NAMES = [
    "01_get_started_text_to_image.json",
    "default.json",
    "flux_schnell.json",
    "sd3.5_simple_example.json",
    "sdxl_simple_example.json",
    "sdxlturbo_example.json",
    "text_to_video_wan.json",
    "flux_fill_inpaint_example.json",
    "video_ltx2_pose_to_video.json",
]


@pytest.fixture
def specs(catalog: NodeCatalog) -> dict[str, FormSpec]:
    return {name: ui_spec(catalog, name) for name in NAMES}


def steps_key(spec: FormSpec) -> str:
    return next(f.key for f in spec.fields() if f.input_name == "steps")


def settled(qtbot: QtBot, view: FormView) -> None:
    qtbot.waitUntil(lambda: not view.building(), timeout=10_000)


def test_going_back_puts_the_same_form_back_with_what_was_typed(
    qtbot: QtBot, specs: dict[str, FormSpec]
) -> None:
    view = shown_form(qtbot)
    first, other = specs["default.json"], specs["flux_schnell.json"]
    view.set_spec(first)
    settled(qtbot, view)
    key = steps_key(first)
    row = view.rows[key]
    row.editor.set_value(33)
    row.editor.edited.emit()
    assert view.values()[key] == 33
    typed = view.values()

    view.set_spec(other)
    assert view.kept_forms() == 1 and view.spec() is other
    assert key not in view.rows or view.rows[key] is not row
    changed: list[int] = []
    view.widgets_changed.connect(lambda: changed.append(len(view.tab_chain())))
    view.set_spec(first, typed)  # what the caller remembered is what the form holds: it comes back
    assert view.rows[key] is row and row.editor.value() == 33
    assert view.values() == typed and view.spec() is first
    assert row.frame.isVisibleTo(view)
    assert changed and changed[-1] == len(view.tab_chain()) > 0  # the window re-chains Tab through it
    assert view.kept_forms() == 1  # the other form went aside in its place


def test_a_form_comes_back_as_a_fresh_one_starts(qtbot: QtBot, specs: dict[str, FormSpec]) -> None:
    view = shown_form(qtbot)
    first, other = specs["default.json"], specs["flux_schnell.json"]
    view.set_spec(first)
    settled(qtbot, view)
    key = steps_key(first)
    row = view.rows[key]
    tip = row.editor.toolTip()
    seed_group = next(g for g in view.groups if g != "__prompt__")
    view.show_issues([ValidationIssue(node_id="", message="Steps must be at most 10.", field_key=key)])
    view.set_unavailable({key: "The server lacks this node"})
    view.highlight_node(seed_group)
    assert row.messages and not row.editor.isEnabled() and view.groups[seed_group].property("active")

    view.set_spec(other)
    view.set_spec(first)
    assert view.rows[key] is row
    assert view.issues() == {} and row.messages == [] and not view.error_box.isVisibleTo(view)
    assert row.editor.isEnabled() and row.label.isEnabled() and row.editor.toolTip() == tip
    assert not view.groups[seed_group].property("active")
    # The caller says again what is unavailable now; that greys it out as on a fresh form.
    view.set_unavailable({key: "Still missing"})
    assert not row.editor.isEnabled() and row.editor.toolTip() == "Still missing"


def test_anything_a_fresh_build_would_show_differently_is_built_anew(
    qtbot: QtBot, specs: dict[str, FormSpec], catalog: NodeCatalog
) -> None:
    view = shown_form(qtbot)
    first, other = specs["default.json"], specs["flux_schnell.json"]
    key = steps_key(first)

    def back(**kwargs: object) -> bool:
        """Show `first`, go to `other`, come back with `kwargs`: True if the same widgets came back."""
        view.set_spec(first)
        settled(qtbot, view)
        row = view.rows[key]
        view.set_spec(other)
        view.set_spec(first, **kwargs)  # type: ignore[arg-type]
        return view.rows.get(key) is row

    assert back()
    assert not back(values={key: 12})  # other values than the form holds
    assert not back(pinned=[key])
    assert not back(hidden=[key])
    assert not back(collapsed=[next(iter(first.groups)).node_id])
    assert not back(server_graph=True)
    # The same workflow with a new catalog is a new spec: a new form.
    view.set_spec(first)
    settled(qtbot, view)
    row = view.rows[key]
    view.set_spec(other)
    again = ui_spec(catalog, "default.json")
    view.set_spec(again)
    assert view.rows[key] is not row and view.spec() is again


def test_only_the_last_few_forms_are_kept(qtbot: QtBot, specs: dict[str, FormSpec]) -> None:
    view = shown_form(qtbot)
    order = list(specs.values())
    assert len(order) == PAGES_KEPT + 1
    rows = {}  # id(spec) -> (a field key, its row): the first row built
    for spec in order:
        view.set_spec(spec)
        rows[id(spec)] = next(iter(view._rows.items()))
    assert view.kept_forms() == PAGES_KEPT  # all but the one on screen
    # Going round again, each comes back: the one asked for is taken out before the one on screen goes
    # aside (which would otherwise push out exactly the one asked for, the oldest).
    for spec in order:
        view.set_spec(spec)
        key, row = rows[id(spec)]
        assert view._rows[key] is row
        assert view.kept_forms() == PAGES_KEPT
    # One more goes aside (the empty form comes): the oldest, order[0], is let go; order[1] is kept.
    view.set_spec(None)
    assert view.spec() is None and view.kept_forms() == PAGES_KEPT
    view.set_spec(order[0])
    key, row = rows[id(order[0])]
    assert view._rows[key] is not row
    view.set_spec(order[1])
    key, row = rows[id(order[1])]
    assert view._rows[key] is row


def test_a_form_left_before_it_was_whole_is_finished_when_it_comes_back(
    qtbot: QtBot, specs: dict[str, FormSpec]
) -> None:
    view = shown_form(qtbot)
    big, small = specs["video_ltx2_pose_to_video.json"], specs["default.json"]
    view.set_spec(big)
    assert view.building()
    built_first = len(view._rows)
    view.set_spec(small)  # before the rest of the big form was built
    settled(qtbot, view)
    view.set_spec(big)
    assert view.building() and len(view._rows) == built_first  # as it was left
    settled(qtbot, view)
    whole = FormView()  # off screen: built at once
    qtbot.addWidget(whole)
    whole.set_spec(big)
    assert list(view.rows) == list(whole.rows)
    assert len(view.tab_chain()) == len(whole.tab_chain())


def test_new_image_lists_and_palettes_let_kept_forms_go(qtbot: QtBot, specs: dict[str, FormSpec]) -> None:
    view = shown_form(qtbot)
    view.set_spec(specs["default.json"])
    view.set_spec(specs["flux_schnell.json"])
    assert view.kept_forms() == 1
    view.set_image_choices(["a.png", "b.png"])
    assert view.kept_forms() == 0
    view.set_spec(specs["default.json"])
    assert view.kept_forms() == 1
    palette = QPalette(view.palette())
    palette.setColor(QPalette.ColorRole.Window, palette.color(QPalette.ColorRole.Window).darker(150))
    view.setPalette(palette)
    QApplication.sendPostedEvents(view, QEvent.Type.PaletteChange)
    assert view.kept_forms() == 0
