"""ErrorView: the one widget that shows an error — message, optional details (traceback), and Copy."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect, Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QFontInfo, QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from comfydesk.core.events import FailureInfo
from comfydesk.core.messages import Message, for_failure
from comfydesk.ui.theme import accent_palette, error_styles, set_style

__all__ = ["ErrorView", "monospace_font"]

QWIDGETSIZE_MAX = 16_777_215


def monospace_font() -> QFont:
    """The system's fixed-width font, or the first fixed-pitch family installed when that one is not.

    Some font sets alias "monospace" to a family whose metadata says proportional (Noto Sans Mono), so
    tracebacks would lose their alignment.
    """
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    if QFontInfo(font).fixedPitch():
        return font
    family = next((f for f in QFontDatabase.families() if QFontDatabase.isFixedPitch(f)), None)
    if family is not None:
        font.setFamily(family)
    font.setStyleHint(QFont.StyleHint.TypeWriter)
    return font


class ErrorView(QFrame):
    """Message (selectable), a "Details" toggle revealing a read-only monospace box, "Copy", and optionally
    one way on (`set_action`, e.g. "Edit profile…")."""

    action_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        self.title = QLabel(self)
        self.title.setObjectName("errorTitle")
        font = QFont(self.title.font())
        font.setBold(True)
        self.title.setFont(font)
        self.message = QLabel(self)
        self.message.setObjectName("errorMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.message.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.message.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.message.installEventFilter(self)
        buttons = QHBoxLayout()
        self.details_button = QPushButton("Details", self)
        self.details_button.setObjectName("errorDetailsButton")
        self.details_button.setCheckable(True)
        self.details_button.setAccessibleName("Show error details")
        self.details_button.toggled.connect(self._toggle_details)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setObjectName("errorCopyButton")
        self.copy_button.setAccessibleName("Copy the error to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        self.action_button = QPushButton(self)
        self.action_button.setObjectName("errorActionButton")
        self.action_button.clicked.connect(self.action_requested)
        self.action_button.setVisible(False)
        buttons.addWidget(self.action_button)
        buttons.addWidget(self.details_button)
        buttons.addWidget(self.copy_button)
        buttons.addStretch(1)
        self.details = QPlainTextEdit(self)
        self.details.setObjectName("errorDetails")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setFont(monospace_font())
        self.details.setAccessibleName("Error details")
        self.details.setMinimumHeight(120)
        self.details.setVisible(False)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(self.details, 1)
        self.update_accents()
        self.set_error("", "")

    def update_accents(self) -> None:
        """Pick the red of the frame and the title for the current palette (light or dark).

        The view has a style sheet, so Qt sends it no palette change: the widget holding it calls this on
        its own `QEvent.PaletteChange`."""
        red, tint = error_styles(accent_palette(self))
        set_style(
            self, f"QFrame#errorView {{ border: 1px solid {red}; border-radius: 4px; background: {tint}; }}"
        )
        set_style(self.title, f"color: {red};")

    def set_error(self, message: str, details: str = "", *, title: str = "Error") -> None:
        """Show `message`; `details` (a traceback, a server body) behind the Details toggle."""
        self.title.setText(title)
        self.message.setText(message)
        self.details.setPlainText(details)
        self.message.setMinimumHeight(0)
        self.message.setMaximumHeight(QWIDGETSIZE_MAX)
        self._fit_message()
        self.details_button.setVisible(bool(details))
        if not details:
            self.details_button.setChecked(False)

    def set_action(self, text: str | None) -> None:
        """Offer one way on (a button that emits `action_requested`), or none."""
        self.action_button.setText(text or "")
        self.action_button.setVisible(bool(text))

    def set_message(self, message: Message) -> None:
        """Show a catalogue message (`comfydesk.core.messages`): its title, its plain sentence, and the
        technical part behind Details."""
        self.set_error(message.text, message.details, title=message.title)

    def set_failure(self, failure: FailureInfo, *, node_title: str = "") -> None:
        """Show a failed run in plain words; the exception, node and traceback go behind Details."""
        self.set_message(for_failure(failure, node_title=node_title))

    def text(self) -> str:
        """Everything shown, as plain text (what Copy puts on the clipboard)."""
        parts = [self.title.text(), self.message.text()]
        if self.details.toPlainText():
            parts += ["", self.details.toPlainText()]
        return "\n".join(p for p in parts if p is not None).strip()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.message and event.type() is QEvent.Type.Resize:
            self._fit_message()
        return super().eventFilter(watched, event)

    def _fit_message(self) -> None:
        """A wrapped label does not tell the layout its height for its width, so when the details take the
        room below it the sentence was cut off: ask for that height (again whenever its width changes)."""
        width = self.message.width()
        text = self.message.text()
        if not text or width <= 20:
            return
        # Measured from the font, not heightForWidth (which never answers less than the minimum set here).
        flags = int(Qt.TextFlag.TextWordWrap) | int(Qt.AlignmentFlag.AlignLeft)
        bounds = self.message.fontMetrics().boundingRect(QRect(0, 0, width, 100_000), flags, text)
        needed = bounds.height() + 2
        if needed > 0 and (self.message.minimumHeight(), self.message.maximumHeight()) != (needed, needed):
            self.message.setFixedHeight(needed)  # no taller either: the room left goes to the details

    def _toggle_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Details")
