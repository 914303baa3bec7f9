"""Building blocks of the form: a field row (label, editor, reset, error) and a collapsible node group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QContextMenuEvent, QEnterEvent, QFont, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QStyleOptionToolButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.core.templates import FieldKind, FormField
from comfydesk.ui.form.color_field import ColorEditor
from comfydesk.ui.form.editors import KIND_EDITORS, Editor, StringEditor
from comfydesk.ui.form.image_field import ImageEditor
from comfydesk.ui.theme import accent_palette, error_color, set_style

__all__ = ["ACCENT_WIDTH", "FieldRow", "FormGroupBox", "GroupHeader", "make_editor"]

SHOW_AGAIN = "⊕"  # the hide button of a hidden field (shown with "Show hidden fields") brings it back
BUTTON_WIDTH, BUTTON_HEIGHT = 20, 22  # each row icon; the three always take their room, shown or not
_BUTTONS = ("reset", "pin", "hide")  # left to right

#: The accent bar beside the group of the node running now, and its room when there is none (px).
ACCENT_WIDTH = 3


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
    """A row's editor frame; see _RowPart. A field with a problem gets a thin rounded border in the error
    colour, painted in the frame's 2 px margin (a style sheet would put the editor under Qt's style-sheet
    style, which draws spin boxes 4 px shorter: the row would shrink when the problem shows)."""

    border: QColor | None = None

    def set_border(self, color: QColor | None) -> None:
        if color != self.border:
            self.border = color
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.border is not None:
            painter = QPainter(self)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(self.border)
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4)


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
        # Room for the 1 px border a problem draws (_HoverFrame.set_border): nothing moves when it shows.
        frame_layout.setContentsMargins(2, 2, 2, 2)
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
        A row that never showed a problem has no style sheet yet: its error line gets one with the first."""
        if not self._styled:
            return
        red = error_color(accent_palette(self.error))
        self._red = red.name()
        set_style(self.error, f"color: {self._red};")
        self.frame.set_border(red if self.messages else None)

    def set_messages(self, messages: list[str]) -> None:
        if messages == self.messages:
            return
        self.messages = list(messages)
        if messages and not self._styled:
            self._styled = True
        self.update_accents()
        self.error.setText("\n".join(messages))
        self.error.setVisible(bool(messages))
        self.editor.focus_widget().setAccessibleDescription(" ".join(messages) or self.context)


class GroupHeader(QToolButton):
    """A group's header: its arrow and bold title from the left, a line under it, the tool button's hover
    panel. Drawn here rather than by a style sheet: a sheet on the form would put every field of it under
    Qt's style-sheet style, which makes building and painting a form about a third slower."""

    PAD_V, PAD_H, ARROW = 4, 2, 10

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("groupHeader")
        self.setText(title)
        self.setAutoRaise(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        font = QFont(self.font())
        font.setBold(True)
        self.setFont(font)

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        width = 2 * self.PAD_H + self.ARROW + 6 + fm.horizontalAdvance(self.text())
        return QSize(width, fm.height() + 2 * self.PAD_V + 1)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.ARROW + 2 * self.PAD_H, self.sizeHint().height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        option = QStyleOptionToolButton()
        self.initStyleOption(option)
        style = self.style()
        body = self.rect().adjusted(0, 0, 0, -1)
        if option.state & (QStyle.StateFlag.State_MouseOver | QStyle.StateFlag.State_Sunken):
            option.rect = body
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelButtonTool, option, painter, self)
        arrow = QStyleOptionToolButton(option)
        arrow.rect = QRect(self.PAD_H, (body.height() - self.ARROW) // 2, self.ARROW, self.ARROW)
        down = self.arrowType() == Qt.ArrowType.DownArrow
        element = (
            QStyle.PrimitiveElement.PE_IndicatorArrowDown
            if down
            else QStyle.PrimitiveElement.PE_IndicatorArrowRight
        )
        style.drawPrimitive(element, arrow, painter, self)
        text_rect = body.adjusted(self.PAD_H + self.ARROW + 6, 0, -self.PAD_H, 0)
        role = QPalette.ColorRole.ButtonText
        style.drawItemText(
            painter,
            text_rect,
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            self.palette(),
            self.isEnabled(),
            self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, text_rect.width()),
            role,
        )
        painter.setPen(self.palette().color(QPalette.ColorRole.Mid))
        painter.drawLine(0, self.height() - 1, self.width(), self.height() - 1)
        if self.hasFocus():
            focus = QStyleOptionToolButton(option)
            focus.rect = body.adjusted(1, 1, -1, -1)
            style.drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, focus, painter, self)


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
        self._active = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(ACCENT_WIDTH + 6, 4, 4, 6)  # the accent bar's room, then the margin
        layout.setSpacing(2)
        self.header: QToolButton | None = None
        self.title: QLabel | None = None
        if collapsible:
            self.header = GroupHeader(title, self)
            self.header.setCheckable(True)
            self.header.setChecked(not collapsed)
            self.header.setAccessibleName(f"{title} group")
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
        self.setProperty("active", False)

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

    def set_active(self, active: bool) -> None:
        """Mark the group whose node is executing: an accent bar in the palette's highlight colour."""
        if self._active == active:
            return
        self._active = active
        self.setProperty("active", active)
        self.update(0, 0, ACCENT_WIDTH, self.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._active:
            painter = QPainter(self)
            painter.fillRect(
                0, 0, ACCENT_WIDTH, self.height(), self.palette().color(QPalette.ColorRole.Highlight)
            )

    def _toggled(self, expanded: bool) -> None:
        self.body.setVisible(expanded)
        self._update_arrow()
        self.collapsed_changed.emit(not expanded)

    def _update_arrow(self) -> None:
        if self.header is not None:
            self.header.setArrowType(
                Qt.ArrowType.DownArrow if self.header.isChecked() else Qt.ArrowType.RightArrow
            )
