"""FormView: the generated form of a workflow.

The view holds values and layout preferences and reports changes by signal; it never uploads, submits or
stores anything. Layout: placeholder fields first ("Prompt"), then pinned fields, then one collapsible group
per node. Hidden fields are left out unless "Show hidden fields" is on. Changing pins, hidden fields or the
spec rebuilds the widgets from `_values`, which always holds what the user set.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QFrame, QLabel, QMenu, QScrollArea, QVBoxLayout, QWidget

from comfydesk.core.templates import FieldKind, FormField, FormSpec, SeedControl, next_seed
from comfydesk.ui.form.editors import SEED_MAX, SeedEditor, WheelGuard
from comfydesk.ui.form.extras import FormExtras
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.form.issues import FormIssues
from comfydesk.ui.form.parts import FieldRow, FormGroupBox
from comfydesk.ui.form.size_tools import SizeTools

__all__ = ["FormView"]

PROMPT_GROUP = "__prompt__"
PINNED_GROUP = "__pinned__"
ADVANCED_GROUP = "__advanced__"
LABEL_MAX = 116  # px: the label column's widest; longer labels wrap
SERVER_GRAPH_NOTE = "This workflow is stored on the server, which runs it as it was published"
SERVER_GRAPH_FIXED = (
    ": only the fields at the top are yours to set. The rest show the values the server uses and cannot be "
    "changed here."
)


class FormView(FormIssues, FormExtras, QScrollArea):
    """The form of the selected workflow; see the module docstring."""

    # A dict, declared `object` so it passes as-is: Signal(dict) converts to a QVariantMap, which cannot
    # hold a 64-bit unsigned seed (OverflowError above 2**63 - 1).
    values_changed = Signal(object)
    prefs_changed = Signal(object)  # {"pinned": [...], "hidden": [...], "collapsed": [...]}
    reuse_seed_requested = Signal(str)  # field key
    widgets_changed = Signal()  # the field widgets were rebuilt: the tab chain around the form changed
    #: (field key, server image name): show that image's preview (the caller fetches it and calls
    #: `set_image_thumbnail`).
    image_preview_wanted = Signal(str, str)
    image_list_wanted = Signal(str)  # field key: an image field got focus; refresh the server's image list

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workflowForm")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._spec: FormSpec | None = None
        self._server_graph = False
        self._defaults: dict[str, Any] = {}
        self._values: dict[str, Any] = {}
        self._pinned: list[str] = []
        self._hidden: set[str] = set()
        self._collapsed: set[str] = set()
        self._show_hidden = False
        self._controls: dict[str, SeedControl] = {}
        self._last_seeds: dict[str, int] = {}
        self._previews: dict[str, QImage | None] = {}  # server image name -> its preview (None: it has none)
        self._issues: dict[str, list[str]] = {}  # field key -> messages
        self._loose_issues: list[str] = []  # issues no field could take
        self._highlight: str | None = None
        self.rows: dict[str, FieldRow] = {}
        self.groups: dict[str, FormGroupBox] = {}
        self._tab_chain: list[QWidget] = []
        #: A dynamic combo's sub-field values per option while the form is open: key -> option -> values.
        self._option_values: dict[str, dict[Any, dict[str, Any]]] = {}
        self._wheel_guard = WheelGuard(self)  # one filter for every spin box and combo of the form
        self._build()

    # --------------------------------------------------------------------------------------- public API
    def set_spec(
        self,
        spec: FormSpec | None,
        values: Mapping[str, Any] | None = None,
        *,
        pinned: Iterable[str] = (),
        hidden: Iterable[str] = (),
        collapsed: Iterable[str] = (),
        server_graph: bool = False,
    ) -> None:
        """Show the form of `spec` with `values` over its defaults, and the user's layout preferences.

        `server_graph`: the server runs its stored graph (a gateway's workflow), so only placeholder fields
        can be set; the others are shown read-only, and the form says why.

        The same form again with fresh choices (the server's image list re-read) keeps its widgets and what
        the user typed, and only offers the new choices: focus and the user's place stay where they were."""
        if self._same_form(spec, pinned, hidden, server_graph):
            assert spec is not None
            self._refresh_choices(spec)
            return
        self._spec = spec
        self._server_graph = server_graph and spec is not None
        self._defaults = spec.defaults() if spec is not None else {}
        keys = set(self._defaults)
        # A stored workflow's other fields show the server's values, never ones remembered from before.
        settable = {f.key for f in spec.placeholders} if spec is not None and server_graph else keys
        self._values = dict(self._defaults)
        self._values.update({k: v for k, v in (values or {}).items() if k in settable})
        self._pinned = [k for k in dict.fromkeys(pinned) if k in keys]
        self._hidden = {k for k in hidden if k in keys}
        self._collapsed = set(collapsed) | {ADVANCED_GROUP}  # "Advanced" starts closed
        self._option_values = {}
        self._controls = {
            f.key: f.control or SeedControl.FIXED
            for f in (spec.fields() if spec else [])
            if f.kind is FieldKind.SEED
        }
        self._last_seeds = {}
        self._issues, self._loose_issues = {}, []
        self._highlight = None
        self._show_hidden = False
        self._build()

    def spec(self) -> FormSpec | None:
        return self._spec

    def focus_first_field(self) -> bool:
        """Focus the first field shown (top to bottom); False when the form has none to focus."""
        for row in self.rows.values():
            target = row.editor.focus_widget()
            if target.isVisibleTo(self) and target.isEnabled():
                target.setFocus(Qt.FocusReason.ShortcutFocusReason)
                self._scroll_to(row)
                return True
        return False

    def tab_chain(self) -> list[QWidget]:
        """The widgets Tab visits in the form, top to bottom (empty without a workflow)."""
        return list(self._tab_chain)

    def values(self) -> dict[str, Any]:
        """Every field's value, typed; image fields give a server name, a local Path or a PastedImage."""
        return dict(self._values)

    def prefs(self) -> dict[str, list[str]]:
        return {
            "pinned": list(self._pinned),
            "hidden": sorted(self._hidden),
            "collapsed": sorted(self._collapsed - {ADVANCED_GROUP}),  # "Advanced" always starts closed
        }

    def seed_controls(self) -> dict[str, SeedControl]:
        return dict(self._controls)

    def set_seed_control(self, key: str, control: SeedControl) -> None:
        self._controls[key] = control
        row = self.rows.get(key)
        if row is not None and isinstance(row.editor, SeedEditor):
            row.editor.set_control(control)

    def set_value(self, key: str, value: Any) -> None:
        """Set one field from outside (no values_changed)."""
        if key in self._values:
            self._values[key] = value
            row = self.rows.get(key)
            if row is not None:
                row.editor.set_value(value)
                self._mark_changed(key)

    def set_last_seed(self, key: str, value: int) -> None:
        """Remember the seed the last run used; enables that field's "reuse last seed" button."""
        self._last_seeds[key] = value
        row = self.rows.get(key)
        if row is not None and isinstance(row.editor, SeedEditor):
            row.editor.set_last_seed(value)

    def apply_seed_controls(self, *, rng: random.Random | None = None) -> dict[str, Any]:
        """Advance every seed by its control mode (fixed stays; increment +1; ...); returns the new values."""
        if self._spec is None:
            return {}
        changed = False
        for key, control in self._controls.items():
            if key in self.rows and not self.rows[key].editor.isEnabled():
                continue  # read-only: the server's own value
            current = self._values.get(key)
            if not isinstance(current, int) or isinstance(current, bool):
                continue  # not a number yet: validation already says so
            field = self._spec.field(key)
            new = next_seed(
                current,
                control,
                minimum=int(field.min) if field.min is not None else 0,
                maximum=int(field.max) if field.max is not None else SEED_MAX,
                rng=rng,
            )
            if new != current:
                changed = True
                self.set_value(key, new)
                self._validate_field(key)
        if changed:
            self.values_changed.emit(self.values())
        return self.values()

    def reset_to_defaults(self) -> None:
        """Every field back to the workflow's own value."""
        self._values = dict(self._defaults)
        for key, row in self.rows.items():
            row.editor.set_value(self._values.get(key))
            self._mark_changed(key)
        self.clear_issues()
        self.values_changed.emit(self.values())

    def reset_field(self, key: str) -> None:
        if key in self._defaults:
            self._values[key] = self._defaults[key]
            row = self.rows.get(key)
            if row is not None:
                row.editor.set_value(self._defaults[key])
            self._validate_field(key)
            self._mark_changed(key)
            self.values_changed.emit(self.values())

    def highlight_node(self, node_id: str | None) -> None:
        """Accent the group of `node_id` (the node executing now); None clears it."""
        self._highlight = node_id
        for key, group in self.groups.items():
            group.set_active(node_id is not None and key == node_id)

    def focus_field(self, key: str) -> None:
        """Bring a field into view (expanding its group, showing it if hidden) and give it focus."""
        if key not in self._values:
            return
        if key not in self.rows:
            self._show_hidden = True
            self._build()
        row = self.rows.get(key)
        if row is None:
            return
        group = self._group_of(row)
        if group is not None and group.collapsed:
            group.set_collapsed(False)
        target = row.editor.focus_widget()
        target.setFocus(Qt.FocusReason.OtherFocusReason)
        # Scroll once the expanded group has been laid out.
        QTimer.singleShot(0, lambda: self._scroll_to(row))
        self._scroll_to(row)

    def set_show_hidden(self, show: bool) -> None:
        if show != self._show_hidden:
            self._show_hidden = show
            self._build()

    def set_pinned(self, key: str, pinned: bool) -> None:
        if pinned and key not in self._pinned:
            self._pinned.append(key)
        elif not pinned and key in self._pinned:
            self._pinned.remove(key)
        else:
            return
        self._build()
        self.prefs_changed.emit(self.prefs())

    def set_hidden(self, key: str, hidden: bool) -> None:
        if hidden == (key in self._hidden):
            return
        (self._hidden.add if hidden else self._hidden.discard)(key)
        self._build()
        self.prefs_changed.emit(self.prefs())

    # --------------------------------------------------------------------------------------- building
    def _build(self) -> None:
        old = self.takeWidget()
        if old is not None:
            old.deleteLater()
        self.rows, self.groups = {}, {}
        self.size_tools: dict[str, SizeTools] = {}
        self._tab_chain = []
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
            self.setWidget(content)
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

        titles = {g.node_id: g.title for g in spec.groups}
        shown = [f for f in spec.fields() if self._show_hidden or f.key not in self._hidden]
        pinned = [f for k in self._pinned for f in shown if f.key == k]
        placeholders = [f for f in shown if f.is_placeholder and f.key not in self._pinned]
        if placeholders:
            self._add_group(layout, "", PROMPT_GROUP, placeholders, titles, collapsible=False)
        if pinned:
            self._add_group(layout, "Pinned", PINNED_GROUP, pinned, titles, collapsible=True, pinned=True)
        advanced: list[FormField] = []
        for group in spec.groups:
            fields: list[FormField] = []
            for f in group.fields:
                if f not in shown or f.key in self._pinned:
                    continue
                (advanced if f.advanced else fields).extend((f, *self._sub_fields(f)))
            if not fields and not group.notes:
                continue
            box = self._add_group(
                layout,
                group.title,
                group.node_id,
                fields,
                titles,
                collapsible=True,
                after=self._add_size_tools,
            )
            tip = f"Node #{group.node_id} ({group.class_type})"
            if box.header is not None:
                box.header.setToolTip(tip)
            for text in group.notes:
                box.add_note(text).setToolTip(tip)
        if advanced:
            self._add_group(
                layout, "Advanced", ADVANCED_GROUP, advanced, titles, collapsible=True, pinned=True
            )
        layout.addStretch(1)
        # One label column for the whole form, so editors line up across groups; long labels wrap.
        width = min(LABEL_MAX, max((r.label.sizeHint().width() for r in self.rows.values()), default=0))
        for box in self.groups.values():
            indent = 0 if box.header is not None else box.grid.contentsMargins().left() + 14
            for row in box.rows:
                if row.label.sizeHint().width() > width:
                    row.label.setWordWrap(True)
                row.label.setFixedWidth(width + indent)
        self.setWidget(content)
        self._apply_tab_order()
        self._refresh_issues()
        if self._highlight is not None:
            self.highlight_node(self._highlight)
        self.widgets_changed.emit()

    def _as_widget(self) -> QWidget:
        return self

    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange:  # light <-> dark: the style-sheet reds follow
            self._style_error_box()
            for group in self.groups.values():
                group.repolish()
            for row in self.rows.values():
                row.update_accents()
        super().changeEvent(event)

    def _add_group(
        self,
        layout: QVBoxLayout,
        title: str,
        key: str,
        fields: list[FormField],
        titles: Mapping[str, str],
        *,
        collapsible: bool,
        pinned: bool = False,
        after: Callable[[FormGroupBox, FormField], None] | None = None,
    ) -> FormGroupBox:
        group = FormGroupBox(
            title,
            key=key,
            collapsible=collapsible,
            collapsed=key in self._collapsed,
            parent=layout.parentWidget(),
        )
        group.collapsed_changed.connect(lambda collapsed, k=key: self._group_collapsed(k, collapsed))
        for field in fields:
            node_title = titles.get(field.node_id or "", "")
            label = f"{field.label} · {node_title}" if pinned and node_title else field.label
            context = f"{node_title} (#{field.node_id}), input {field.input_name}" if field.node_id else ""
            row = FieldRow(
                field,
                default=self._defaults.get(field.key),
                label_text=label,
                context=context,
                hidden=field.key in self._hidden,
                parent=group.body,
            )
            self._wire(row)
            if self._server_graph and not field.is_placeholder:
                for widget in (row.editor, row.actions):
                    widget.setEnabled(False)
                row.editor.setToolTip(f"Set on the server. {row.editor.toolTip()}")
            group.add_row(row)
            self.rows[field.key] = row
            self._want_preview(field.key)
            if after is not None:
                after(group, field)
        self.groups[key] = group
        layout.addWidget(group)
        return group

    def _wire(self, row: FieldRow) -> None:
        key, editor = row.key, row.editor
        editor.set_value(self._values.get(key))
        editor.edited.connect(lambda k=key: self._edited(k))
        self._wheel_guard.guard(editor)
        if isinstance(editor, SeedEditor):
            editor.set_control(self._controls.get(key, SeedControl.FIXED))
            editor.control_changed.connect(lambda c, k=key: self._controls.__setitem__(k, c))
            editor.reuse_requested.connect(lambda k=key: self._reuse_seed(k))
            if key in self._last_seeds:
                editor.set_last_seed(self._last_seeds[key])
        if isinstance(editor, ImageEditor):
            editor.focused.connect(lambda k=key: self.image_list_wanted.emit(k))
        row.set_changed(self._values.get(key) != self._defaults.get(key))
        row.reset.clicked.connect(lambda _c=False, k=key: self.reset_field(k))
        row.pin.clicked.connect(lambda _c=False, k=key: self.set_pinned(k, k not in self._pinned))
        row.hide.clicked.connect(lambda _c=False, k=key: self.set_hidden(k, k not in self._hidden))
        if key in self._pinned:
            row.pin.setText("↓")
            row.pin.setToolTip("Unpin")
            row.pin.setAccessibleName(f"Unpin {row.field.label.lower()}")
        for widget in (row.label, row.frame):
            widget.customContextMenuRequested.connect(
                lambda pos, w=widget, k=key: self._context_menu(k, w.mapToGlobal(pos))
            )

    def _apply_tab_order(self) -> None:
        chain: list[QWidget] = [self.show_hidden_box] if self.show_hidden_box.isVisibleTo(self) else []
        for group in self.groups.values():
            if group.header is not None:
                chain.append(group.header)
            for row in group.rows:
                chain.extend(row.editor.focus_chain())
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)
        self._tab_chain = chain

    # --------------------------------------------------------------------------------------- reactions
    def _edited(self, key: str) -> None:
        row = self.rows.get(key)
        if row is None:
            return
        before = self._values.get(key)
        self._values[key] = row.editor.value()
        if row.field.is_dynamic_combo and before != self._values[key]:
            self._switch_option(row.field, before, self._values[key])
        self._validate_field(key)
        self._mark_changed(key)
        if isinstance(row.editor, ImageEditor):
            self._want_preview(key)
        self.values_changed.emit(self.values())
        if row.field.is_dynamic_combo:  # its sub-fields follow the option; rebuilt once the editor returns
            QTimer.singleShot(0, self._build)

    def _scroll_to(self, row: FieldRow) -> None:
        if row.frame.isVisibleTo(self):
            self.ensureWidgetVisible(row.frame, 20, 40)

    def _group_of(self, row: FieldRow) -> FormGroupBox | None:
        return next((g for g in self.groups.values() if row in g.rows), None)

    def _group_collapsed(self, key: str, collapsed: bool) -> None:
        if collapsed == (key in self._collapsed):
            return
        (self._collapsed.add if collapsed else self._collapsed.discard)(key)
        if self._issues:
            self._refresh_issues()  # a problem went out of sight (or came back): the box at the top follows
        self.prefs_changed.emit(self.prefs())

    def _reuse_seed(self, key: str) -> None:
        if key in self._last_seeds:
            self.set_value(key, self._last_seeds[key])
            self._edited(key)
        self.reuse_seed_requested.emit(key)

    def _fill_menu(self, menu: QMenu, key: str) -> None:
        menu.clear()
        default = self._defaults.get(key)
        menu.addAction("Reset to default", lambda: self.reset_field(key)).setEnabled(
            self._values.get(key) != default
        )
        menu.addSeparator()
        pinned = key in self._pinned
        menu.addAction("Unpin" if pinned else "Pin to top", lambda: self.set_pinned(key, not pinned))
        hidden = key in self._hidden
        menu.addAction("Show field" if hidden else "Hide field", lambda: self.set_hidden(key, not hidden))

    def _context_menu(self, key: str, where: QPoint) -> None:
        menu = QMenu(self)
        self._fill_menu(menu, key)
        menu.aboutToHide.connect(menu.deleteLater)
        menu.popup(where)

    def set_unavailable(self, fields: Mapping[str, str]) -> None:
        """Grey out these fields (key -> why, shown as their tooltip): they belong to a node the server
        lacks. Applies to the widgets shown now; call it again after `widgets_changed`."""
        for key, reason in fields.items():
            row = self.rows.get(key)
            if row is None:
                continue
            widgets: tuple[QWidget, ...] = (row.label, row.editor, row.reset)
            for widget in widgets:
                widget.setEnabled(False)
            for widget in (row.label, row.editor, row.editor.focus_widget()):
                widget.setToolTip(reason)
