"""The colour editor: an INT input whose definition says `display: "color"` holds 0xRRGGBB."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPixmap, QRegularExpressionValidator
from PySide6.QtWidgets import QColorDialog, QLineEdit, QToolButton, QWidget

from comfydesk.core.templates import FormField
from comfydesk.ui.form.editors import Editor

__all__ = ["ColorEditor", "color_hex"]


def color_hex(value: int) -> str:
    """0xRRGGBB as "#RRGGBB"."""
    return f"#{value & 0xFFFFFF:06X}"


class ColorEditor(Editor):
    """INT with `display: "color"` (0xRRGGBB): a swatch button showing the colour and its hex that opens a
    colour dialog, and a hex line edit. The value stays the int."""

    native_dialog = True  # tests turn it off: a platform dialog cannot be driven offscreen

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.minimum = int(field.min) if field.min is not None else 0
        self.maximum = int(field.max) if field.max is not None else 0xFFFFFF
        self._value: int | None = None
        self.swatch = QToolButton(self)
        self.swatch.setObjectName("colorSwatch")
        # The colour only: its hex code is in the line edit beside it (once, not twice).
        self.swatch.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.swatch.setIconSize(QSize(28, 16))
        self.swatch.setToolTip("Pick a colour")
        self.swatch.setAccessibleName(f"Pick {field.label.lower()}")
        self.swatch.clicked.connect(self.open_dialog)
        self.hex = QLineEdit(self)
        self.hex.setObjectName("colorHex")
        self.hex.setValidator(QRegularExpressionValidator(r"#?[0-9A-Fa-f]{0,6}", self.hex))
        self.hex.setMaxLength(7)
        self.hex.setPlaceholderText("#RRGGBB")
        self.hex.setFixedWidth(self.hex.fontMetrics().horizontalAdvance("#WWWWWW") + 16)
        self.hex.textEdited.connect(self._hex_edited)
        self.hex.editingFinished.connect(lambda: self._show(self._value))
        self.dialog: QColorDialog | None = None
        self._add(self.swatch)
        self._add(self.hex)
        self.compact = True

    def value(self) -> Any:
        return self._value if self._value is not None else self.hex.text()

    def set_value(self, value: Any) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool)
        self._value = value if ok else None
        self._show(self._value)
        if not ok and value is not None:
            self.hex.setText(str(value))  # shown as is, so validation can say what is wrong

    def focus_widget(self) -> QWidget:
        return self.hex

    def focus_chain(self) -> list[QWidget]:
        return [self.swatch, self.hex]

    def open_dialog(self) -> None:
        """The colour dialog, window-modal and not blocking; picking a colour sets the value."""
        dialog = QColorDialog(QColor(color_hex(self._value or 0)), self)
        dialog.setObjectName("colorDialog")
        dialog.setWindowTitle(self.field.label)
        dialog.setOption(QColorDialog.ColorDialogOption.DontUseNativeDialog, not self.native_dialog)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.colorSelected.connect(self._picked)
        self.dialog = dialog
        dialog.open()

    def _picked(self, color: QColor) -> None:
        if color.isValid():
            self._set_from_user(color.rgb() & 0xFFFFFF)

    def _hex_edited(self, text: str) -> None:
        digits = text.removeprefix("#")
        if len(digits) == 6:
            self._set_from_user(int(digits, 16), keep_text=True)

    def _set_from_user(self, value: int, *, keep_text: bool = False) -> None:
        value = min(self.maximum, max(self.minimum, value))
        if value == self._value:
            return
        self._value = value
        self._show(value, keep_text=keep_text)
        self.edited.emit()

    def _show(self, value: int | None, *, keep_text: bool = False) -> None:
        pixmap = QPixmap(self.swatch.iconSize())
        if value is None:
            pixmap.fill(Qt.GlobalColor.transparent)
        else:
            pixmap.fill(QColor(color_hex(value)))
            painter = QPainter(pixmap)  # a frame keeps a colour close to the background visible
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            painter.drawRect(pixmap.rect().adjusted(0, 0, -1, -1))
            painter.end()
        self.swatch.setIcon(QIcon(pixmap))
        self.swatch.setText(color_hex(value) if value is not None else "—")
        self.swatch.setToolTip(f"Pick a colour ({self.swatch.text()})")
        if not keep_text:
            self.hex.setText(color_hex(value) if value is not None else "")
