"""Look and feel: the Fusion style on the system's palette (light or dark follows the system), and the few
status accents the window uses. No other colour is hard-coded."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["apply_theme", "is_dark", "status_color"]

_ACCENTS = {
    # (light background, dark background)
    "connected": ("#1e7d32", "#81c784"),
    "connecting": ("#8a6d00", "#ffd54f"),
    "reconnecting": ("#8a6d00", "#ffd54f"),
    "disconnected": ("#b3261e", "#ef9a9a"),
}


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the window background is dark (the system's dark mode, or a dark palette)."""
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hints is not None else Qt.ColorScheme.Unknown
    if scheme is Qt.ColorScheme.Dark:
        return True
    if scheme is Qt.ColorScheme.Light:
        return False
    pal = palette or QGuiApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def status_color(state: str, palette: QPalette | None = None) -> QColor:
    """The accent for a connection state ("connected", "reconnecting", "disconnected"...)."""
    light, dark = _ACCENTS.get(state, _ACCENTS["connecting"])
    return QColor(dark if is_dark(palette) else light)


def apply_theme(app: QApplication) -> None:
    """Fusion follows the system palette and repaints when the system switches between light and dark."""
    if app.property("comfydeskThemed"):
        return
    app.setProperty("comfydeskThemed", True)
    app.setStyle("Fusion")
