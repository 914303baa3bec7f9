"""A form on screen builds what its first paint shows, and the rest once the user stays on it: the rows built
later take the field marks, the greyed fields and the Tab order the form was given before they existed; a
closed group opened, a scroll or a new workflow before then all behave as with the whole form built at once.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QContextMenuEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QMenu, QWidget
from pytestqt.qtbot import QtBot

from comfydesk.core.errors import ValidationIssue
from comfydesk.core.missing import build_partial_form, open_workflow_file, workflow_needs
from comfydesk.core.nodes import NodeCatalog
from comfydesk.core.templates import FormSpec
from comfydesk.ui.form import FormView
from comfydesk.ui.form.view import ADVANCED_GROUP
from tests.conftest import FIXTURES

UI_DIR = FIXTURES / "workflows/ui"
RED_TEXT = "Steps must be at most 10."


def ui_spec(catalog: NodeCatalog, name: str) -> FormSpec:
    wf, ui_doc = open_workflow_file(UI_DIR / name, catalog)
    return build_partial_form(wf, catalog, workflow_needs(wf, catalog, ui_doc), ui_doc)


@pytest.fixture
def big(catalog: NodeCatalog) -> FormSpec:
    """59 fields in many groups: far more than a 360 px form shows."""
    return ui_spec(catalog, "video_ltx2_pose_to_video.json")


def shown_form(qtbot: QtBot) -> FormView:
    view = FormView()
    qtbot.addWidget(view)
    view.resize(460, 360)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_rows_below_the_fold_come_after_the_first_paint(qtbot: QtBot, big: FormSpec) -> None:
    view = shown_form(qtbot)
    view.set_spec(big)
    assert view.building()  # only what 360 px show, for now
    first = view.tab_chain()
    assert first and first[0].isVisibleTo(view)
    qtbot.waitUntil(lambda: not view.building(), timeout=10_000)
    everything = view.tab_chain()
    assert len(everything) > len(first) and everything[: len(first)] == first  # appended after
    whole = FormView()  # off screen: built at once
    qtbot.addWidget(whole)
    whole.set_spec(big)
    assert list(view.rows) == list(whole.rows)
    assert [g.header.text() for g in view.groups.values() if g.header is not None] == [
        g.header.text() for g in whole.groups.values() if g.header is not None
    ]


def test_field_marks_and_greyed_fields_reach_rows_built_later(qtbot: QtBot, big: FormSpec) -> None:
    view = shown_form(qtbot)
    view.set_spec(big)
    assert view.building()
    later = unbuilt_open_keys(view, big)
    marked, greyed = later[-1], later[-2]
    view.show_issues([ValidationIssue(node_id="", message=RED_TEXT, field_key=marked)])
    view.set_unavailable({greyed: "The server lacks this node"})
    # The field is in an open group: it will be on screen, so the box at the top does not point to it.
    assert not view.error_box.isVisibleTo(view)
    qtbot.waitUntil(lambda: not view.building(), timeout=10_000)
    row = view.rows[marked]
    assert row.error.text() == RED_TEXT and row.error.isVisibleTo(view)
    assert row.messages == [RED_TEXT] and row.frame.border is not None
    assert view.issues() == {marked: [RED_TEXT]}
    grey = view.rows[greyed]
    assert not grey.editor.isEnabled() and grey.editor.toolTip() == "The server lacks this node"


def unbuilt_open_keys(view: FormView, spec: FormSpec) -> list[str]:
    """Keys of the fields still to be built that will be on screen (in open groups), top to bottom."""
    return [f.key for f in spec.fields() if f.key not in view._rows and not view._planned_closed(f.key)]


def test_tab_walks_rows_built_later_in_order(qtbot: QtBot, big: FormSpec) -> None:
    view = shown_form(qtbot)
    changed: list[int] = []
    view.widgets_changed.connect(lambda: changed.append(len(view.tab_chain())))
    view.set_spec(big)
    assert len(changed) == 1  # the first rows: the window lays its Tab chain through them at once
    qtbot.waitUntil(lambda: not view.building(), timeout=10_000)
    assert len(changed) == 2 and changed[1] > changed[0]  # and again with every row
    assert view.focus_first_field()
    window = view.window()
    seen: list[QWidget] = []
    for _ in range(len(view.tab_chain())):
        focused = window.focusWidget()
        assert focused is not None
        if focused in seen:
            break
        seen.append(focused)
        focused.focusNextChild()
    stops = [w for w in view.tab_chain() if w.isVisibleTo(view) and w.isEnabled()]
    start = stops.index(seen[0])  # the first field (after its group's header)
    stops = stops[start:]
    assert seen[: len(stops)] == stops  # every stop, rows built later included, in the form's order
    content = view.widget()
    assert content is not None
    tops = [w.mapTo(content, QPoint(0, 0)).y() for w in stops]
    assert tops == sorted(tops)  # which is top to bottom
    assert len(seen) > 40  # well past what the first paint showed


def test_opening_a_closed_group_builds_its_rows_at_once(qtbot: QtBot, big: FormSpec) -> None:
    view = shown_form(qtbot)
    second = big.groups[1].node_id
    view.set_spec(big, collapsed=[second])
    assert view.building()
    closed = view._groups[second]  # its header is there at once, its rows come last
    assert closed.collapsed and closed.header is not None and not closed.rows
    qtbot.mouseClick(closed.header, Qt.MouseButton.LeftButton)
    assert not view.building()
    assert closed.rows and all(r.editor.isVisibleTo(view) for r in closed.rows)


def test_scrolling_builds_the_rest_at_once(qtbot: QtBot, big: FormSpec) -> None:
    view = shown_form(qtbot)
    view.set_spec(big)
    assert view.building()
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(
        centre,
        QPointF(view.viewport().mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert not view.building()
    assert view.verticalScrollBar().value() > 0


def test_another_workflow_before_the_rest_is_built(qtbot: QtBot, catalog: NodeCatalog, big: FormSpec) -> None:
    view = shown_form(qtbot)
    view.set_spec(big)
    assert view.building()
    other = ui_spec(catalog, "sdxl_simple_example.json")
    view.set_spec(other)
    qtbot.waitUntil(lambda: not view.building(), timeout=10_000)
    assert set(view.rows) == {f.key for f in other.fields()}  # nothing of the first form came after
    assert set(view.groups) <= {g.node_id for g in other.groups} | {ADVANCED_GROUP, "__prompt__"}


def test_a_form_off_screen_is_built_whole(qtbot: QtBot, big: FormSpec) -> None:
    view = FormView()
    qtbot.addWidget(view)
    view.set_spec(big)
    assert not view.building()
    assert len(view.tab_chain()) >= len(big.fields())


def test_right_click_menu_on_a_row_built_later(qtbot: QtBot, big: FormSpec) -> None:
    view = shown_form(qtbot)
    view.set_spec(big)
    key = unbuilt_open_keys(view, big)[-1]
    qtbot.waitUntil(lambda: not view.building(), timeout=10_000)
    label = view.rows[key].label
    where = QPoint(2, 2)
    QApplication.sendEvent(
        label, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, where, label.mapToGlobal(where))
    )
    menu = view.findChild(QMenu)
    assert menu is not None
    assert [a.text() for a in menu.actions() if a.text()] == ["Reset to default", "Pin to top", "Hide field"]
    menu.actions()[-1].trigger()  # "Hide field"
    assert key in view.prefs()["hidden"]
