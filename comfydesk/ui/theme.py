"""Look and feel: the Fusion style on the system's palette (light or dark follows the system), and the few
accents the window uses (connection state, errors). Every accent is picked by the palette's lightness, so it
stays readable on a light and on a dark palette; no other colour is hard-coded.

Accents live in style sheets, which do not follow a palette change by themselves: the widgets that use them
pick them again on `QEvent.PaletteChange` (the system switched between light and dark while running), against
`accent_palette(widget)`.

The user's choice (Settings, View -> Theme) is applied live by `apply_theme(app, mode)`: "light" and "dark"
set Fusion's own light or dark palette, "system" gives the palette back to the platform. Widgets with a style
sheet are re-polished so they take the new palette too. `set_reduce_motion` turns Qt's menu, combo box and
tooltip animations off; code that animates asks `motion_reduced()` first.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

__all__ = [
    "BACKDROP",
    "accent_palette",
    "apply_theme",
    "current_theme",
    "error_color",
    "error_styles",
    "fusion_palette",
    "is_dark",
    "motion_reduced",
    "set_reduce_motion",
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


BACKDROP = QColor(38, 39, 43)
"""Behind images (the canvas, the viewer): a neutral dark grey in light and dark themes, colours read true
against it."""


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


THEME_PROPERTY = "comfydeskTheme"  # the mode applied last: "system", "light" or "dark"
MOTION_PROPERTY = "comfydeskReduceMotion"
_EFFECTS = (
    Qt.UIEffect.UI_AnimateMenu,
    Qt.UIEffect.UI_FadeMenu,
    Qt.UIEffect.UI_AnimateCombo,
    Qt.UIEffect.UI_AnimateTooltip,
    Qt.UIEffect.UI_FadeTooltip,
    Qt.UIEffect.UI_AnimateToolBox,
)
_PLATFORM_EFFECTS: dict[Qt.UIEffect, bool] = {}


def fusion_palette(dark: bool) -> QPalette:
    """Fusion's own light or dark palette (the colours Qt uses when the system asks for that scheme)."""
    Role, Group = QPalette.ColorRole, QPalette.ColorGroup
    window_text = QColor(240, 240, 240) if dark else QColor(Qt.GlobalColor.black)
    background = QColor(50, 50, 50) if dark else QColor(239, 239, 239)
    mid = background.darker(130)
    base = background.darker(140) if dark else QColor(Qt.GlobalColor.white)
    shade = background.darker(150)
    text = window_text if dark else QColor(Qt.GlobalColor.black)
    highlight = QColor(48, 140, 198)
    disabled_text = QColor(130, 130, 130) if dark else QColor(190, 190, 190)
    shadow = shade.darker(135)
    pal = QPalette(window_text, background, background.lighter(150), shade, mid, text, base)
    pal.setColor(Role.Midlight, mid.lighter(110))
    pal.setColor(Role.Button, background)
    pal.setColor(Role.ButtonText, window_text)
    pal.setColor(Role.Shadow, shadow)
    pal.setColor(Role.HighlightedText, window_text if dark else QColor(Qt.GlobalColor.white))
    pal.setColor(Role.ToolTipBase, QColor(60, 60, 60) if dark else QColor(255, 255, 220))
    pal.setColor(Role.ToolTipText, window_text)
    pal.setColor(Role.AlternateBase, background.darker(115) if dark else QColor(247, 247, 247))
    placeholder = QColor(text)
    placeholder.setAlpha(128)
    pal.setColor(Role.PlaceholderText, placeholder)
    for group in (Group.Active, Group.Inactive):
        pal.setColor(group, Role.Highlight, highlight)
        pal.setColor(group, Role.Accent, highlight)
    pal.setColor(Group.Disabled, Role.Highlight, QColor(145, 145, 145))
    for role in (Role.Text, Role.WindowText, Role.ButtonText):
        pal.setColor(Group.Disabled, role, disabled_text)
    pal.setColor(Group.Disabled, Role.Base, background)
    pal.setColor(Group.Disabled, Role.Shadow, shadow.lighter(150))
    if dark:  # a legible light blue instead of Qt's default dark blue
        pal.setColor(Role.Link, QColor(138, 180, 248))
        pal.setColor(Role.LinkVisited, QColor(197, 160, 240))
    return pal


def apply_theme(app: QApplication, mode: str | None = None) -> None:
    """Fusion, on the system palette (repainted when the system switches) or, with `mode` "light"/"dark", on
    that palette whatever the system says. Applied live: every open window follows at once."""
    if not app.property("comfydeskThemed"):
        app.setProperty("comfydeskThemed", True)
        app.setStyle("Fusion")
    if mode is None:
        return
    if mode not in ("system", "light", "dark"):
        raise ValueError(f"theme must be system, light or dark, got {mode!r}")
    previous = app.property(THEME_PROPERTY) or "system"
    if mode == previous:
        return  # applied already (the first frame applies the saved theme, the settings again)
    app.setProperty(THEME_PROPERTY, mode)
    hints = QGuiApplication.styleHints()
    if mode == "system":
        hints.unsetColorScheme()
        if previous == "system":
            return  # nothing of ours to undo: the palette is the system's (or one a caller set)
        app.setPalette(QPalette())  # an empty palette: the platform's again, and it follows the system
    else:
        hints.setColorScheme(Qt.ColorScheme.Dark if mode == "dark" else Qt.ColorScheme.Light)
        app.setPalette(fusion_palette(mode == "dark"))
    _repolish_styled(app)


def _repolish_styled(app: QApplication) -> None:
    """Widgets with a style sheet keep the palette they were polished with: polish them again."""
    done: set[int] = set()
    for widget in app.allWidgets():
        if not widget.styleSheet():
            continue
        for w in (widget, *widget.findChildren(QWidget)):
            if id(w) not in done:
                done.add(id(w))
                w.style().unpolish(w)
                w.style().polish(w)
                w.update()


def current_theme(app: QApplication) -> str:
    """The mode `apply_theme` applied last ("system" before any)."""
    return str(app.property(THEME_PROPERTY) or "system")


def set_reduce_motion(app: QApplication, reduce: bool) -> None:
    """Turn Qt's menu, combo box, tooltip and tool box animations off (or back on), app-wide."""
    if app.property(MOTION_PROPERTY) is None:  # the platform's own choice, to go back to
        _PLATFORM_EFFECTS.update({e: QApplication.isEffectEnabled(e) for e in _EFFECTS})
    app.setProperty(MOTION_PROPERTY, bool(reduce))
    for effect in _EFFECTS:
        QApplication.setEffectEnabled(effect, False if reduce else _PLATFORM_EFFECTS.get(effect, True))


def motion_reduced() -> bool:
    """True when the user asked for less motion: skip animations, jump straight to the end state."""
    app = QApplication.instance()
    return bool(app is not None and app.property(MOTION_PROPERTY))
