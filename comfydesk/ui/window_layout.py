"""The main window's layout in the settings: geometry, docks (the form panel, library, queue, gallery) and
the canvas/strip splitter. Saved state from an older layout (other docks, a splitter with another number
of panes, damaged bytes) is ignored piece by piece: what still fits is taken, the rest starts as built."""

from __future__ import annotations

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QDockWidget, QMainWindow, QSplitter, QWidget

from comfydesk.store.settings import Settings

__all__ = [
    "CANVAS_MIN_SIZE",
    "DEFAULT_SIZE",
    "LIBRARY_TAB_KEY",
    "SPLITTER_KEY",
    "restore_geometry",
    "restore_layout",
    "save_layout",
    "set_dock_pane",
]

SPLITTER_KEY = "canvas_splitter_sizes"  # canvas / results strip heights ("centre_splitter_sizes" was older)
LIBRARY_TAB_KEY = "library_tab"  # the library dock's tab in front: "workflows" or "nodes"
DEFAULT_SIZE = (1440, 900)
CANVAS_MIN_SIZE = (160, 160)
"""The canvas in the centre at least (small screens: the docks need the room more); the frame's centre too."""


def restore_geometry(window: QMainWindow, settings: Settings | None) -> None:
    """The window's size and place and its docks' layout, from the settings (the default size without)."""
    geometry = settings.window_geometry() if settings is not None else None
    if geometry is None or not window.restoreGeometry(QByteArray(geometry)):
        window.resize(*DEFAULT_SIZE)
    _restore_state(window, settings)


def restore_layout(window: QMainWindow, settings: Settings, splitter: QSplitter) -> None:
    """The docks' layout again, once they hold their panes (whose minimum sizes count), and the splitter's
    sizes; the geometry was restored with the frame (`restore_geometry`)."""
    _restore_state(window, settings)
    sizes = settings.get(SPLITTER_KEY)
    if (
        isinstance(sizes, list)
        and len(sizes) == splitter.count()
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes)
        and sum(sizes) > 0
    ):
        splitter.setSizes(sizes)


def _restore_state(window: QMainWindow, settings: Settings | None) -> None:
    state = settings.window_state() if settings is not None else None
    if state is not None:
        window.restoreState(QByteArray(state))  # unknown docks are skipped, new ones stay where built


def save_layout(window: QMainWindow, settings: Settings, splitter: QSplitter) -> None:
    settings.set_window_geometry(bytes(window.saveGeometry().data()))
    settings.set_window_state(bytes(window.saveState().data()))
    if splitter.isVisible():  # hidden behind the first-run panel its sizes are not the user's
        settings.set(SPLITTER_KEY, splitter.sizes())


def set_dock_pane(dock: QDockWidget, pane: QWidget) -> None:
    """`pane` in `dock`, in place of what it held (the main window's frame puts an empty widget there)."""
    old = dock.widget()
    dock.setWidget(pane)
    if old is not None and old is not pane:
        old.deleteLater()
