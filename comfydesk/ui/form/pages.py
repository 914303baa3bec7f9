"""Going back to a form: the forms of the last few workflows are kept aside, built, and put back on screen
when their workflow is picked again, instead of being built anew. A mixin of FormView.

A form is put aside as it is (its widgets, the rows still to build, what the user typed) when another
workflow's form takes its place. It comes back only when a fresh build would show the very same thing:
the same spec object (a new catalog or new server lists make new specs), the same values and the same
layout preferences, hidden fields not shown. Coming back, it starts as a fresh form does: no problems
marked, no node highlighted, no field greyed out (the caller says again what the server lacks). Anything
else is built anew. A change of palette or of the server's image list lets every kept form go.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QWidget

from comfydesk.core.templates import FormSpec
from comfydesk.ui.form.build import SETTLE_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QScrollArea

    from comfydesk.ui.form.parts import FieldRow, FormGroupBox

__all__ = ["PAGES_KEPT", "FormPages"]

#: Forms kept aside besides the one on screen (the one used longest ago goes first).
PAGES_KEPT = 8

#: What a form is, beyond its widgets: saved when it is put aside, set again when it comes back.
_STATE = (
    "_spec",
    "_server_graph",
    "_defaults",
    "_values",
    "_pinned",
    "_hidden",
    "_collapsed",
    "_controls",
    "_last_seeds",
    "_rows",
    "_groups",
    "_size_tools",
    "_tab_chain",
    "_row_group",
    "_label_width",
    "_label_widths",
    "_titles",
    "_steps",
    "_content_layout",
    "_disabled",
    "error_box",
    "show_hidden_box",
)


@dataclass
class _Page:
    content: QWidget
    state: dict[str, Any]


#: A row's widgets greyed out by `set_unavailable`: (widget, disabled on its own before, tooltip before).
Disabled = list[tuple[QWidget, bool, str]]


class FormPages:
    """Keeping built forms aside (FormView owns the state named below)."""

    _spec: FormSpec | None
    _show_hidden: bool
    _rows: dict[str, FieldRow]
    _groups: dict[str, FormGroupBox]
    _steps: Iterator[int | None] | None
    _issues: dict[str, list[str]]
    _loose_issues: list[str]
    _highlight: str | None
    _unavailable: dict[str, str]
    _option_values: dict[str, dict[Any, dict[str, Any]]]

    if TYPE_CHECKING:
        widgets_changed: SignalInstance

        def _area(self) -> QScrollArea: ...

        def _discard(self, old: QWidget) -> None: ...

        def _apply_tab_order(self) -> None: ...

        def _refresh_issues(self) -> None: ...

        def _build_more(self, steps: Iterator[int | None]) -> None: ...

    def _init_pages(self) -> None:
        self._pages: OrderedDict[int, _Page] = OrderedDict()  # id(spec) -> its form, oldest first
        self._disabled: dict[str, Disabled] = {}  # field key -> its widgets as they were (see _grey_out)

    def kept_forms(self) -> int:
        """How many forms are kept aside now (tests, diagnostics)."""
        return len(self._pages)

    def _put_aside(self) -> None:
        """Another form comes: keep this one (when it is a workflow's form) for going back to it."""
        spec = self._spec
        if spec is None or self._show_hidden:
            return
        content = self._area().takeWidget()
        if content is None:
            return
        content.hide()
        state = {name: getattr(self, name) for name in _STATE}
        # Keyed by id: the page holds `spec`, so no other spec gets its id while the page is kept. (The
        # form on screen never has a page of its own: `_take_page` took it out when it was shown.)
        self._pages[id(spec)] = _Page(content, state)
        while len(self._pages) > PAGES_KEPT:
            self._discard(self._pages.popitem(last=False)[1].content)

    def _take_page(self, spec: FormSpec | None) -> _Page | None:
        """The form kept for `spec`, taken out of the kept ones (before the one on screen goes aside, which
        could push it out)."""
        return self._pages.pop(id(spec), None) if spec is not None else None

    def _bring_back(self, page: _Page | None, spec: FormSpec | None, wanted: dict[str, Any]) -> bool:
        """Put `page` (kept for `spec`) back if it shows what a fresh build of `wanted` (the state
        `set_spec` would start from) would; False (and nothing changed on screen) otherwise."""
        if page is None or spec is None:
            return False
        saved = page.state
        if saved["_spec"] is not spec or any(saved[name] != value for name, value in wanted.items()):
            self._discard(page.content)
            return False
        for name, value in saved.items():
            setattr(self, name, value)
        # As a fresh form starts: nothing marked, highlighted or greyed out; the caller says what is now.
        self._show_hidden = False
        self._option_values = {}
        self._issues, self._loose_issues = {}, []
        self._highlight = None
        for group in self._groups.values():
            group.set_active(False)
        self._ungrey_all()
        area = self._area()
        area.setWidget(page.content)
        page.content.show()
        area.verticalScrollBar().setValue(0)
        self._apply_tab_order()
        self._refresh_issues()
        steps = self._steps
        if steps is not None:  # put aside before all its rows were in: the rest follows as for a new form
            QTimer.singleShot(round(SETTLE_SECONDS * 1000), area, lambda: self._build_more(steps))
        self.widgets_changed.emit()
        return True

    def drop_kept_forms(self) -> None:
        """Let every kept form go: they would come back out of date (a new palette or image list), or never
        (a new catalog makes every workflow's spec anew)."""
        while self._pages:
            self._discard(self._pages.popitem(last=False)[1].content)

    # --------------------------------------------------------------------------- greying out, undone
    def _grey_out(
        self, key: str, disable: tuple[QWidget, ...], explain: tuple[QWidget, ...], reason: str
    ) -> None:
        """Disable a field's `disable` widgets and give its `explain` widgets `reason` as their tooltip,
        remembering how they were."""
        if key not in self._disabled:
            self._disabled[key] = [
                (w, w.testAttribute(Qt.WidgetAttribute.WA_ForceDisabled), w.toolTip())
                for w in dict.fromkeys((*disable, *explain))
            ]
        for widget in disable:
            widget.setEnabled(False)
        for widget in explain:
            widget.setToolTip(reason)

    def _ungrey_all(self) -> None:
        """Every field greyed out by `set_unavailable` as it was before."""
        for saved in self._disabled.values():
            for widget, was_disabled, tip in saved:
                widget.setEnabled(not was_disabled)
                widget.setToolTip(tip)
        self._disabled = {}
        self._unavailable = {}
