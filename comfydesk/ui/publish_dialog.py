"""The publish dialog: put a workflow in the gateway's shared library, or update one that is there.

It names the workflow (name, description) and lists the form's fields, each with a checkbox "becomes a
{placeholder}" and the placeholder's name; the people who run the stored workflow set exactly those. The
dialog hands its choices to `PublishModel` and shows what the server refused, one problem per line. Opened
window-modal with `open()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.publish import PublishField, PublishModel, PublishResult, publish_fields
from comfydesk.ui.theme import accent_palette, error_color, set_style

__all__ = ["PlaceholderRow", "PublishDialog"]


class PlaceholderRow:
    """One field of the form: its label, "becomes a {name}", and the name."""

    def __init__(self, field: PublishField, grid: QGridLayout, row: int, parent: QWidget) -> None:
        self.field = field
        self.label = QLabel(field.label, parent)
        self.label.setWordWrap(True)  # long node titles wrap instead of pushing the name off the dialog
        self.check = QCheckBox(parent)
        self.check.setObjectName("placeholderCheck")
        self.check.setChecked(field.chosen)
        self.name = QLineEdit(field.placeholder, parent)
        self.name.setObjectName("placeholderName")
        self.name.setAccessibleName(f"Placeholder name for {field.label}")
        self.name.setMinimumWidth(140)
        self.name.setMaximumWidth(240)
        self.check.toggled.connect(self._update)
        self.name.textChanged.connect(self._update)
        grid.addWidget(self.label, row, 0)
        grid.addWidget(self.check, row, 1)
        grid.addWidget(self.name, row, 2)
        self._update()

    @property
    def choice(self) -> str | None:
        return self.name.text().strip() if self.check.isChecked() else None

    def _update(self) -> None:
        self.check.setText(f"becomes a {{{self.name.text().strip() or '…'}}}")
        self.name.setEnabled(self.check.isChecked())


class PublishDialog(QDialog):
    """Publish `current` (a local workflow) or update it (a gateway's); see the module docstring."""

    def __init__(
        self,
        publisher: PublishModel,
        current: CurrentWorkflow,
        values: Mapping[str, Any],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        assert current.spec is not None
        self.setObjectName("publishDialog")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._publisher = publisher
        self._current = current
        self._spec = current.spec
        self._values = dict(values)
        self.updating = current.runs_on_server
        self._workflow_id = current.entry.workflow_id if self.updating else None
        self.setWindowTitle("Update on server" if self.updating else "Publish to server")

        self.name = QLineEdit(current.entry.name)
        self.name.setObjectName("publishName")
        description = current.entry.description or (current.workflow.description if current.workflow else "")
        self.description = QPlainTextEdit(description)
        self.description.setObjectName("publishDescription")
        self.description.setTabChangesFocus(True)
        self.description.setFixedHeight(64)
        head = QFormLayout()
        head.addRow("&Name", self.name)
        head.addRow("&Description", self.description)

        intro = QLabel(
            "Tick the inputs the people running it may set: each becomes a {placeholder} they fill in. "
            "Everything else is stored with the values the form has now."
        )
        intro.setWordWrap(True)
        body = QWidget()
        grid = QGridLayout(body)
        grid.setColumnStretch(0, 1)
        self.rows = [PlaceholderRow(f, grid, i, body) for i, f in enumerate(publish_fields(self._spec))]
        grid.setRowStretch(len(self.rows), 1)
        scroll = QScrollArea()
        scroll.setObjectName("publishFields")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)

        self.errors = QLabel()
        self.errors.setObjectName("publishErrors")
        self.errors.setWordWrap(True)
        self.errors.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        set_style(self.errors, f"color: {error_color(accent_palette(self)).name()};")
        self.errors.setVisible(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.publish_button = QPushButton("&Update" if self.updating else "&Publish")
        self.publish_button.setObjectName("publishButton")
        self.publish_button.setDefault(True)
        buttons.addButton(self.publish_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.publish)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(intro)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.errors)
        layout.addWidget(buttons)
        self.resize(720, 520)

        publisher.failed.connect(self._on_failed)
        publisher.done.connect(self._on_done)
        publisher.busy_changed.connect(self._on_busy)
        self._listening = True

    def row(self, key: str) -> PlaceholderRow:
        """The row of form field `key` (tests and accessibility checks)."""
        return next(r for r in self.rows if r.field.key == key)

    def choices(self) -> dict[str, str | None]:
        return {r.field.key: r.choice for r in self.rows}

    def publish(self) -> None:
        self.show_problems([])
        self._publisher.publish(
            self.name.text(),
            self.description.toPlainText(),
            self._spec,
            self._values,
            self.choices(),
            workflow_id=self._workflow_id,
        )

    def show_problems(self, lines: list[str]) -> None:
        self.errors.setText("\n".join(lines))
        self.errors.setVisible(bool(lines))

    def _on_failed(self, lines: object) -> None:
        if isinstance(lines, list):
            self.show_problems([str(line) for line in lines])

    def _on_done(self, result: object) -> None:
        if isinstance(result, PublishResult) and result.action in ("published", "updated"):
            self.accept()

    def _on_busy(self, busy: bool) -> None:
        self.publish_button.setEnabled(not busy)

    def done(self, result: int) -> None:
        # The publisher outlives the dialog: stop listening before Qt deletes it.
        if self._listening:
            self._listening = False
            self._unbind()
        super().done(result)

    def _unbind(self) -> None:
        for signal, slot in (
            (self._publisher.failed, self._on_failed),
            (self._publisher.done, self._on_done),
            (self._publisher.busy_changed, self._on_busy),
        ):
            signal.disconnect(slot)
