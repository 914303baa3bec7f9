"""The main window's layout in the settings: geometry, docks (the form panel, library, queue, gallery) and
the canvas/strip splitter. Saved state from an older layout (other docks, a splitter with another number
of panes, damaged bytes) is ignored piece by piece: what still fits is taken, the rest starts as built."""

from __future__ import annotations

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QMainWindow, QSplitter

from comfydesk.store.settings import Settings

__all__ = ["DEFAULT_SIZE", "SPLITTER_KEY", "restore_layout", "save_layout"]

SPLITTER_KEY = "canvas_splitter_sizes"  # canvas / results strip heights ("centre_splitter_sizes" was older)
DEFAULT_SIZE = (1440, 900)


def restore_layout(window: QMainWindow, settings: Settings, splitter: QSplitter) -> None:
    geometry = settings.window_geometry()
    if geometry is None or not window.restoreGeometry(QByteArray(geometry)):
        window.resize(*DEFAULT_SIZE)
    state = settings.window_state()
    if state is not None:
        window.restoreState(QByteArray(state))  # unknown docks are skipped, new ones stay where built
    sizes = settings.get(SPLITTER_KEY)
    if (
        isinstance(sizes, list)
        and len(sizes) == splitter.count()
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes)
        and sum(sizes) > 0
    ):
        splitter.setSizes(sizes)


def save_layout(window: QMainWindow, settings: Settings, splitter: QSplitter) -> None:
    settings.set_window_geometry(bytes(window.saveGeometry().data()))
    settings.set_window_state(bytes(window.saveState().data()))
    if splitter.isVisible():  # hidden behind the first-run panel its sizes are not the user's
        settings.set(SPLITTER_KEY, splitter.sizes())
