"""Building blocks of the form: a field row (label, editor, reset, error) and a collapsible node group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QEnterEvent, QFont
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

__all__ = ["GROUPS_SHEET", "FieldRow", "FormGroupBox", "make_editor"]

SHOW_AGAIN = "⊕"  # the hide button of a hidden field (shown with "Show hidden fields") brings it back
BUTTON_WIDTH, BUTTON_HEIGHT = 20, 22  # each row icon; the three always take their room, shown or not
_BUTTONS = ("reset", "pin", "hide")  # left to right

#: One style sheet for every group of a form, set on the widget holding them (one sheet to parse, not two
#: per group): the accent bar beside the group of the node running now, and the groups' header buttons.
GROUPS_SHEET = (
    "QFrame#formGroup { border: none; border-left: 3px solid transparent; }"
    ' QFrame#formGroup[active="true"] { border-left-color: palette(highlight); }'
    " QToolButton#groupHeader { border: none; border-bottom: 1px solid palette(mid);"
    " padding: 4px 2px; text-align: left; }"
)

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


class _RowPart:
    """What a row's label, editor frame and icon strip share: they tell the row when the pointer comes and
    goes, and ask for its menu on a right-click (Python sees these events only, not every event)."""

    hovered: Callable[[bool], None] | None = None
    menu: Callable[[QPoint], None] | None = None  # the row's context menu, at a global position

    def enterEvent(self, event: QEnterEvent) -> None:
        if self.hovered is not None:
            self.hovered(True)
        super().enterEvent(event)  # type: ignore[misc]

    def leaveEvent(self, event: QEvent) -> None:
        if self.hovered is not None:
            self.hovered(False)
        super().leaveEvent(event)  # type: ignore[misc]

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        if self.menu is not None:
            self.menu(event.globalPos())
            event.accept()
        else:
            super().contextMenuEvent(event)  # type: ignore[misc]


class _HoverLabel(_RowPart, QLabel):
    """A row's label; see _RowPart."""


class _HoverFrame(_RowPart, QFrame):
    """A row's editor frame; see _RowPart."""


class _HoverBox(_RowPart, QWidget):
    """A row's icon strip; see _RowPart."""


class FieldRow:
    """The widgets of one field inside a group's grid; not a widget itself so labels align across rows.

    The row icons (reset, pin, hide) are made when first shown or asked for (`reset`, `pin`, `hide`): most
    rows never show them, and a form builds faster without them; their strip keeps its size throughout."""

    def __init__(
        self,
        field: FormField,
        *,
        default: Any,
        label_text: str,
        context: str,
        hidden: bool,
        parent: QWidget,
        pinned: bool = False,
    ) -> None:
        self.field = field
        self.key = field.key
        self.messages: list[str] = []
        self._default = default
        self._hidden_field = hidden
        self._pinned = pinned
        self._buttons: dict[str, QToolButton] = {}
        self._on_button: Callable[[str, QToolButton], None] | None = None
        self.label = _HoverLabel(label_text, parent)
        self.label.setObjectName("fieldLabel")
        self.label.setWordWrap(False)
        if hidden:
            self.label.setEnabled(False)
            self.label.setText(f"{label_text} (hidden)")
        self.frame = _HoverFrame(parent)
        self.frame.setObjectName("fieldFrame")
        frame_layout = QHBoxLayout(self.frame)
        # Room for the 1 px border a problem draws: a margin until the frame first gets its style sheet
        # (most never do, and setting one is slow), then the sheet's transparent border; nothing moves.
        frame_layout.setContentsMargins(2, 2, 2, 2)
        self._frame_layout = frame_layout
        self._styled = False
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
        self.actions = _HoverBox(parent)
        self.actions.setObjectName("fieldActions")
        self.actions.setFixedSize(BUTTON_WIDTH * len(_BUTTONS), BUTTON_HEIGHT)
        self._hovered = False
        self.label.hovered = self.frame.hovered = self.actions.hovered = self.set_hovered
        if hidden:
            self.set_hovered(False)  # a hidden field's hide button shows all the time (it brings it back)

        self.error = QLabel(parent)
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self._red = ""
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

    @property
    def reset(self) -> QToolButton:
        return self._button("reset")

    @property
    def pin(self) -> QToolButton:
        return self._button("pin")

    @property
    def hide(self) -> QToolButton:
        return self._button("hide")

    def set_menu(self, menu: Callable[[QPoint], None]) -> None:
        """`menu(global position)` on a right-click on the label or beside the editor."""
        self.label.menu = self.frame.menu = menu

    def connect_buttons(self, handler: Callable[[str, QToolButton], None]) -> None:
        """`handler(name, button)` for each row icon ("reset", "pin", "hide"), now or once it is made."""
        self._on_button = handler
        for name, button in self._buttons.items():
            handler(name, button)

    def _button(self, name: str) -> QToolButton:
        button = self._buttons.get(name)
        if button is not None:
            return button
        label = self.field.label.lower()
        if name == "reset":
            text, tip = "↺", f"Back to the workflow's value ({_short(self._default, 40)})"
            accessible = f"Reset {label} to default"
        elif name == "pin" and self._pinned:
            text, tip, accessible = "↓", "Unpin", f"Unpin {label}"
        elif name == "pin":
            text, tip, accessible = "↑", "Pin to the top of the form", f"Pin {label}"
        elif self._hidden_field:
            text, tip, accessible = SHOW_AGAIN, "Show this field again", f"Hide {label}"
        else:
            text, tip = "⊘", "Hide this field (Show hidden fields brings it back)"
            accessible = f"Hide {label}"
        button = QToolButton(self.actions)
        button.setObjectName(f"{name}Button")
        button.setAutoRaise(True)
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(accessible)
        button.setFocusPolicy(
            Qt.FocusPolicy.NoFocus
        )  # one Tab stop per field; the context menu has these too
        # Its own place in the strip, shown or not: nothing moves when the icons come and go.
        button.setGeometry(BUTTON_WIDTH * _BUTTONS.index(name), 0, BUTTON_WIDTH, BUTTON_HEIGHT)
        button.setFixedSize(BUTTON_WIDTH, BUTTON_HEIGHT)
        button.setVisible(False)
        self._buttons[name] = button
        if self._on_button is not None:
            self._on_button(name, button)
        return button

    def set_changed(self, changed: bool) -> None:
        """Show the reset button only while the value differs from the workflow's."""
        if changed or "reset" in self._buttons:
            self.reset.setVisible(changed)

    def set_hovered(self, hovered: bool) -> None:
        """Pin and Hide show while the pointer is over the row (always for a hidden field: it needs Show)."""
        self._hovered = hovered
        if hovered or "pin" in self._buttons:
            self.pin.setVisible(hovered)
        if hovered or self._hidden_field or "hide" in self._buttons:
            self.hide.setVisible(hovered or self._hidden_field)

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
        """Pick the error red for the current palette (by its lightness: readable on light and dark).
        A row that never showed a problem has no style sheets yet: it gets them with its first one."""
        if not self._styled:
            return
        self._red = error_color(accent_palette(self.error)).name()
        set_style(self.error, f"color: {self._red};")
        set_style(self.frame, _frame_bad(self._red) if self.messages else _FRAME_OK)

    def set_messages(self, messages: list[str]) -> None:
        if messages == self.messages:
            return
        self.messages = list(messages)
        if messages and not self._styled:
            self._styled = True
            self._frame_layout.setContentsMargins(1, 1, 1, 1)  # the style sheet's border takes the other px
        self.update_accents()
        self.error.setText("\n".join(messages))
        self.error.setVisible(bool(messages))
        self.editor.focus_widget().setAccessibleDescription(" ".join(messages) or self.context)


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
            self.header = QToolButton(self)  # styled by GROUPS_SHEET
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
        self._show_now(row.label, row.frame, row.actions, row.error)

    def add_note(self, text: str) -> QLabel:
        """A read-only line across the grid (an autogrow input's connected slots, a matched type)."""
        note = QLabel(text, self.body)
        note.setObjectName("groupNote")
        note.setWordWrap(True)
        note.setEnabled(False)  # muted text: it informs, it cannot be edited
        self.grid.addWidget(note, self._next_row, 0, 1, 3)
        self._next_row += 1
        self._show_now(note)
        return note

    def add_widget(self, widget: QWidget) -> None:
        """A widget in the editor column, under the last row (e.g. a size pair's presets)."""
        self.grid.addWidget(widget, self._next_row, 1, Qt.AlignmentFlag.AlignLeft)
        self._next_row += 1
        self._show_now(widget)

    def _show_now(self, *widgets: QWidget) -> None:
        """Show what was just put in an open group already on screen (a row built after the first paint) at
        once: a layout would show it only after the events waiting, too late for a click right away."""
        if self.body.isVisible():
            for widget in widgets:
                if not widget.testAttribute(Qt.WidgetAttribute.WA_WState_ExplicitShowHide):
                    widget.show()

    def repolish(self) -> None:
        """Polish again for a new palette: a widget with a style sheet (and what is inside it) keeps the
        palette it was polished with, so after a light -> dark switch its labels would stay black. The
        sheet is its holder's (GROUPS_SHEET, set once on the widget holding every group)."""
        holder = self.parentWidget()
        if holder is not None and holder.styleSheet():
            sheet = holder.styleSheet()
            holder.setStyleSheet("")
            holder.setStyleSheet(sheet)

    def set_active(self, active: bool) -> None:
        """Mark the group whose node is executing: an accent bar in the palette's highlight colour."""
        if self.property("active") == active:
            return
        self.setProperty("active", active)
        if self.isVisible() or self.testAttribute(Qt.WidgetAttribute.WA_WState_Polished):
            style = self.style()  # the sheet's [active="true"] rule: applied by polishing again
            style.unpolish(self)
            style.polish(self)
            self.update()

    def _toggled(self, expanded: bool) -> None:
        self.body.setVisible(expanded)
        self._update_arrow()
        self.collapsed_changed.emit(not expanded)

    def _update_arrow(self) -> None:
        if self.header is not None:
            self.header.setArrowType(
                Qt.ArrowType.DownArrow if self.header.isChecked() else Qt.ArrowType.RightArrow
            )
