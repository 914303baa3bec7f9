"""Building the form's widgets: a plan of the groups and their fields, then the rows themselves.

On screen, a new form builds what its first paint shows (top to bottom, until the visible height is filled)
and the rest in short batches once the user has stayed on it for SETTLE_SECONDS (going down the library with
the arrow keys builds no form beyond what each shows), appended below what is already there so nothing shown
moves: the label column's width is measured from every label up front, and the rows of a closed group come
last (its header is there at once). A form that is not on screen, and anything that needs every row (`rows`,
`groups`, `size_tools`, scrolling the form, opening a closed group, bringing a field into view, running),
builds the rest at once. `widgets_changed` says when the first rows are in (with their Tab order), and again
once every row is. A mixin of FormView.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from comfydesk.core.templates import FormField, FormSpec, SeedControl
from comfydesk.ui.form.editors import WheelGuard
from comfydesk.ui.form.parts import FieldRow, FormGroupBox
from comfydesk.ui.form.size_tools import SizeTools

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance

__all__ = [
    "ADVANCED_GROUP",
    "BATCH_SECONDS",
    "LABEL_MAX",
    "PINNED_GROUP",
    "PROMPT_GROUP",
    "SETTLE_SECONDS",
    "FormBuild",
]

PROMPT_GROUP = "__prompt__"
PINNED_GROUP = "__pinned__"
ADVANCED_GROUP = "__advanced__"
LABEL_MAX = 116  # px: the label column's widest; longer labels wrap
SERVER_GRAPH_NOTE = "This workflow is stored on the server, which runs it as it was published"
SERVER_GRAPH_FIXED = (
    ": only the fields at the top are yours to set. The rest show the values the server uses and cannot be "
    "changed here."
)
#: The rows below the fold are built once the form has been shown this long without another taking its place.
SETTLE_SECONDS = 0.1
#: One batch of them takes about this long at most, so a click or a key waits no longer.
BATCH_SECONDS = 0.008


@dataclass
class _GroupPlan:
    """One group as it will be built: its fields in order, and what goes with them."""

    title: str
    key: str
    fields: list[FormField]
    collapsible: bool
    pinned: bool = False
    size_tools: bool = False
    tip: str = ""
    notes: tuple[str, ...] = ()


class FormBuild:
    """Widget building of FormView (which owns the state named below)."""

    _spec: FormSpec | None
    _server_graph: bool
    _defaults: dict[str, Any]
    _values: dict[str, Any]
    _pinned: list[str]
    _hidden: set[str]
    _collapsed: set[str]
    _show_hidden: bool
    _controls: dict[str, SeedControl]
    _last_seeds: dict[str, int]
    _issues: dict[str, list[str]]
    _highlight: str | None
    _unavailable: dict[str, str]
    _disabled: dict[str, list[tuple[QWidget, bool, str]]]  # see FormPages._grey_out
    _wheel_guard: WheelGuard
    error_box: QLabel
    show_hidden_box: QCheckBox

    if TYPE_CHECKING:
        widgets_changed: SignalInstance
        image_list_wanted: SignalInstance

        def _as_widget(self) -> QWidget: ...

        def _style_error_box(self) -> None: ...

        def _link(self, href: str) -> None: ...

        def set_show_hidden(self, show: bool) -> None: ...

        def _sub_fields(self, field: FormField) -> tuple[FormField, ...]: ...

        def _add_size_tools(self, box: FormGroupBox, added: FormField) -> None: ...

        def _want_preview(self, key: str) -> None: ...

        def _refresh_issues(self) -> None: ...

        def _edited(self, key: str) -> None: ...

        def _reuse_seed(self, key: str) -> None: ...

        def reset_field(self, key: str) -> None: ...

        def set_pinned(self, key: str, pinned: bool) -> None: ...

        def set_hidden(self, key: str, hidden: bool) -> None: ...

        def _group_collapsed(self, key: str, collapsed: bool) -> None: ...

        def _context_menu(self, key: str, where: Any) -> None: ...

        def _disable_row(self, row: FieldRow, reason: str) -> None: ...

        def _wire(self, row: FieldRow) -> None: ...

    def _init_build(self) -> None:
        self._rows: dict[str, FieldRow] = {}
        self._groups: dict[str, FormGroupBox] = {}
        self._size_tools: dict[str, SizeTools] = {}
        self._tab_chain: list[QWidget] = []
        self._row_group: dict[str, str] = {}  # field key -> the key of the group it is (or will be) in
        self._label_width = 0
        self._label_widths: dict[str, int] = {}
        self._titles: dict[str, str] = {}
        self._steps: Iterator[int | None] | None = None  # the rows still to build (None: all built)
        self._content_layout: QVBoxLayout | None = None
        self._heights: dict[tuple[object, ...], int] = {}  # see _height_of
        self._discarded: list[QWidget] = []  # see _discard

    # ------------------------------------------------------------------------------ every row, built
    @property
    def rows(self) -> dict[str, FieldRow]:
        """Field key -> its row, every field shown (the rest of the form is built first if need be)."""
        self._flush()
        return self._rows

    @property
    def groups(self) -> dict[str, FormGroupBox]:
        self._flush()
        return self._groups

    @property
    def size_tools(self) -> dict[str, SizeTools]:
        self._flush()
        return self._size_tools

    def tab_chain(self) -> list[QWidget]:
        """The widgets Tab visits in the form, top to bottom (empty without a workflow): those built so far,
        which `widgets_changed` announces."""
        return list(self._tab_chain)

    def building(self) -> bool:
        """Rows below the fold (or in closed groups) are still to be built."""
        return self._steps is not None

    def _flush(self) -> None:
        """Build every row still to come, now."""
        steps, self._steps = self._steps, None
        if steps is not None:
            for _ in steps:
                pass
            self._finish_build()

    # --------------------------------------------------------------------------------------- building
    def _build(self) -> None:
        self._steps = None  # a batch still scheduled for the widgets replaced here does nothing
        area = self._area()
        old = area.takeWidget()
        if old is not None:
            self._discard(old)
        self._rows, self._groups, self._size_tools = {}, {}, {}
        self._tab_chain, self._row_group, self._disabled = [], {}, {}
        content = QWidget()
        content.setObjectName("formContent")
        layout = QVBoxLayout(content)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)

        self.error_box = QLabel(content)
        self.error_box.setObjectName("formErrors")
        self.error_box.setWordWrap(True)
        self.error_box.setTextFormat(Qt.TextFormat.RichText)
        self.error_box.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self._style_error_box()
        self.error_box.linkActivated.connect(self._link)
        self.error_box.setVisible(False)
        layout.addWidget(self.error_box)

        self.show_hidden_box = QCheckBox(content)
        self.show_hidden_box.setObjectName("showHiddenFields")
        self.show_hidden_box.setChecked(self._show_hidden)
        self.show_hidden_box.toggled.connect(self.set_show_hidden)
        layout.addWidget(self.show_hidden_box)

        spec = self._spec
        if spec is None:
            self.show_hidden_box.setVisible(False)
            empty = QLabel("Pick a workflow to see its inputs.", content)
            empty.setObjectName("formEmpty")
            empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
            empty.setEnabled(False)
            layout.addWidget(empty, 1)
            area.setWidget(content)
            self.widgets_changed.emit()
            return
        if self._server_graph:
            fixed = any(not f.is_placeholder for f in spec.fields())
            note = QLabel(
                SERVER_GRAPH_NOTE + (SERVER_GRAPH_FIXED if fixed else ": you fill in its inputs."), content
            )
            note.setObjectName("serverGraphNote")
            note.setWordWrap(True)
            layout.addWidget(note)
        self.show_hidden_box.setText(f"Show hidden fields ({len(self._hidden)})")
        self.show_hidden_box.setVisible(bool(self._hidden))

        holder = QWidget(content)  # the groups (no style sheet: see GroupHeader)
        holder.setObjectName("formGroups")
        groups_layout = QVBoxLayout(holder)
        groups_layout.setContentsMargins(0, 0, 0, 0)
        groups_layout.setSpacing(layout.spacing())
        layout.addWidget(holder)
        self._content_layout = groups_layout

        plan = self._plan(spec)
        self._titles = {g.node_id: g.title for g in spec.groups}
        self._row_group = {f.key: g.key for g in plan for f in g.fields}
        self._measure_labels(plan, holder)
        layout.addStretch(1)

        steps = self._steps_of(plan)
        # What the first paint shows; a form not on screen is built whole, as nothing is painted yet.
        budget = area.viewport().height() if area.isVisible() else None
        done = True
        if budget is not None:
            shown = 0
            for height in steps:
                if height is None:  # the rest is in closed groups
                    done = False
                    break
                shown += height
                if shown >= budget:
                    done = False
                    break
        if done:
            for _ in steps:
                pass
        area.setWidget(content)
        if done:
            self._finish_build()
            return
        self._steps = steps
        self._apply_tab_order()
        self._refresh_issues()
        # The view as context: a timer still waiting when the view goes away never fires.
        QTimer.singleShot(round(SETTLE_SECONDS * 1000), area, lambda s=steps: self._build_more(s))
        self.widgets_changed.emit()

    def _discard(self, old: QWidget) -> None:
        """The widgets of the form replaced, deleted once the user has settled on the new one: deleting a
        big form takes as long as showing a small one, and nothing on screen waits for it."""
        old.hide()
        self._discarded.append(old)
        QTimer.singleShot(round(SETTLE_SECONDS * 1000), self._area(), self._drop_discarded)

    def _drop_discarded(self) -> None:
        discarded, self._discarded = self._discarded, []
        for widget in discarded:
            widget.deleteLater()

    def _build_more(self, steps: Iterator[int | None]) -> None:
        """One batch of the rows still to build; the next batch follows after the events waiting."""
        if steps is not self._steps:
            return  # the form was rebuilt (or finished) since
        end = time.perf_counter() + BATCH_SECONDS
        for _ in steps:
            if time.perf_counter() >= end:
                QTimer.singleShot(0, self._area(), lambda: self._build_more(steps))
                return
        self._steps = None
        self._finish_build()

    def _finish_build(self) -> None:
        self._apply_tab_order()
        self._refresh_issues()
        self.widgets_changed.emit()

    def _plan(self, spec: FormSpec) -> list[_GroupPlan]:
        """Placeholder fields first ("Prompt"), then pinned ones, one group per node, then "Advanced"."""
        shown = [f for f in spec.fields() if self._show_hidden or f.key not in self._hidden]
        shown_keys = {f.key for f in shown}
        pinned = [f for k in self._pinned for f in shown if f.key == k]
        placeholders = [f for f in shown if f.is_placeholder and f.key not in self._pinned]
        plan: list[_GroupPlan] = []
        if placeholders:
            plan.append(_GroupPlan("", PROMPT_GROUP, placeholders, collapsible=False))
        if pinned:
            plan.append(_GroupPlan("Pinned", PINNED_GROUP, pinned, collapsible=True, pinned=True))
        advanced: list[FormField] = []
        for group in spec.groups:
            fields: list[FormField] = []
            for f in group.fields:
                if f.key not in shown_keys or f.key in self._pinned:
                    continue
                (advanced if f.advanced else fields).extend((f, *self._sub_fields(f)))
            if not fields and not group.notes:
                continue
            tip = f"Node #{group.node_id} ({group.class_type})"
            plan.append(
                _GroupPlan(
                    group.title,
                    group.node_id,
                    fields,
                    collapsible=True,
                    size_tools=True,
                    tip=tip,
                    notes=tuple(group.notes),
                )
            )
        if advanced:
            plan.append(_GroupPlan("Advanced", ADVANCED_GROUP, advanced, collapsible=True, pinned=True))
        return plan

    def _label_text(self, field: FormField, pinned: bool) -> str:
        node_title = self._titles.get(field.node_id or "", "")
        return f"{field.label} · {node_title}" if pinned and node_title else field.label

    def _measure_labels(self, plan: list[_GroupPlan], content: QWidget) -> None:
        """One label column for the whole form, so editors line up across groups; long labels wrap. Measured
        here from every label's text, so rows built later never widen it."""
        probe = QLabel(content)
        probe.setObjectName("fieldLabel")
        probe.setWordWrap(False)
        probe.hide()
        widths: dict[str, int] = {}
        for group in plan:
            for field in group.fields:
                text = self._label_text(field, group.pinned)
                probe.setText(f"{text} (hidden)" if field.key in self._hidden else text)
                widths[field.key] = probe.sizeHint().width()
        probe.setParent(None)
        probe.deleteLater()
        self._label_widths = widths
        self._label_width = min(LABEL_MAX, max(widths.values(), default=0))

    def _steps_of(self, plan: list[_GroupPlan]) -> Iterator[int | None]:
        """Build the groups top to bottom, a row per step; each step gives the height it added on screen.
        The rows of closed groups come last (their steps give None: nothing they add is seen)."""
        closed: list[tuple[_GroupPlan, FormGroupBox]] = []
        for group in plan:
            box = self._start_group(group)
            yield self._height_of(("group", box.header is not None), box)
            if box.collapsed:
                closed.append((group, box))
                continue
            for field in self._fill_group(group, box):
                row = self._rows[field.key]
                yield self._height_of((type(row.editor), field.is_placeholder, row.linked is not None), row)
        for group, box in closed:
            for _field in self._fill_group(group, box):
                yield None

    def _height_of(self, kind: tuple[object, ...], made: FieldRow | FormGroupBox) -> int:
        """About how much height a new row (or empty group) takes: measured once per kind of editor, as
        measuring each is slow. It leaves out a label wrapped over lines, so it errs on building more."""
        height = self._heights.get(kind)
        if height is None:
            if isinstance(made, FieldRow):
                height = max(made.frame.sizeHint().height(), made.label.sizeHint().height()) + 4
            else:  # the header and the margins: never the group's own size hint, which would be kept
                # by its layout (stale once rows go in) and lay the group out too short at first
                height = made.header.sizeHint().height() + 16 if made.header is not None else 0
            self._heights[kind] = height
        return height

    def _start_group(self, plan: _GroupPlan) -> FormGroupBox:
        layout = self._content_layout
        assert layout is not None
        key = plan.key
        group = FormGroupBox(
            plan.title,
            key=key,
            collapsible=plan.collapsible,
            collapsed=key in self._collapsed,
            parent=layout.parentWidget(),
        )
        group.set_active(key == self._highlight)
        group.collapsed_changed.connect(lambda collapsed, k=key: self._group_collapsed(k, collapsed))
        if plan.tip and group.header is not None:
            group.header.setToolTip(plan.tip)
        self._groups[key] = group
        layout.addWidget(group)
        holder = layout.parentWidget()
        if holder is not None and holder.isVisible():
            group.show()  # at once, not after the events waiting (see FormGroupBox._show_now)
        return group

    def _fill_group(self, plan: _GroupPlan, group: FormGroupBox) -> Iterator[FormField]:
        """Add the group's rows (yielding each field once its row is in), then its notes."""
        indent = 0 if group.header is not None else group.grid.contentsMargins().left() + 14
        for field in plan.fields:
            context = (
                f"{self._titles.get(field.node_id or '', '')} (#{field.node_id}), input {field.input_name}"
                if field.node_id
                else ""
            )
            row = FieldRow(
                field,
                default=self._defaults.get(field.key),
                label_text=self._label_text(field, plan.pinned),
                context=context,
                hidden=field.key in self._hidden,
                parent=group.body,
                pinned=field.key in self._pinned,
            )
            self._wire(row)
            if self._server_graph and not field.is_placeholder:
                for widget in (row.editor, row.actions):
                    widget.setEnabled(False)
                row.editor.setToolTip(f"Set on the server. {row.editor.toolTip()}")
            if self._label_widths.get(field.key, 0) > self._label_width:
                row.label.setWordWrap(True)
            row.label.setFixedWidth(self._label_width + indent)
            group.add_row(row)
            self._rows[field.key] = row
            row.set_messages(self._issues.get(field.key, []))
            if field.key in self._unavailable:
                self._disable_row(row, self._unavailable[field.key])
            self._want_preview(field.key)
            if plan.size_tools:
                self._add_size_tools(group, field)
            yield field
        for text in plan.notes:
            group.add_note(text).setToolTip(plan.tip)

    def _apply_tab_order(self) -> None:
        chain: list[QWidget] = (
            [self.show_hidden_box] if self.show_hidden_box.isVisibleTo(self._as_widget()) else []
        )
        for group in self._groups.values():
            if group.header is not None:
                chain.append(group.header)
            for row in group.rows:
                chain.extend(row.editor.focus_chain())
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)
        self._tab_chain = chain

    def _area(self) -> QScrollArea:
        area = self._as_widget()
        assert isinstance(area, QScrollArea)
        return area

    def _group_of(self, row: FieldRow) -> FormGroupBox | None:
        return self._groups.get(self._row_group.get(row.key, ""))

    def _planned_closed(self, key: str) -> bool:
        """The field's group is (or, not built yet, will be) closed; True for a field the form leaves out."""
        group_key = self._row_group.get(key)
        if group_key is None:
            return True
        group = self._groups.get(group_key)
        if group is None:
            return group_key != PROMPT_GROUP and group_key in self._collapsed
        return group.collapsed
