"""The form's problems: each on its field (red frame, message under it) and all of them listed at the top,
with links that bring the field into view. A mixin of FormView, kept apart for its own concern."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLabel, QWidget

from comfydesk.app.run_state import PastedImage
from comfydesk.core.errors import ValidationIssue
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
    rows: dict[str, FieldRow]
    error_box: QLabel

    if TYPE_CHECKING:

        def _build(self) -> None: ...

        def focus_field(self, key: str) -> None: ...

        def _as_widget(self) -> QWidget: ...

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
