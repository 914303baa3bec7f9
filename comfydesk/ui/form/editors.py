"""One editor widget per field kind; each gives a typed `value()` and emits `edited` on user change.

Editors avoid overriding Qt virtuals where a signal or a QShortcut does the job: besides being simpler, that
keeps per-event Python calls (and PySide6 6.12's refcount bug on CPython 3.11) off hot paths.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QKeySequence, QRegularExpressionValidator, QShortcut
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from comfydesk.core.templates import FieldKind, FormField, SeedControl, next_seed

__all__ = [
    "NOT_ON_SERVER",
    "BoolEditor",
    "ChoiceEditor",
    "Editor",
    "FloatEditor",
    "IntEditor",
    "SeedEditor",
    "StringEditor",
    "TextEditor",
    "WheelGuard",
    "WideIntEdit",
    "float_decimals",
]

NOT_ON_SERVER = "Not on the server"
"""A choice's tooltip (and an image field's preview text) for a value the server's list lacks."""

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: Every number box of the form is this wide, so they line up on one grid column.
NUMBER_WIDTH = 120
SEED_MAX = 2**64 - 1


class Editor(QWidget):
    """Base of the field editors: `value()`, `set_value()`, `focus_widget()`, and `edited` on user change."""

    edited = Signal()

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.compact = False  # True: as wide as its content, not the whole column
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        """Show `value` without emitting `edited`."""
        raise NotImplementedError

    def focus_widget(self) -> QWidget:
        """The widget that takes focus for this field (and carries its accessible name)."""
        raise NotImplementedError

    def focus_chain(self) -> list[QWidget]:
        """The widgets Tab visits in this editor, in order."""
        return [self.focus_widget()]

    def _add(self, widget: QWidget, stretch: int = 0) -> None:
        self._layout.addWidget(widget, stretch)


def float_decimals(field: FormField) -> int:
    """Decimals to show: from `round` when it is a step (0.01 -> 2), else from `step`, else 2."""
    for unit in (field.round, field.step):
        if isinstance(unit, int | float) and not isinstance(unit, bool) and 0 < unit < 1:
            return max(1, min(6, math.ceil(-math.log10(unit) - 1e-9)))
    if isinstance(field.step, int | float) and field.step >= 1:
        return 1
    return 2


class WideIntEdit(QLineEdit):
    """An integer line edit for ranges beyond Qt's 32-bit QSpinBox: digits only, Up/Down (PageUp/PageDown x10)
    step within [minimum, maximum]. Out-of-range text is kept so validation can say what is wrong."""

    stepped = Signal()

    def __init__(self, minimum: int, maximum: int, step: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.minimum, self.maximum, self.step = minimum, maximum, max(1, step)
        pattern = r"-?\d{0,24}" if minimum < 0 else r"\d{0,24}"
        self.setValidator(QRegularExpressionValidator(pattern, self))
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for key, factor in (
            (Qt.Key.Key_Up, 1),
            (Qt.Key.Key_Down, -1),
            (Qt.Key.Key_PageUp, 10),
            (Qt.Key.Key_PageDown, -10),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(lambda f=factor: self.step_by(f))

    def int_value(self) -> int | None:
        try:
            return int(self.text())
        except ValueError:
            return None

    def step_by(self, steps: int) -> None:
        current = self.int_value()
        base = current if current is not None else self.minimum
        new = min(self.maximum, max(self.minimum, base + steps * self.step))
        if new != current:
            self.setText(str(new))
            self.stepped.emit()


class IntEditor(Editor):
    """INT: a QSpinBox when the range fits 32 bits, a WideIntEdit otherwise."""

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        lo = int(field.min) if field.min is not None else INT32_MIN
        hi = int(field.max) if field.max is not None else INT32_MAX
        step = int(field.step) if isinstance(field.step, int | float) and field.step >= 1 else 1
        self.spin: QSpinBox | None = None
        self.wide: WideIntEdit | None = None
        if lo >= INT32_MIN and hi <= INT32_MAX:
            self.spin = QSpinBox(self)
            self.spin.setRange(lo, hi)
            self.spin.setSingleStep(step)
            self.spin.setAccelerated(True)
            self.spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.UpDownArrows)
            self.spin.setFixedWidth(NUMBER_WIDTH)
            self.spin.valueChanged.connect(self.edited)
            self._add(self.spin)
            self.compact = True
        else:
            self.wide = WideIntEdit(lo, hi, step, self)
            self.wide.textEdited.connect(self.edited)
            self.wide.stepped.connect(self.edited)
            self._add(self.wide, 1)

    def value(self) -> Any:
        if self.spin is not None:
            return self.spin.value()
        assert self.wide is not None
        number = self.wide.int_value()
        return number if number is not None else self.wide.text()

    def set_value(self, value: Any) -> None:
        if self.spin is not None:
            with QSignalBlocker(self.spin):
                if isinstance(value, int) and not isinstance(value, bool):
                    self.spin.setValue(value)
        else:
            assert self.wide is not None
            self.wide.setText("" if value is None else str(value))

    def focus_widget(self) -> QWidget:
        return self.spin if self.spin is not None else self.wide  # type: ignore[return-value]


class WheelGuard(QObject):
    """Event filter for the spin boxes and combos of a scrolling form: the wheel changes their value only
    while they have focus; otherwise it scrolls `area`, as it would anywhere else on the form."""

    def __init__(self, area: QAbstractScrollArea) -> None:
        super().__init__(area)
        self._area = area

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            # Handed to the scroll area directly: Qt passes only spontaneous wheel events up to parents.
            QCoreApplication.sendEvent(self._area.viewport(), event)
            return True
        return False

    def guard(self, editor: QWidget) -> None:
        """Install on every spin box and combo of `editor`; they take focus by click or Tab, not the wheel."""
        for widget in editor.findChildren(QWidget):
            if isinstance(widget, QAbstractSpinBox | QComboBox):
                widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
                widget.installEventFilter(self)


class SeedEditor(Editor):
    """SEED: a wide integer, its control mode, "reuse last seed" and "randomise now"."""

    control_changed = Signal(object)  # SeedControl
    reuse_requested = Signal()

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.minimum = int(field.min) if field.min is not None else 0
        self.maximum = int(field.max) if field.max is not None else SEED_MAX
        self.edit = WideIntEdit(self.minimum, self.maximum, 1, self)
        # Wide enough for the seeds people use (15 digits; longer ones scroll), not the whole column.
        self.edit.setFixedWidth(max(NUMBER_WIDTH, self.edit.fontMetrics().horizontalAdvance("0" * 15) + 12))
        self.edit.textEdited.connect(self.edited)
        self.edit.stepped.connect(self.edited)
        self.mode = QComboBox(self)
        for control in SeedControl:
            self.mode.addItem(control.value, control.value)  # plain str data: findData matches it
        self.set_control(field.control or SeedControl.FIXED)
        self.mode.setAccessibleName(f"{field.label} control after each run")
        self.mode.setToolTip("What happens to the seed after each run")
        self.mode.currentIndexChanged.connect(lambda _i: self.control_changed.emit(self.control()))
        self.reuse = QToolButton(self)
        self.reuse.setText("↺")
        self.reuse.setToolTip("Reuse the seed of the last run")
        self.reuse.setAccessibleName(f"Reuse last {field.label.lower()}")
        self.reuse.setEnabled(False)
        self.reuse.clicked.connect(self.reuse_requested)
        self.dice = QToolButton(self)
        self.dice.setText("⚄")
        self.dice.setToolTip("Pick a random seed now")
        self.dice.setAccessibleName(f"Randomise {field.label.lower()}")
        self.dice.clicked.connect(self.randomise)
        for button in (self.reuse, self.dice):
            button.setFixedWidth(24)
        self._add(self.edit)
        self._add(self.mode)
        self._add(self.reuse)
        self._add(self.dice)
        self.compact = True
        self.last_seed: int | None = None

    def control(self) -> SeedControl:
        data = self.mode.currentData()
        return SeedControl(data) if data in set(SeedControl) else SeedControl.FIXED

    def set_control(self, control: SeedControl) -> None:
        self.mode.setCurrentIndex(max(0, self.mode.findData(SeedControl(control).value)))

    def set_last_seed(self, seed: int) -> None:
        self.last_seed = seed
        self.reuse.setEnabled(True)
        self.reuse.setToolTip(f"Reuse the seed of the last run ({seed})")

    def randomise(self) -> None:
        self.edit.setText(
            str(next_seed(0, SeedControl.RANDOMIZE, minimum=self.minimum, maximum=self.maximum))
        )
        self.edited.emit()

    def advanced(self, rng: random.Random | None = None) -> int | None:
        """The seed the control mode gives for the next run (None while the text is not a number)."""
        current = self.edit.int_value()
        if current is None:
            return None
        return next_seed(current, self.control(), minimum=self.minimum, maximum=self.maximum, rng=rng)

    def value(self) -> Any:
        number = self.edit.int_value()
        return number if number is not None else self.edit.text()

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else str(value))

    def focus_widget(self) -> QWidget:
        return self.edit

    def focus_chain(self) -> list[QWidget]:
        return [self.edit, self.mode, self.reuse, self.dice]


class FloatEditor(Editor):
    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.spin = QDoubleSpinBox(self)
        self.decimals = float_decimals(field)
        self.spin.setDecimals(self.decimals)
        self.spin.setRange(
            float(field.min) if field.min is not None else -1e12,
            float(field.max) if field.max is not None else 1e12,
        )
        step = field.step if isinstance(field.step, int | float) and field.step > 0 else 10**-self.decimals
        self.spin.setSingleStep(float(step))
        self.spin.setAccelerated(True)
        self.spin.setFixedWidth(NUMBER_WIDTH)
        self.spin.valueChanged.connect(self.edited)
        self._add(self.spin)
        self.compact = True

    def value(self) -> Any:
        return round(self.spin.value(), self.decimals)

    def set_value(self, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            with QSignalBlocker(self.spin):
                self.spin.setValue(float(value))

    def focus_widget(self) -> QWidget:
        return self.spin


class StringEditor(Editor):
    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.edit = QLineEdit(self)
        self.edit.setClearButtonEnabled(True)
        self.edit.textEdited.connect(self.edited)
        self._add(self.edit, 1)

    def value(self) -> Any:
        return self.edit.text()

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else str(value))

    def focus_widget(self) -> QWidget:
        return self.edit


class TextEditor(Editor):
    """TEXT: a roomy plain-text box (at least four lines) for prompts; Tab moves on, as in a form."""

    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.edit = QPlainTextEdit(self)
        self.edit.setTabChangesFocus(True)
        lines = 6 if field.is_placeholder else 4
        self.edit.setFixedHeight(self.edit.fontMetrics().lineSpacing() * lines + 12)
        self.edit.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._programmatic = False
        self.edit.textChanged.connect(self._changed)
        self._add(self.edit, 1)

    def _changed(self) -> None:
        if not self._programmatic:
            self.edited.emit()

    def value(self) -> Any:
        return self.edit.toPlainText()

    def set_value(self, value: Any) -> None:
        self._programmatic = True
        try:
            self.edit.setPlainText("" if value is None else str(value))
        finally:
            self._programmatic = False

    def focus_widget(self) -> QWidget:
        return self.edit


class BoolEditor(Editor):
    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.box = QCheckBox(self)
        self.box.toggled.connect(self.edited)
        self._add(self.box)
        self.compact = True

    def value(self) -> Any:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.box):
            self.box.setChecked(bool(value))

    def focus_widget(self) -> QWidget:
        return self.box


class SearchableCombo(QComboBox):
    """An editable combo filtering its list as you type (substring, any case); it only takes list values."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        completer = QCompleter(self.model(), self)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.setCompleter(completer)
        completer.activated.connect(self._pick_text)
        line = self._line()
        line.setPlaceholderText("Type to search…")
        line.editingFinished.connect(self._settle)

    def _line(self) -> QLineEdit:
        line = self.lineEdit()
        assert line is not None  # editable
        return line

    def _pick_text(self, text: str) -> None:
        index = self.findText(text, Qt.MatchFlag.MatchExactly)
        if index >= 0:
            self.setCurrentIndex(index)

    def _settle(self) -> None:
        """Typed text that is not a list entry snaps back to the current entry (or the one it names)."""
        text = self._line().text()
        index = self.findText(text, Qt.MatchFlag.MatchFixedString)  # case-insensitive exact match
        if index >= 0:
            self.setCurrentIndex(index)
        self._line().setText(self.itemText(self.currentIndex()))


class ChoiceEditor(Editor):
    def __init__(self, field: FormField, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.combo = SearchableCombo(self)
        self.choices: list[Any] = list(field.choices or ())
        self._fill(self.choices)
        self.combo.currentIndexChanged.connect(lambda _i: self.edited.emit())
        self._add(self.combo, 1)

    def _fill(self, choices: Sequence[Any]) -> None:
        with QSignalBlocker(self.combo):
            self.combo.clear()
            for choice in choices:
                self.combo.addItem(str(choice), choice)

    def value(self) -> Any:
        index = self.combo.currentIndex()
        return self.combo.itemData(index) if index >= 0 else None

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self.combo):
            index = self.combo.findData(value)
            if index < 0 and value is not None:
                # Not on offer (a model the server lacks): show it so validation can say so.
                self.combo.addItem(str(value), value)
                index = self.combo.count() - 1
                self.combo.setItemData(index, NOT_ON_SERVER, Qt.ItemDataRole.ToolTipRole)
            self.combo.setCurrentIndex(index)

    def set_choices(self, choices: Sequence[Any]) -> None:
        """Offer a fresh list (the server's files changed) in place, keeping the value chosen; one the new
        list lacks stays chosen, marked as not on the server."""
        value = self.value()
        self.choices = list(choices)
        self._fill(self.choices)
        self.set_value(value)

    def focus_widget(self) -> QWidget:
        return self.combo


KIND_EDITORS: dict[FieldKind, type[Editor]] = {
    FieldKind.INT: IntEditor,
    FieldKind.SEED: SeedEditor,
    FieldKind.FLOAT: FloatEditor,
    FieldKind.STRING: StringEditor,
    FieldKind.TEXT: TextEditor,
    FieldKind.BOOLEAN: BoolEditor,
    FieldKind.CHOICE: ChoiceEditor,
}
