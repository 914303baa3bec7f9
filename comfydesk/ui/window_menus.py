"""The main window's actions (with their shortcuts) and its menu bar, and the small dialogs the menus open
(Open workflow, About). Built once by `MainWindow.attach`; the actions are attributes of the window
(`window.run_action`, ...), their slots are the window's.

What a menu opens and the first frame does not show (the file dialog, the About box) is imported when it
is first opened, not at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from comfydesk import __version__
from comfydesk.app.demo import DEMO_LABEL

if TYPE_CHECKING:
    from comfydesk.ui.main_window import MainWindow
    from comfydesk.ui.template_browser import TemplateBrowser

__all__ = [
    "OPEN_FILTER",
    "build_actions",
    "build_menus",
    "make_action",
    "open_workflow_dialog",
    "show_about",
    "show_tab",
    "show_templates",
]

OPEN_FILTER = "Workflows (*.json *.png *.webp);;All files (*)"


def with_shortcut(text: str, action: QAction) -> str:
    """`text` with the action's shortcut after it, as tooltips say it: "Run (Ctrl+Return)"."""
    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    return f"{text} ({keys})" if keys else text


def make_action(
    window: MainWindow, text: str, slot: Any, *shortcuts: str | QKeySequence.StandardKey, tip: str = ""
) -> QAction:
    """An action of the window (its shortcut works anywhere in it): the first of `shortcuts` that is bound
    on this platform, and the others too; the tooltip says the shortcut."""
    action = QAction(text, window)
    keys: list[QKeySequence] = []
    for s in shortcuts:  # a standard key may be unbound on a platform: the next one stands in
        key = QKeySequence(s)
        if not key.isEmpty() and key not in keys:
            keys.append(key)
    if keys:
        action.setShortcuts(keys)
    action.setToolTip(with_shortcut(tip or text.replace("&", "").rstrip("…"), action))
    action.setStatusTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)
    return action


def build_actions(w: MainWindow) -> None:
    """The window's own actions (File, Run, Server, Help); the docks' toggles come with the docks."""
    ctx = w.ctx
    w.open_action = make_action(w, "&Open workflow…", w.open_workflow, QKeySequence.StandardKey.Open)
    w.reveal_action = make_action(w, "&Reveal library folder", lambda: ctx.library.reveal(None))
    w.quit_action = make_action(w, "&Quit", w.close, QKeySequence.StandardKey.Quit, "Ctrl+Q")
    w.run_action = make_action(w, "&Run", w.run_workflow, "Ctrl+Return", "Ctrl+Enter")
    w.cancel_action = make_action(w, "&Cancel", w.request_cancel, "Esc", tip="Cancel this window's runs")
    w.reset_action = make_action(w, "Reset form to &defaults", w._reset_form, "Ctrl+Shift+Backspace")
    w.focus_form_action = make_action(w, "Go to the &form", w._focus_form, "Ctrl+E")
    w.profiles_action = make_action(w, "&Profiles…", w.show_profiles, "Ctrl+Alt+P")
    w.reconnect_action = make_action(w, "Re&connect", ctx.retry, QKeySequence.StandardKey.Refresh, "F5")
    w.demo_action = make_action(w, "Start &demo engine", ctx.start_demo, tip=DEMO_LABEL)
    w.templates_action = make_action(
        w, "Browse &templates…", w.show_templates, "Ctrl+Shift+T", tip="The server's template catalogue"
    )
    w.about_action = make_action(
        w, "&About comfydesk", w.show_about, QKeySequence.StandardKey.HelpContents, "F1"
    )


def build_menus(w: MainWindow) -> None:
    """File, Run, View, Server, Help. Others add to them later: the gateway's actions (File), Settings…
    (File) and the Theme submenu (View)."""
    file_menu = w.file_menu  # the menus themselves are the window's frame's (MainWindow._build_frame)
    file_menu.addActions([w.open_action, w.reveal_action])
    file_menu.addSeparator()
    file_menu.addAction(w.quit_action)
    run_menu = w.run_menu
    run_menu.addActions([w.run_action, w.cancel_action])
    run_menu.addSeparator()
    run_menu.addActions([w.reset_action, w.focus_form_action])
    view_menu = w.view_menu  # the Theme submenu goes here (install_settings)
    view_menu.addActions([w.show_workflows_action, w.show_nodes_action])
    view_menu.addSeparator()
    view_menu.addActions([w.library_toggle, w.form_toggle, w.queue_toggle, w.gallery_toggle])
    view_menu.addSeparator()
    server_menu = w.server_menu
    server_menu.addActions([w.profiles_action, w.reconnect_action, w.templates_action])
    server_menu.addSeparator()
    server_menu.addAction(w.demo_action)
    server_menu.addSeparator()
    server_menu.addActions(
        [w.server_log.restart_action, w.server_log.stop_action, w.server_log_dock.toggleViewAction()]
    )
    help_menu = w.help_menu
    help_menu.addAction(w.about_action)


def open_workflow_dialog(w: MainWindow) -> None:
    """File -> Open workflow…: files chosen are added to the library (the first one opened)."""
    from PySide6.QtWidgets import QFileDialog

    dialog = QFileDialog(w, "Open workflow", str(Path.home()), OPEN_FILTER)
    dialog.setObjectName("openWorkflowDialog")
    dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
    dialog.filesSelected.connect(lambda files: w.ctx.library.add_files([Path(f) for f in files]))
    dialog.open()


def show_about(w: MainWindow) -> None:
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(
        QMessageBox.Icon.Information,
        "About comfydesk",
        f"comfydesk {__version__}\nRun ComfyUI workflows through generated forms.\n\n"
        f"Data: {w.ctx.paths.data_dir}",
        QMessageBox.StandardButton.Ok,
        w,
    )
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()


def show_tab(w: MainWindow, index: int) -> None:
    """View -> Workflows pane / Nodes pane: the library shown on that tab, its search field focused."""
    w.library_dock.show()
    w.left_tabs.setCurrentIndex(index)
    search = getattr(w.left_tabs.currentWidget(), "search", None)
    if isinstance(search, QWidget):
        search.setFocus(Qt.FocusReason.ShortcutFocusReason)


def show_templates(w: MainWindow) -> TemplateBrowser:
    """Server -> Browse templates…: the template browser (one per window, kept while the window lives)."""
    from comfydesk.ui.template_browser import TemplateBrowser

    browser = w.findChild(TemplateBrowser, "templateBrowser")
    if browser is None:
        browser = TemplateBrowser(w.ctx.templates, w.ctx.library, w)
        browser.open_requested.connect(w._on_workflow_activated)
    browser.show()
    browser.raise_()
    return browser
