"""FormView: the generated form of a workflow.

The view holds values and layout preferences and reports changes by signal; it never uploads, submits or
stores anything. Layout: placeholder fields first ("Prompt"), then pinned fields, then one collapsible group
per node. Hidden fields are left out unless "Show hidden fields" is on. Changing pins, hidden fields or the
spec rebuilds the widgets from `_values`, which always holds what the user set. How the widgets are built
(what the first paint shows at once, the rest after) is in `build.py`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QFrame, QMenu, QScrollArea, QToolButton, QWidget

from comfydesk.core.templates import FieldKind, FormSpec, SeedControl, next_seed
from comfydesk.ui.form.build import ADVANCED_GROUP, PINNED_GROUP, PROMPT_GROUP, FormBuild
from comfydesk.ui.form.editors import SEED_MAX, SeedEditor, WheelGuard
from comfydesk.ui.form.extras import FormExtras
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.form.issues import FormIssues
from comfydesk.ui.form.pages import FormPages
from comfydesk.ui.form.parts import FieldRow

__all__ = ["ADVANCED_GROUP", "PINNED_GROUP", "PROMPT_GROUP", "FormView"]


class FormView(FormBuild, FormIssues, FormExtras, FormPages, QScrollArea):
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
        self._unavailable: dict[str, str] = {}  # field key -> why it cannot be set (see set_unavailable)
        self._init_build()
        self._init_pages()
        self.verticalScrollBar().actionTriggered.connect(self._scroll_action)  # dragged, clicked
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
        defaults = spec.defaults() if spec is not None else {}
        keys = set(defaults)
        # A stored workflow's other fields show the server's values, never ones remembered from before.
        settable = {f.key for f in spec.placeholders} if spec is not None and server_graph else keys
        start = dict(defaults)
        start.update({k: v for k, v in (values or {}).items() if k in settable})
        wanted: dict[str, Any] = {
            "_server_graph": server_graph and spec is not None,
            "_defaults": defaults,
            "_values": start,
            "_pinned": [k for k in dict.fromkeys(pinned) if k in keys],
            "_hidden": {k for k in hidden if k in keys},
            "_collapsed": set(collapsed) | {ADVANCED_GROUP},  # "Advanced" starts closed
        }
        if spec is not self._spec:
            page = self._take_page(spec)
            self._put_aside()  # kept for going back to it (see pages.py)
            if self._bring_back(page, spec, wanted):
                return
        self._spec = spec
        for name, value in wanted.items():
            setattr(self, name, value)
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
        self._unavailable = {}
        self._build()

    def spec(self) -> FormSpec | None:
        return self._spec

    def focus_first_field(self) -> bool:
        """Focus the first field shown (top to bottom); False when the form has none to focus."""
        for _attempt in range(2):
            for row in self._rows.values():
                target = row.editor.focus_widget()
                if target.isVisibleTo(self) and target.isEnabled():
                    target.setFocus(Qt.FocusReason.ShortcutFocusReason)
                    self._scroll_to(row)
                    return True
            if not self.building():
                break
            self._flush()  # none among the rows built so far: the rest of the form decides
        return False

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
        row = self._rows.get(key)
        if row is not None and isinstance(row.editor, SeedEditor):
            row.editor.set_control(control)

    def set_value(self, key: str, value: Any) -> None:
        """Set one field from outside (no values_changed)."""
        if key in self._values:
            self._values[key] = value
            row = self._rows.get(key)
            if row is not None:
                row.editor.set_value(value)
                self._mark_changed(key)

    def set_last_seed(self, key: str, value: int) -> None:
        """Remember the seed the last run used; enables that field's "reuse last seed" button."""
        self._last_seeds[key] = value
        row = self._rows.get(key)
        if row is not None and isinstance(row.editor, SeedEditor):
            row.editor.set_last_seed(value)

    def apply_seed_controls(self, *, rng: random.Random | None = None) -> dict[str, Any]:
        """Advance every seed by its control mode (fixed stays; increment +1; ...); returns the new values."""
        if self._spec is None:
            return {}
        self._flush()  # a field's own widget says whether it is read-only
        changed = False
        for key, control in self._controls.items():
            if key in self._rows and not self._rows[key].editor.isEnabled():
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
        for key, row in self._rows.items():  # rows built later take the values from _values
            row.editor.set_value(self._values.get(key))
            self._mark_changed(key)
        self.clear_issues()
        self.values_changed.emit(self.values())

    def reset_field(self, key: str) -> None:
        if key in self._defaults:
            self._values[key] = self._defaults[key]
            row = self._rows.get(key)
            if row is not None:
                row.editor.set_value(self._defaults[key])
            self._validate_field(key)
            self._mark_changed(key)
            self.values_changed.emit(self.values())

    def highlight_node(self, node_id: str | None) -> None:
        """Accent the group of `node_id` (the node executing now); None clears it."""
        self._highlight = node_id
        for key, group in self._groups.items():  # groups built later are marked as they are made
            group.set_active(node_id is not None and key == node_id)

    def focus_field(self, key: str) -> None:
        """Bring a field into view (expanding its group, showing it if hidden) and give it focus."""
        if key not in self._values:
            return
        if key not in self._row_group:
            self._show_hidden = True
            self._build()
        self._flush()
        row = self._rows.get(key)
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

    # --------------------------------------------------------------------------------------- widgets
    def _as_widget(self) -> QWidget:
        return self

    def wheelEvent(self, event: QWheelEvent) -> None:
        self._flush()  # scrolling before the rows below the fold are in: build them now, not as they come
        super().wheelEvent(event)

    def _scroll_action(self, _action: int) -> None:
        self._flush()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() is QEvent.Type.PaletteChange:  # light <-> dark: the style-sheet reds follow
            self.drop_kept_forms()  # forms kept aside have the old reds
            self._style_error_box()
            for row in self._rows.values():
                row.update_accents()
        super().changeEvent(event)

    # --------------------------------------------------------------------------------------- reactions
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
        row.connect_buttons(functools.partial(self._wire_button, key))
        row.set_changed(self._values.get(key) != self._defaults.get(key))
        row.set_menu(functools.partial(self._context_menu, key))

    def _wire_button(self, key: str, name: str, button: QToolButton) -> None:
        """A row icon, made when first needed: reset, pin or hide `key`."""
        if name == "reset":
            button.clicked.connect(lambda _c=False: self.reset_field(key))
        elif name == "pin":
            button.clicked.connect(lambda _c=False: self.set_pinned(key, key not in self._pinned))
        else:
            button.clicked.connect(lambda _c=False: self.set_hidden(key, key not in self._hidden))

    def _edited(self, key: str) -> None:
        row = self._rows.get(key)
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

    def _group_collapsed(self, key: str, collapsed: bool) -> None:
        if collapsed == (key in self._collapsed):
            return
        (self._collapsed.add if collapsed else self._collapsed.discard)(key)
        if not collapsed:
            self._flush()  # its rows, if they were still to come
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
        lacks. Rows built after this call (below the fold, just after the first paint) get it too; a
        rebuild (pins, hidden fields) clears it: call it again after `widgets_changed`."""
        self._unavailable.update(fields)
        for key, reason in fields.items():
            row = self._rows.get(key)
            if row is not None:
                self._disable_row(row, reason)

    def _disable_row(self, row: FieldRow, reason: str) -> None:
        self._grey_out(
            row.key,
            (row.label, row.editor, row.reset),
            (row.label, row.editor, row.editor.focus_widget()),
            reason,
        )
