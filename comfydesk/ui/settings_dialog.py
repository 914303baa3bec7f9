"""Settings: the dialog (File -> Settings…, Ctrl+,), the View -> Theme submenu, and applying the user's
`Preferences` to one window.

Every choice takes effect as soon as it is made and is remembered (the settings file, written off the UI
thread): the theme repaints every window, the output folder is where finished images are saved and where
"Save as" starts, the thumbnail size reflows the gallery, "confirm on cancel" asks before Cancel interrupts a
run, "reduce motion" turns off Qt's animations (menus, combo boxes, tooltips, docks).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.store.settings import THEMES, THUMBNAIL_SIZES, Preferences
from comfydesk.ui.theme import apply_theme, error_color, set_reduce_motion

if TYPE_CHECKING:
    from comfydesk.ui.main_window import MainWindow

__all__ = ["SettingsDialog", "SettingsUi", "check_output_folder", "install_settings"]

THEME_LABELS = {"system": "Same as the system", "light": "Light", "dark": "Dark"}
SIZE_LABELS = {"small": "Small", "medium": "Medium", "large": "Large"}


def check_output_folder(text: str) -> Path:
    """The folder `text` names, created if missing; ValueError with a sentence for the user if it cannot be
    used. Blocking (disk): call it off the UI thread."""
    path = Path(text.strip()).expanduser()
    if not text.strip() or not path.is_absolute():
        raise ValueError("Give the full path of a folder, for example /home/me/Pictures/comfydesk.")
    if path.exists() and not path.is_dir():
        raise ValueError(f"“{path.name}” is a file, not a folder. Pick a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise ValueError("comfydesk cannot create this folder. Pick another one.") from None
    if not os.access(path, os.W_OK):
        raise ValueError("comfydesk cannot save into this folder. Pick another one.")
    return path


class SettingsUi(QObject):
    """The settings of one window: its actions and menu, and applying `Preferences` to it."""

    preferences_changed = Signal(object)  # Preferences, applied

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.settings = window.ctx.settings
        self.dialog: SettingsDialog | None = None
        self.confirm_box: QMessageBox | None = None

        self.action = QAction("&Settings…", window)
        self.action.setObjectName("settingsAction")
        keys = [QKeySequence(QKeySequence.StandardKey.Preferences), QKeySequence("Ctrl+,")]
        self.action.setShortcuts([k for i, k in enumerate(keys) if not k.isEmpty() and k not in keys[:i]])
        self.action.setToolTip("Theme, output folder, thumbnails, confirmations (Ctrl+,)")
        self.action.triggered.connect(self.show_dialog)
        window.addAction(self.action)

        self.theme_menu = QMenu("&Theme", window)
        self.theme_menu.setObjectName("themeMenu")
        group = QActionGroup(self)
        group.setExclusive(True)
        self.theme_actions: dict[str, QAction] = {}
        for mode in THEMES:
            action = QAction(THEME_LABELS[mode], self.theme_menu)
            action.setCheckable(True)
            action.setObjectName(f"theme_{mode}")
            action.triggered.connect(lambda _c=False, m=mode: self.update(theme=m))
            group.addAction(action)
            self.theme_menu.addAction(action)
            self.theme_actions[mode] = action
        self.apply(self.preferences)

    # -- state -------------------------------------------------------------------------------------
    @property
    def preferences(self) -> Preferences:
        return self.settings.preferences

    def default_output_folder(self) -> Path:
        return self.window.ctx.paths.results_dir

    def output_folder(self, prefs: Preferences | None = None) -> Path:
        """Where finished images are saved: the user's folder, or `results` in the data dir."""
        folder = (prefs or self.preferences).output_folder
        return Path(folder) if folder else self.default_output_folder()

    def update(self, **changes: Any) -> Preferences:
        """Change some preferences (ValueError on a bad value), remember and apply them."""
        prefs = replace(self.preferences, **changes)
        self.settings.preferences = prefs
        self.apply(prefs)
        return prefs

    def apply(self, prefs: Preferences) -> None:
        window = self.window
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, prefs.theme)
            set_reduce_motion(app, prefs.reduce_motion)
        self.theme_actions[prefs.theme].setChecked(True)
        window.setAnimated(not prefs.reduce_motion)  # docks jump instead of sliding
        folder = self.output_folder(prefs)
        window.ctx.controller.results_dir = folder
        actions = getattr(window, "gallery_actions", None)
        if actions is not None:
            actions.last_folder = str(folder)  # "Save as" starts here
        window.gallery.set_tile_size(prefs.tile_px)
        self.preferences_changed.emit(prefs)

    # -- dialogs -----------------------------------------------------------------------------------
    def show_dialog(self) -> SettingsDialog:
        if self.dialog is None:
            self.dialog = SettingsDialog(self, self.window)
        self.dialog.load(self.preferences)
        self.dialog.open()
        return self.dialog

    def confirm_cancel(self, cancel: Callable[[], None]) -> None:
        """Call `cancel` now, or (with "confirm on cancel") once the user says yes in a window-modal box."""
        if not self.preferences.confirm_cancel:
            cancel()
            return
        if self.confirm_box is not None and self.confirm_box.isVisible():
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Cancel the run?",
            "Cancel the run?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self.window,
        )
        box.setObjectName("confirmCancelBox")
        box.setInformativeText(
            "The image being made now is lost, and the runs still waiting in this window's queue are removed."
        )
        box.setStyleSheet("QLabel#qt_msgbox_informativelabel { min-width: 360px; }")
        yes = box.button(QMessageBox.StandardButton.Yes)
        no = box.button(QMessageBox.StandardButton.No)
        assert yes is not None and no is not None
        yes.setText("Cancel the run")
        no.setText("Keep running")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setEscapeButton(no)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def done(result: int) -> None:
            self.confirm_box = None
            if box.clickedButton() is yes:
                cancel()

        box.finished.connect(done)
        self.confirm_box = box
        box.open()


class SettingsDialog(QDialog):
    """The settings, applied as they change; Close only closes. Opened window-modal with `open()`."""

    def __init__(self, ui: SettingsUi, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self._ui = ui
        self._loading = False
        self._checks: asyncio.Task[Any] | None = None

        self.theme = QComboBox()
        self.theme.setObjectName("themeChoice")
        for mode in THEMES:
            self.theme.addItem(THEME_LABELS[mode], mode)
        self.theme.currentIndexChanged.connect(lambda _i: self._change(theme=str(self.theme.currentData())))

        self.output_folder = QLineEdit()
        self.output_folder.setObjectName("outputFolder")
        self.output_folder.setPlaceholderText(str(ui.default_output_folder()))
        self.output_folder.setToolTip("Finished images are saved here, in a folder per day")
        self.output_folder.editingFinished.connect(self._folder_edited)
        browse = QPushButton("Browse…")
        browse.setObjectName("browseOutputFolder")
        browse.clicked.connect(self._browse)
        self.default_folder_button = QPushButton("Use default")
        self.default_folder_button.setObjectName("defaultOutputFolder")
        self.default_folder_button.clicked.connect(self._use_default_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.output_folder, 1)
        folder_row.addWidget(browse)
        folder_row.addWidget(self.default_folder_button)
        self.folder_error = QLabel()
        self.folder_error.setObjectName("outputFolderError")
        self.folder_error.setWordWrap(True)
        self.folder_error.hide()

        self.thumbnail_size = QComboBox()
        self.thumbnail_size.setObjectName("thumbnailSize")
        for name, px in THUMBNAIL_SIZES.items():
            self.thumbnail_size.addItem(f"{SIZE_LABELS[name]} ({px} px)", name)
        self.thumbnail_size.currentIndexChanged.connect(
            lambda _i: self._change(thumbnail_size=str(self.thumbnail_size.currentData()))
        )

        self.confirm_cancel = QCheckBox("Ask before Cancel stops a run")
        self.confirm_cancel.setObjectName("confirmCancel")
        self.confirm_cancel.toggled.connect(lambda on: self._change(confirm_cancel=on))
        self.reduce_motion = QCheckBox("Reduce motion (no animated menus or panels)")
        self.reduce_motion.setObjectName("reduceMotion")
        self.reduce_motion.toggled.connect(lambda on: self._change(reduce_motion=on))

        folder_label = QLabel("&Save images in")
        folder_label.setBuddy(self.output_folder)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("&Theme", self.theme)
        form.addRow(folder_label, folder_row)
        form.addRow("", self.folder_error)
        form.addRow("T&humbnails", self.thumbnail_size)
        form.addRow("Runs", self.confirm_cancel)
        form.addRow("Motion", self.reduce_motion)
        note = QLabel("Changes apply at once and are remembered.")
        note.setObjectName("settingsNote")
        note.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        footer = QHBoxLayout()
        footer.addWidget(note, 1)
        footer.addWidget(buttons)
        outer = QVBoxLayout(self)
        outer.addLayout(form)
        outer.addSpacing(8)
        outer.addLayout(footer)
        self.setMinimumWidth(640)
        self.resize(660, self.sizeHint().height())
        ui.preferences_changed.connect(self._sync)  # e.g. View -> Theme while the dialog is open

    def _sync(self, prefs: object) -> None:
        if isinstance(prefs, Preferences) and not self._loading:
            self._loading = True
            try:
                self.theme.setCurrentIndex(max(0, self.theme.findData(prefs.theme)))
                self.thumbnail_size.setCurrentIndex(
                    max(0, self.thumbnail_size.findData(prefs.thumbnail_size))
                )
                self.confirm_cancel.setChecked(prefs.confirm_cancel)
                self.reduce_motion.setChecked(prefs.reduce_motion)
            finally:
                self._loading = False

    def load(self, prefs: Preferences) -> None:
        """Show `prefs` in the fields (without applying anything)."""
        self._loading = True
        try:
            self.theme.setCurrentIndex(max(0, self.theme.findData(prefs.theme)))
            self.output_folder.setText(prefs.output_folder)
            self.thumbnail_size.setCurrentIndex(max(0, self.thumbnail_size.findData(prefs.thumbnail_size)))
            self.confirm_cancel.setChecked(prefs.confirm_cancel)
            self.reduce_motion.setChecked(prefs.reduce_motion)
            self._show_folder_error("")
        finally:
            self._loading = False

    def _change(self, **changes: Any) -> None:
        if not self._loading:
            self._ui.update(**changes)

    # -- the output folder -------------------------------------------------------------------------
    def set_output_folder(self, text: str) -> asyncio.Task[Any] | None:
        """Check the folder off the UI thread, then use it (or say why not, and keep the previous one)."""
        self.output_folder.setText(text)
        if not text.strip():
            self._use_default_folder()
            return None
        if text.strip() == self._ui.preferences.output_folder:
            self._show_folder_error("")
            return None
        self._checks = self._ui.window.ctx.tasks.start(self._check(text), what="Checking the folder")
        return self._checks

    async def _check(self, text: str) -> None:
        try:
            folder = await asyncio.to_thread(check_output_folder, text)
        except ValueError as exc:
            self._show_folder_error(str(exc))
            return
        self._show_folder_error("")
        self.output_folder.setText(str(folder))
        self._ui.update(output_folder=str(folder))

    def _folder_edited(self) -> None:
        if not self._loading:
            self.set_output_folder(self.output_folder.text())

    def _use_default_folder(self) -> None:
        self.output_folder.clear()
        self._show_folder_error("")
        self._ui.update(output_folder="")

    def _browse(self) -> None:
        start = str(self._ui.output_folder())
        dialog = QFileDialog(self, "Save images in", start)
        dialog.setObjectName("outputFolderDialog")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(self.set_output_folder)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def _show_folder_error(self, text: str) -> None:
        self.folder_error.setText(text)
        self.folder_error.setStyleSheet(f"color: {error_color(self.palette()).name()};" if text else "")
        self.folder_error.setVisible(bool(text))


def install_settings(window: MainWindow) -> SettingsUi:
    """Settings… in the File menu (above Quit), the Theme submenu in View, the saved preferences applied."""
    ui = SettingsUi(window)
    file_menu = window.file_menu
    quit_action = window.quit_action
    file_menu.insertAction(quit_action, ui.action)
    file_menu.insertSeparator(quit_action)
    view_menu: QMenu = window.view_menu
    view_menu.addMenu(ui.theme_menu)
    return ui
