"""Building blocks of the form: a field row (label, editor, reset, error) and a collapsible node group."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.core.templates import FieldKind, FormField
from comfydesk.ui.form.color_field import ColorEditor
from comfydesk.ui.form.editors import KIND_EDITORS, Editor, StringEditor
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.theme import accent_palette, error_color, set_style

__all__ = ["FieldRow", "FormGroupBox", "make_editor"]

SHOW_AGAIN = "⊕"  # the hide button of a hidden field (shown with "Show hidden fields") brings it back

_FRAME_OK = "QFrame#fieldFrame { border: 1px solid transparent; border-radius: 4px; }"


def _frame_bad(red: str) -> str:
    return f"QFrame#fieldFrame {{ border: 1px solid {red}; border-radius: 4px; }}"


def make_editor(field: FormField, parent: QWidget | None = None) -> Editor:
    if field.kind is FieldKind.IMAGE:
        return ImageEditor(field, parent)
    if field.kind is FieldKind.INT and field.display == "color":
        return ColorEditor(field, parent)
    return KIND_EDITORS.get(field.kind, StringEditor)(field, parent)


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, str):
        text = repr(value) if value == "" else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FieldRow:
    """The widgets of one field inside a group's grid; not a widget itself so labels align across rows."""

    def __init__(
        self,
        field: FormField,
        *,
        default: Any,
        label_text: str,
        context: str,
        hidden: bool,
        parent: QWidget,
    ) -> None:
        self.field = field
        self.key = field.key
        self.messages: list[str] = []
        self.label = QLabel(label_text, parent)
        self.label.setObjectName("fieldLabel")
        self.label.setWordWrap(False)
        self.label.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        if hidden:
            self.label.setEnabled(False)
            self.label.setText(f"{label_text} (hidden)")
        self.frame = QFrame(parent)
        self.frame.setObjectName("fieldFrame")
        self.frame.setStyleSheet(_FRAME_OK)
        self.frame.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        frame_layout = QHBoxLayout(self.frame)
        frame_layout.setContentsMargins(1, 1, 1, 1)
        self.editor = make_editor(field, self.frame)
        frame_layout.addWidget(self.editor)
        self.linked: QLabel | None = None
        if field.linked:  # one value the workflow feeds to several nodes
            self.linked = QLabel(f"used by {len(field.linked) + 1} nodes", self.frame)
            self.linked.setObjectName("linkedNote")
            self.linked.setEnabled(False)  # muted
            self.linked.setToolTip("The workflow links these inputs: this one value sets all of them")
            frame_layout.addWidget(self.linked)
        self.label.setBuddy(self.editor.focus_widget())

        # Row actions: reset (only while the value differs from the default), pin and hide (on hover).
        self.actions = QWidget(parent)
        self.actions.setObjectName("fieldActions")
        actions = QHBoxLayout(self.actions)
        actions.setContentsMargins(0, 0, 0, 0)
        actions.setSpacing(0)
        self.reset = self._action_button(
            "resetButton", "↺", f"Back to the workflow's value ({_short(default, 40)})"
        )
        self.reset.setAccessibleName(f"Reset {field.label.lower()} to default")
        self.pin = self._action_button("pinButton", "↑", "Pin to the top of the form")
        self.pin.setAccessibleName(f"Pin {field.label.lower()}")
        self.hide = self._action_button(
            "hideButton", "⊘", "Hide this field (Show hidden fields brings it back)"
        )
        self.hide.setAccessibleName(f"Hide {field.label.lower()}")
        if hidden:
            self.hide.setText(SHOW_AGAIN)
            self.hide.setToolTip("Show this field again")
        for button in (self.reset, self.pin, self.hide):
            actions.addWidget(button)
        self.reset.setVisible(False)
        self._hovered = False
        self._hover = _HoverWatch(self)
        for widget in (self.label, self.frame, self.actions):
            widget.installEventFilter(self._hover)
        self.set_hovered(False)

        self.error = QLabel(parent)
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self._red = ""
        self.update_accents()
        self.error.setVisible(False)

        tip = field.tooltip.strip()
        tip = (tip + "\n\n" if tip else "") + f"Default: {_short(default)}"
        if context:
            tip += f"\n{context}"
        main = self.editor.focus_widget()
        for widget in (self.label, self.editor, main):
            widget.setToolTip(tip)
        main.setAccessibleName(field.label)
        main.setAccessibleDescription(context)
        self.context = context

    def _action_button(self, name: str, text: str, tip: str) -> QToolButton:
        button = QToolButton(self.actions)
        button.setObjectName(name)
        button.setAutoRaise(True)
        button.setText(text)
        button.setToolTip(tip)
        button.setFixedSize(20, 22)
        button.setFocusPolicy(
            Qt.FocusPolicy.NoFocus
        )  # one Tab stop per field; the context menu has these too
        policy = button.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # nothing moves when the icons come and go
        button.setSizePolicy(policy)
        return button

    def set_changed(self, changed: bool) -> None:
        """Show the reset button only while the value differs from the workflow's."""
        self.reset.setVisible(changed)

    def set_hovered(self, hovered: bool) -> None:
        """Pin and Hide show while the pointer is over the row (always for a hidden field: it needs Show)."""
        self._hovered = hovered
        self.pin.setVisible(hovered)
        self.hide.setVisible(hovered or self.hide.text() == SHOW_AGAIN)

    def place(self, grid: QGridLayout, row: int) -> int:
        """Put the row's widgets on `grid` from `row`; returns the next free row."""
        top = Qt.AlignmentFlag.AlignTop if self.field.kind in (FieldKind.TEXT, FieldKind.IMAGE) else 0
        align = Qt.AlignmentFlag.AlignLeft | (top or Qt.AlignmentFlag.AlignVCenter)
        if top:
            self.label.setContentsMargins(0, 6, 0, 0)
        grid.addWidget(self.label, row, 0, align)
        if self.editor.compact:
            grid.addWidget(self.frame, row, 1, Qt.AlignmentFlag.AlignLeft)
        else:
            grid.addWidget(self.frame, row, 1)
        grid.addWidget(self.actions, row, 2, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.error, row + 1, 1, 1, 2)
        return row + 2

    def update_accents(self) -> None:
        """Pick the error red for the current palette (by its lightness: readable on light and dark)."""
        self._red = error_color(accent_palette(self.error)).name()
        set_style(self.error, f"color: {self._red};")
        set_style(self.frame, _frame_bad(self._red) if self.messages else _FRAME_OK)

    def set_messages(self, messages: list[str]) -> None:
        if messages == self.messages:
            return
        self.messages = list(messages)
        self.error.setText("\n".join(messages))
        self.error.setVisible(bool(messages))
        self.frame.setStyleSheet(_frame_bad(self._red) if messages else _FRAME_OK)
        self.editor.focus_widget().setAccessibleDescription(" ".join(messages) or self.context)


class _HoverWatch(QObject):
    """Shows a row's Pin and Hide icons while the pointer is over any of its widgets."""

    def __init__(self, row: FieldRow) -> None:
        super().__init__(row.actions)
        self._row = row

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Enter:
            self._row.set_hovered(True)
        elif kind == QEvent.Type.Leave:
            self._row.set_hovered(False)
        return False


class FormGroupBox(QFrame):
    """A titled group of fields; collapsible when it has a header button."""

    collapsed_changed = Signal(bool)

    def __init__(
        self, title: str, *, key: str, collapsible: bool, collapsed: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.key = key
        self.setObjectName("formGroup")
        self.setProperty("groupKey", key)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 4, 6)
        layout.setSpacing(2)
        self.header: QToolButton | None = None
        self.title: QLabel | None = None
        if collapsible:
            self.header = QToolButton(self)
            self.header.setStyleSheet(
                "QToolButton#groupHeader { border: none; border-bottom: 1px solid palette(mid);"
                " padding: 4px 2px; text-align: left; }"
            )
            self.header.setObjectName("groupHeader")
            self.header.setText(title)
            self.header.setCheckable(True)
            self.header.setChecked(not collapsed)
            self.header.setAutoRaise(True)
            self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            self.header.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.header.setAccessibleName(f"{title} group")
            font = QFont(self.header.font())
            font.setBold(True)
            self.header.setFont(font)
            self.header.toggled.connect(self._toggled)
            layout.addWidget(self.header)
        elif title:
            self.title = QLabel(title, self)
            self.title.setObjectName("groupTitle")
            font = QFont(self.title.font())
            font.setBold(True)
            self.title.setFont(font)
            layout.addWidget(self.title)
        self.body = QWidget(self)
        self.grid = QGridLayout(self.body)
        self.grid.setContentsMargins(14 if collapsible else 0, 4, 0, 2)
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(4)
        self.grid.setColumnStretch(1, 1)
        layout.addWidget(self.body)
        self.rows: list[FieldRow] = []
        self._next_row = 0
        self._update_arrow()
        self.body.setVisible(not collapsed)
        self.set_active(False)

    @property
    def collapsed(self) -> bool:
        return self.header is not None and not self.header.isChecked()

    def set_collapsed(self, collapsed: bool) -> None:
        if self.header is not None:
            self.header.setChecked(not collapsed)

    def add_row(self, row: FieldRow) -> None:
        self.rows.append(row)
        self._next_row = row.place(self.grid, self._next_row)

    def add_note(self, text: str) -> QLabel:
        """A read-only line across the grid (an autogrow input's connected slots, a matched type)."""
        note = QLabel(text, self.body)
        note.setObjectName("groupNote")
        note.setWordWrap(True)
        note.setEnabled(False)  # muted text: it informs, it cannot be edited
        self.grid.addWidget(note, self._next_row, 0, 1, 3)
        self._next_row += 1
        return note

    def add_widget(self, widget: QWidget) -> None:
        """A widget in the editor column, under the last row (e.g. a size pair's presets)."""
        self.grid.addWidget(widget, self._next_row, 1, Qt.AlignmentFlag.AlignLeft)
        self._next_row += 1

    def repolish(self) -> None:
        """Polish again for a new palette: a widget with a style sheet (and what is inside it) keeps the
        palette it was polished with, so after a light -> dark switch its labels would stay black."""
        sheet = self.styleSheet()
        self.setStyleSheet("")
        self.setStyleSheet(sheet)

    def set_active(self, active: bool) -> None:
        """Mark the group whose node is executing: an accent bar in the palette's highlight colour."""
        colour = "palette(highlight)" if active else "transparent"
        self.setStyleSheet(f"QFrame#formGroup {{ border: none; border-left: 3px solid {colour}; }}")
        self.setProperty("active", active)

    def _toggled(self, expanded: bool) -> None:
        self.body.setVisible(expanded)
        self._update_arrow()
        self.collapsed_changed.emit(not expanded)

    def _update_arrow(self) -> None:
        if self.header is not None:
            self.header.setArrowType(
                Qt.ArrowType.DownArrow if self.header.isChecked() else Qt.ArrowType.RightArrow
            )
