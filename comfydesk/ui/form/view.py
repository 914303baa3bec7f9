"""FormView: the generated form of a workflow.

The view holds values and layout preferences and reports changes by signal; it never uploads, submits or
stores anything. Layout: placeholder fields first ("Prompt"), then pinned fields, then one collapsible group
per node. Hidden fields are left out unless "Show hidden fields" is on. Changing pins, hidden fields or the
spec rebuilds the widgets from `_values`, which always holds what the user set.
"""

from __future__ import annotations

import html
import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QFrame, QLabel, QMenu, QScrollArea, QVBoxLayout, QWidget

from comfydesk.app.run_state import PastedImage
from comfydesk.core.errors import ValidationIssue
from comfydesk.core.templates import FieldKind, FormField, FormSpec, SeedControl, next_seed
from comfydesk.ui.form.editors import SEED_MAX, SeedEditor, WheelGuard
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.form.parts import FieldRow, FormGroupBox
from comfydesk.ui.theme import accent_palette, error_styles, set_style

__all__ = ["FormView"]

PROMPT_GROUP = "__prompt__"
PINNED_GROUP = "__pinned__"
SERVER_GRAPH_NOTE = "This workflow is stored on the server, which runs it as it was published"
SERVER_GRAPH_FIXED = (
    ": only the fields at the top are yours to set. The rest show the values the server uses and cannot be "
    "changed here."
)


class FormView(QScrollArea):
    """The form of the selected workflow; see the module docstring."""

    # A dict, declared `object` so it passes as-is: Signal(dict) converts to a QVariantMap, which cannot
    # hold a 64-bit unsigned seed (OverflowError above 2**63 - 1).
    values_changed = Signal(object)
    prefs_changed = Signal(object)  # {"pinned": [...], "hidden": [...], "collapsed": [...]}
    reuse_seed_requested = Signal(str)  # field key
    widgets_changed = Signal()  # the field widgets were rebuilt: the tab chain around the form changed

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
        self._thumbnails: dict[str, QImage | None] = {}
        self._issues: dict[str, list[str]] = {}  # field key -> messages
        self._loose_issues: list[str] = []  # issues no field could take
        self._highlight: str | None = None
        self.rows: dict[str, FieldRow] = {}
        self.groups: dict[str, FormGroupBox] = {}
        self._tab_chain: list[QWidget] = []
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
        can be set; the others are shown read-only, and the form says why."""
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
        self._collapsed = set(collapsed)
        self._controls = {
            f.key: f.control or SeedControl.FIXED
            for f in (spec.fields() if spec else [])
            if f.kind is FieldKind.SEED
        }
        self._last_seeds = {}
        self._thumbnails = {}
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
            "collapsed": sorted(self._collapsed),
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

    def set_last_seed(self, key: str, value: int) -> None:
        """Remember the seed the last run used; enables that field's "reuse last seed" button."""
        self._last_seeds[key] = value
        row = self.rows.get(key)
        if row is not None and isinstance(row.editor, SeedEditor):
            row.editor.set_last_seed(value)

    def set_image_thumbnail(self, key: str, image: QImage | None) -> None:
        """Show a thumbnail (made by the caller, off the UI thread) for an image field's server image."""
        self._thumbnails[key] = image
        row = self.rows.get(key)
        if row is not None and isinstance(row.editor, ImageEditor):
            row.editor.set_thumbnail(image)

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
        self.clear_issues()
        self.values_changed.emit(self.values())

    def reset_field(self, key: str) -> None:
        if key in self._defaults:
            self._values[key] = self._defaults[key]
            row = self.rows.get(key)
            if row is not None:
                row.editor.set_value(self._defaults[key])
            self._validate_field(key)
            self.values_changed.emit(self.values())

    def show_issues(self, issues: Sequence[ValidationIssue]) -> None:
        """Mark each issue on its field (red frame, message below) and list all of them at the top."""
        self._issues, self._loose_issues = {}, []
        for issue in issues:
            key = self._key_of(issue)
            if key is None:
                self._loose_issues.append(issue.describe())
            else:
                self._issues.setdefault(key, []).append(issue.message)
        if any(k in self._hidden for k in self._issues) and not self._show_hidden:
            self._show_hidden = True  # a problem must never sit on a field nobody can see
            self._build()
        else:
            self._refresh_issues()

    def clear_issues(self) -> None:
        self._issues, self._loose_issues = {}, []
        self._refresh_issues()

    def issues(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._issues.items()}

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
        for group in spec.groups:
            fields = [
                shown_field
                for f in group.fields
                if f in shown and f.key not in self._pinned
                for shown_field in (f, *self._sub_fields(f))
            ]
            if not fields:
                continue
            header = f"{group.title}  (#{group.node_id}"
            header += f" · {group.class_type})" if group.class_type != group.title else ")"
            self._add_group(layout, header, group.node_id, fields, titles, collapsible=True)
        layout.addStretch(1)
        # One label column for the whole form, so editors line up across groups.
        width = max((r.label.sizeHint().width() for r in self.rows.values()), default=0)
        for box in self.groups.values():
            indent = 0 if box.header is not None else box.grid.contentsMargins().left() + 14
            for row in box.rows:
                row.label.setMinimumWidth(width + indent)
        self.setWidget(content)
        self._apply_tab_order()
        self._refresh_issues()
        if self._highlight is not None:
            self.highlight_node(self._highlight)
        self.widgets_changed.emit()

    def _sub_fields(self, field: FormField) -> tuple[FormField, ...]:
        """A dynamic combo's fields for the option it holds now; each option's values are kept while the
        form is open (they start at the workflow's values, else the defaults)."""
        subs = field.sub_fields(self._values.get(field.key, field.value))
        for sub in subs:
            self._values.setdefault(sub.key, sub.value)
            self._defaults.setdefault(sub.key, sub.value)
        return subs

    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange:  # light <-> dark: the style-sheet reds follow
            self._style_error_box()
            for group in self.groups.values():
                group.repolish()
            for row in self.rows.values():
                row.update_accents()
        super().changeEvent(event)

    def _style_error_box(self) -> None:
        red, tint = error_styles(accent_palette(self))
        set_style(
            self.error_box,
            f"QLabel#formErrors {{ border: 1px solid {red}; border-radius: 4px; padding: 6px;"
            f" background: {tint}; }}",
        )

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
    ) -> None:
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
                for widget in (row.editor, row.reset):
                    widget.setEnabled(False)
                row.editor.setToolTip(f"Set on the server. {row.editor.toolTip()}")
            group.add_row(row)
            self.rows[field.key] = row
        self.groups[key] = group
        layout.addWidget(group)

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
        if isinstance(editor, ImageEditor) and isinstance(self._thumbnails.get(key), QImage):
            editor.set_thumbnail(self._thumbnails[key])
        menu = QMenu(row.reset)
        menu.aboutToShow.connect(lambda m=menu, k=key: self._fill_menu(m, k))
        row.reset.setMenu(menu)
        row.reset.clicked.connect(lambda _c=False, k=key: self.reset_field(k))
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
        self._values[key] = row.editor.value()
        self._validate_field(key)
        self.values_changed.emit(self.values())
        if row.field.is_dynamic_combo:  # its sub-fields follow the option; rebuilt once the editor returns
            QTimer.singleShot(0, self._build)

    def _validate_field(self, key: str) -> None:
        if self._spec is None:
            return
        value = self._values.get(key)
        if isinstance(value, Path | PastedImage):
            messages: list[str] = []  # a local image becomes a server name when the caller uploads it
        else:
            probe = {key: value}
            for owner in self._spec.fields():  # a dynamic combo's sub-field is checked for its option
                chosen = self._values.get(owner.key)
                if any(sub.key == key for sub in owner.sub_fields(chosen)):
                    probe[owner.key] = chosen
            messages = [i.message for i in self._spec.validate(probe) if i.field_key == key]
        if messages:
            self._issues[key] = messages
        else:
            self._issues.pop(key, None)
        self._refresh_issues()

    def _refresh_issues(self) -> None:
        for key, row in self.rows.items():
            row.set_messages(self._issues.get(key, []))
        lines: list[str] = []
        for key, messages in self._issues.items():
            label = html.escape(self._describe_field(key))
            for message in messages:
                lines.append(f'<a href="field:{html.escape(key)}">{label}</a>: {html.escape(message)}')
        lines += [html.escape(text) for text in self._loose_issues]
        if lines:
            n = len(lines)
            head = f"<b>{n} problem{'s' if n != 1 else ''} to fix before running</b>"
            self.error_box.setText(head + "<br>" + "<br>".join(f"• {line}" for line in lines))
        self.error_box.setVisible(bool(lines))

    def _describe_field(self, key: str) -> str:
        if self._spec is None:
            return key
        field = self._spec.field(key)
        title = next((g.title for g in self._spec.groups if g.node_id == field.node_id), "")
        return f"{field.label} ({title})" if title else field.label

    def _key_of(self, issue: ValidationIssue) -> str | None:
        if issue.field_key and issue.field_key in self._values:
            return issue.field_key
        if self._spec is None:
            return None
        for field in self._spec.fields():
            spots = {(field.node_id, field.input_name), *field.targets}
            if (issue.node_id, issue.input_name) in spots:
                return field.key
        return None

    def _link(self, href: str) -> None:
        if href.startswith("field:"):
            self.focus_field(href.removeprefix("field:"))

    def _scroll_to(self, row: FieldRow) -> None:
        if row.frame.isVisibleTo(self):
            self.ensureWidgetVisible(row.frame, 20, 40)

    def _group_of(self, row: FieldRow) -> FormGroupBox | None:
        return next((g for g in self.groups.values() if row in g.rows), None)

    def _group_collapsed(self, key: str, collapsed: bool) -> None:
        if collapsed == (key in self._collapsed):
            return
        (self._collapsed.add if collapsed else self._collapsed.discard)(key)
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
