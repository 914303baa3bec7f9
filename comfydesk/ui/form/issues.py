"""The form's problems, each said once: on its field (red frame, the plain sentence under it). The box at the
top repeats no sentence: it holds problems no field can take, and, when a field's problem is out of sight
(in a closed group), one line naming the fields with problems as links that bring each into view.
A mixin of FormView, kept apart for its own concern."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLabel, QWidget

from comfydesk.app.run_state import PastedImage
from comfydesk.core.errors import ValidationIssue
from comfydesk.core.messages import for_issue
from comfydesk.core.templates import FormSpec
from comfydesk.ui.form.parts import FieldRow
from comfydesk.ui.theme import accent_palette, error_styles, set_style

__all__ = ["FormIssues"]


class FormIssues:
    """Issue display of FormView (which owns the state named below)."""

    _spec: FormSpec | None
    _values: dict[str, Any]
    _hidden: set[str]
    _show_hidden: bool
    _issues: dict[str, list[str]]
    _loose_issues: list[str]
    _rows: dict[str, FieldRow]
    error_box: QLabel

    if TYPE_CHECKING:

        def _build(self) -> None: ...

        def focus_field(self, key: str) -> None: ...

        def _as_widget(self) -> QWidget: ...

        def _planned_closed(self, key: str) -> bool: ...

    def show_issues(self, issues: Sequence[ValidationIssue]) -> None:
        """Mark each issue on its field (red frame, its message below, as given: the caller words it for
        the user); one no field can take goes in the box at the top, in plain words."""
        self._issues, self._loose_issues = {}, []
        for issue in issues:
            key = self._key_of(issue)
            if key is None:
                self._loose_issues.append(for_issue(issue))
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
            messages = [for_issue(i) for i in self._spec.validate(probe) if i.field_key == key]
        if messages:
            self._issues[key] = messages
        else:
            self._issues.pop(key, None)
        self._refresh_issues()

    def _refresh_issues(self) -> None:
        for key, row in self._rows.items():
            row.set_messages(self._issues.get(key, []))
        lines = [html.escape(text, quote=False) for text in self._loose_issues]
        keys = list(self._issues)
        if any(self._out_of_sight(k) for k in keys):
            links = ", ".join(
                f'<a href="field:{html.escape(k)}">{html.escape(self._describe_field(k))}</a>' for k in keys
            )
            n = len(keys)
            lines.append(f"{n} field{'s need' if n != 1 else ' needs'} a look: {links}")
        self.error_box.setText("<br>".join(lines))
        self.error_box.setVisible(bool(lines))

    def _out_of_sight(self, key: str) -> bool:
        """The field is not on screen as the form stands: left out (hidden), or in a closed group. A row
        still to be built (below the fold) counts as shown: it will be there in a moment."""
        return self._planned_closed(key)

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
            spots = {(field.node_id, field.input_name), *field.targets, *field.linked}
            if (issue.node_id, issue.input_name) in spots:
                return field.key
        return None

    def _link(self, href: str) -> None:
        if href.startswith("field:"):
            self.focus_field(href.removeprefix("field:"))

    def _style_error_box(self) -> None:
        red, tint = error_styles(accent_palette(self._as_widget()))
        set_style(
            self.error_box,
            f"QLabel#formErrors {{ border: 1px solid {red}; border-radius: 4px; padding: 6px;"
            f" background: {tint}; }}",
        )
