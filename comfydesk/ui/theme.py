"""Look and feel: the Fusion style on the system's palette (light or dark follows the system), and the few
accents the window uses (connection state, errors). Every accent is picked by the palette's lightness, so it
stays readable on a light and on a dark palette; no other colour is hard-coded.

Accents live in style sheets, which do not follow a palette change by themselves: the widgets that use them
pick them again on `QEvent.PaletteChange` (the system switched between light and dark while running), against
`accent_palette(widget)`.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

__all__ = [
    "accent_palette",
    "apply_theme",
    "error_color",
    "error_styles",
    "is_dark",
    "set_style",
    "status_color",
]

_ACCENTS = {
    # (light background, dark background); each at least 4.5:1 against its background
    "connected": ("#17692a", "#81c784"),
    "connecting": ("#735a00", "#ffd54f"),
    "reconnecting": ("#735a00", "#ffd54f"),
    "disconnected": ("#b3261e", "#ef9a9a"),
}
_ERROR = ("#b3261e", "#ff8a80")


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the window background of `palette` (default: the application's) is dark.

    The palette, not the platform's colour-scheme hint, decides: it is what widgets are painted with, and a
    user (or a test) may set a dark palette under a light system scheme.
    """
    pal = palette if palette is not None else QGuiApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def accent_palette(widget: QWidget) -> QPalette:
    """The palette to pick `widget`'s accents against: its window's.

    A widget with a style sheet keeps the palette it was polished with when the application's changes, so
    its own (and its children's) would still say light after a switch to dark.
    """
    return widget.window().palette()


def set_style(widget: QWidget, sheet: str) -> None:
    """Set a style sheet only when it differs (setting one re-polishes the widget and all its children)."""
    if widget.styleSheet() != sheet:
        widget.setStyleSheet(sheet)


def status_color(state: str, palette: QPalette | None = None) -> QColor:
    """The accent for a connection state ("connected", "reconnecting", "disconnected"...)."""
    light, dark = _ACCENTS.get(state, _ACCENTS["connecting"])
    return QColor(dark if is_dark(palette) else light)


def error_color(palette: QPalette | None = None) -> QColor:
    """The red for error text and frames: dark red on a light palette, light red on a dark one."""
    light, dark = _ERROR
    return QColor(dark if is_dark(palette) else light)


def error_styles(palette: QPalette | None = None) -> tuple[str, str]:
    """(border/text colour, translucent background) as style-sheet colours for an error box."""
    red = error_color(palette)
    return red.name(), f"rgba({red.red()}, {red.green()}, {red.blue()}, 0.12)"


def apply_theme(app: QApplication) -> None:
    """Fusion follows the system palette and repaints when the system switches between light and dark."""
    if app.property("comfydeskThemed"):
        return
    app.setProperty("comfydeskThemed", True)
    app.setStyle("Fusion")
