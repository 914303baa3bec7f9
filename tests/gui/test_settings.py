"""Settings: each choice does what it says (theme live, output folder for results and "Save as", gallery
tile size, confirm on cancel, reduce motion) and is still there in a new window; the Profiles dialog shows
the profile actually in use. Real sockets (the fake ComfyUI), no sleeps."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from comfydesk.core.events import ExecutionStatus
from comfydesk.store.settings import Preferences, Settings
from comfydesk.testing import FakeConfig, RunningFake, start_fake_comfyui
from comfydesk.testing.demo import demo_object_info_path
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.profiles_dialog import ProfilesDialog
from comfydesk.ui.settings_dialog import SettingsDialog, check_output_folder
from comfydesk.ui.theme import apply_theme, current_theme, is_dark, motion_reduced, status_color
from tests.conftest import FIXTURES
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow
from tests.gui.test_flow import pattern_workflow, slow_workflow
from tests.gui.test_gallery_actions_window import add_output

RUN_TIMEOUT = 20_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop, qapp: QApplication) -> Iterator[OpenWindow]:
    """Windows as in the other tests; the app's theme and motion go back to the system's afterwards (the
    QApplication is shared by every test)."""
    try:
        yield from windows(qtbot)
    finally:
        apply_theme(qapp, "system")
        from comfydesk.ui.theme import set_reduce_motion

        set_reduce_motion(qapp, False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offline(qtbot: QtBot, open_window: OpenWindow, data_dir: Path) -> MainWindow:
    """A window on a closed port, once it has tried to connect (closing it before that races its start)."""
    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=data_dir)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    return window


def settings_dialog(window: MainWindow) -> SettingsDialog:
    window.settings_ui.action.trigger()
    dialog = window.findChild(QDialog, "settingsDialog")
    assert isinstance(dialog, SettingsDialog) and dialog.isVisible()
    return dialog


def choose(combo: object, data: str) -> None:
    from PySide6.QtWidgets import QComboBox

    assert isinstance(combo, QComboBox)
    index = combo.findData(data)
    assert index >= 0, data
    combo.setCurrentIndex(index)


# -- the settings file -----------------------------------------------------------------------------------
def test_preferences_defaults_old_files_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 1, "last_workflow": "local:a.json"}), encoding="utf-8")
    settings = Settings(path)
    assert settings.preferences == Preferences()  # a file from before the dialog: every default
    assert settings.last_workflow == "local:a.json"

    path.write_text(
        json.dumps(
            {
                "preferences": {
                    "theme": "purple",
                    "thumbnail_size": 999,
                    "confirm_cancel": "yes",
                    "reduce_motion": True,
                    "output_folder": 7,
                }
            }
        ),
        encoding="utf-8",
    )
    prefs = Settings(path).preferences  # hand-edited nonsense: the defaults, the one good value kept
    assert prefs == Preferences(reduce_motion=True)

    with pytest.raises(ValueError, match="theme must be one of system, light, dark"):
        Preferences(theme="purple")
    with pytest.raises(ValueError, match="thumbnail size must be one of small, medium, large"):
        Preferences(thumbnail_size="huge")

    settings = Settings(path)
    settings.preferences = Preferences(theme="dark", thumbnail_size="large", confirm_cancel=True)
    again = Settings(path).preferences
    assert (again.theme, again.tile_px, again.confirm_cancel) == ("dark", 240, True)


def test_output_folder_check_says_what_is_wrong(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_folder(str(a_file))
    with pytest.raises(ValueError, match="full path"):
        check_output_folder("relative/folder")
    with pytest.raises(ValueError, match="full path"):
        check_output_folder("   ")
    made = check_output_folder(str(tmp_path / "new" / "out"))
    assert made.is_dir()


# -- theme -----------------------------------------------------------------------------------------------
def test_theme_switches_live_and_is_remembered(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, artifacts_dir: Path
) -> None:
    window = offline(qtbot, open_window, tmp_path)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    assert not is_dark(window.palette())
    light_accent = status_color("disconnected", window.palette()).name()
    assert light_accent in window.connection_label.styleSheet()

    # View -> Theme -> Dark: the window repaints dark at once, accents follow.
    menu = window.settings_ui.theme_menu
    assert menu in [a.menu() for a in window.view_menu.actions() if a.menu() is not None]
    assert all(a.isEnabled() for a in menu.actions())
    window.settings_ui.theme_actions["dark"].trigger()
    qtbot.waitUntil(lambda: is_dark(window.palette()))
    assert is_dark(QApplication.palette()) and current_theme(QApplication.instance()) == "dark"  # type: ignore[arg-type]
    dark_accent = status_color("disconnected", window.palette()).name()
    assert dark_accent != light_accent
    qtbot.waitUntil(lambda: dark_accent in window.connection_label.styleSheet())
    window.grab().save(str(artifacts_dir / "settings-dark-window.png"))
    label = window.first_run.findChildren(type(window.connection_label))[0]
    assert label.palette().color(QPalette.ColorRole.WindowText).lightnessF() > 0.6  # light text on dark

    # The dialog shows it, and its combo switches it back live.
    dialog = settings_dialog(window)
    assert dialog.theme.currentData() == "dark"
    dialog.grab().save(str(artifacts_dir / "settings-dark.png"))
    choose(dialog.theme, "light")
    qtbot.waitUntil(lambda: not is_dark(window.palette()))
    assert window.settings_ui.theme_actions["light"].isChecked()
    choose(dialog.theme, "dark")
    dialog.reject()
    window.close()

    with pytest.raises(ValueError, match="theme must be system, light or dark"):
        apply_theme(QApplication.instance(), "purple")  # type: ignore[arg-type]
    assert is_dark(QApplication.palette())  # a bad mode changes nothing

    # Remembered: a new window on the same data dir starts dark.
    apply_theme(QApplication.instance(), "system")  # type: ignore[arg-type]
    assert not is_dark(QApplication.palette())
    second = offline(qtbot, open_window, tmp_path)
    assert second.settings_ui.theme_actions["dark"].isChecked()
    qtbot.waitUntil(lambda: is_dark(second.palette()))


# -- thumbnails, reduce motion -----------------------------------------------------------------------------
def test_thumbnail_size_reflows_the_gallery_and_is_remembered(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path
) -> None:
    window = offline(qtbot, open_window, tmp_path)
    gallery = window.gallery
    medium = gallery.delegate.cell_size()
    assert gallery.delegate.tile == 176
    dialog = settings_dialog(window)
    assert dialog.thumbnail_size.currentData() == "medium"
    choose(dialog.thumbnail_size, "small")
    small = gallery.delegate.cell_size()
    assert gallery.delegate.tile == 128 and small.width() < medium.width()
    assert gallery.gridSize().height() == small.height()
    choose(dialog.thumbnail_size, "large")
    assert gallery.delegate.tile == 240 and gallery.gridSize().height() > medium.height()
    dialog.reject()
    window.close()
    second = offline(qtbot, open_window, tmp_path)
    assert second.gallery.delegate.tile == 240
    assert second.gallery.gridSize().height() == second.gallery.delegate.cell_size().height()


def test_reduce_motion_turns_animations_off(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    window = offline(qtbot, open_window, tmp_path)
    assert window.isAnimated() and not motion_reduced()
    dialog = settings_dialog(window)
    dialog.reduce_motion.setChecked(True)
    assert not window.isAnimated()  # docks jump instead of sliding
    assert motion_reduced()
    for effect in (Qt.UIEffect.UI_AnimateMenu, Qt.UIEffect.UI_AnimateCombo, Qt.UIEffect.UI_AnimateTooltip):
        assert not QApplication.isEffectEnabled(effect)
    dialog.reject()
    window.close()
    second = offline(qtbot, open_window, tmp_path)
    assert not second.isAnimated() and motion_reduced()
    settings_dialog(second).reduce_motion.setChecked(False)
    assert second.isAnimated() and not motion_reduced()


# -- output folder ---------------------------------------------------------------------------------------
@pytest.fixture
def demo_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(
            object_info=demo_object_info_path(), data_dir=tmp_path / "fake", step_delay=0.002, demo=True
        )
    )
    yield fake
    fake.stop()


def test_output_folder_gets_the_results_and_save_as_starts_there(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Pattern", pattern_workflow(steps=4, size=64))
    window = open_window(server=demo_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)

    dialog = settings_dialog(window)
    a_file = tmp_path / "a-file.png"
    a_file.write_bytes(b"x")
    dialog.set_output_folder(str(a_file))  # bad: said in the dialog, nothing changes
    qtbot.waitUntil(lambda: dialog.folder_error.isVisible(), timeout=5_000)
    assert "is a file, not a folder" in dialog.folder_error.text()
    assert window.ctx.settings.preferences.output_folder == ""

    out = tmp_path / "My renders"
    dialog.set_output_folder(str(out))
    qtbot.waitUntil(lambda: window.ctx.controller.results_dir == out, timeout=5_000)
    assert not dialog.folder_error.isVisible()
    assert window.ctx.settings.preferences.output_folder == str(out)
    dialog.reject()

    window.run_workflow()
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    saved = list(out.glob("*/*.png"))
    assert len(saved) == 1  # in the user's folder, a folder per day
    assert not list((data_dir / "results").glob("*/*.png"))

    # "Save as" starts in that folder.
    record = add_output(qtbot, window.ctx.journal, 3, "txt2img_tiny_sd15.png")
    actions = window.gallery_actions
    actions.set_selection([record])
    actions.save_as()
    save_dialog = actions.dialog
    assert isinstance(save_dialog, QFileDialog) and save_dialog.isVisible()
    assert Path(save_dialog.directory().absolutePath()) == out
    save_dialog.reject()

    # "Use default" goes back to the data dir's results folder; remembered across windows either way.
    settings_dialog(window).default_folder_button.click()
    assert window.ctx.controller.results_dir == data_dir / "results"
    assert window.gallery_actions.last_folder == str(data_dir / "results")


# -- confirm on cancel -----------------------------------------------------------------------------------
@pytest.fixture
def slow_fake(tmp_path: Path) -> Iterator[RunningFake]:
    fake = start_fake_comfyui(
        FakeConfig(object_info=FIXTURES / "object_info.json", data_dir=tmp_path / "fake")
    )
    yield fake
    fake.stop()


def test_confirm_on_cancel_asks_and_no_keeps_the_run(
    qtbot: QtBot, open_window: OpenWindow, slow_fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Slow", slow_workflow(steps=[1000], delay=0.01))
    window = open_window(server=slow_fake.url, data_dir=data_dir)
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    dialog = settings_dialog(window)
    dialog.confirm_cancel.setChecked(True)
    dialog.reject()
    assert window.ctx.settings.preferences.confirm_cancel

    window.run_workflow()
    qtbot.waitUntil(lambda: window.ctx.run_state.status is ExecutionStatus.RUNNING, timeout=RUN_TIMEOUT)
    window.cancel_button.click()
    box = window.findChild(QMessageBox, "confirmCancelBox")
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "Cancel the run?" in box.text()
    box.grab().save(str(artifacts_dir / "settings-confirm-cancel.png"))
    keep = box.button(QMessageBox.StandardButton.No)
    assert keep is not None and keep.text() == "Keep running"
    step_before = window.ctx.run_state.step_progress[0]
    keep.click()
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "confirmCancelBox") is None, timeout=5_000)
    # Still going: the steps keep coming and nothing was interrupted.
    qtbot.waitUntil(lambda: window.ctx.run_state.step_progress[0] > step_before + 5, timeout=RUN_TIMEOUT)
    assert window.ctx.run_state.status is ExecutionStatus.RUNNING and window.ctx.controller.busy

    window.cancel_action.trigger()  # Esc asks too; this time: yes
    box = window.findChild(QMessageBox, "confirmCancelBox")
    assert isinstance(box, QMessageBox)
    yes = box.button(QMessageBox.StandardButton.Yes)
    assert yes is not None and yes.text() == "Cancel the run"
    yes.click()
    qtbot.waitUntil(lambda: not window.ctx.controller.busy, timeout=RUN_TIMEOUT)
    assert window.ctx.run_state.status is ExecutionStatus.CANCELLED


# -- profiles --------------------------------------------------------------------------------------------
def test_profiles_dialog_shows_the_server_in_use(
    qtbot: QtBot, open_window: OpenWindow, demo_fake: RunningFake, tmp_path: Path, artifacts_dir: Path
) -> None:
    # The saved default is the local :8188; the app was started with --server on the fake's port.
    window = open_window(server=demo_fake.url, data_dir=tmp_path)
    wait_connected(qtbot, window)
    assert window.ctx.profiles.store.first().url.endswith(":8188")
    window.show_profiles()
    dialog = window.findChild(QDialog, "profilesDialog")
    assert isinstance(dialog, ProfilesDialog) and dialog.isVisible()
    port = demo_fake.url.rsplit(":", 1)[1]
    assert dialog.url.text() == demo_fake.url  # the editor shows the address in use, not :8188
    assert f":{port}" in dialog.in_use.text() and "connected" in dialog.in_use.text()
    current = dialog.list.currentItem()
    assert current is not None and current.text().endswith("(in use)") and current.font().italic()
    assert "Not saved" in dialog.in_use.text()
    dialog.grab().save(str(artifacts_dir / "profiles-in-use.png"))

    # Save keeps it as a profile of its own; the list then marks that one as in use.
    dialog.name.setText("Fake box")
    saved = dialog.save_profile()
    assert saved.id not in ("cli", "demo") and saved.url == demo_fake.url
    assert window.ctx.profiles.store.get(saved.id) is not None
    current = dialog.list.currentItem()
    assert current is not None and current.text() == "Fake box (in use)"
    assert current.font().bold() and not current.font().italic()
    assert "Not saved" not in dialog.in_use.text() and "Fake box" in dialog.in_use.text()
    assert dialog.list.count() == 2  # Local ComfyUI and the new one: no unsaved entry any more
    dialog.reject()
    window.close()

    # Next start with the same --server: the saved profile with that address is the one shown.
    second = open_window(server=demo_fake.url, data_dir=tmp_path)
    wait_connected(qtbot, second)
    second.edit_profile(None)
    dialog2 = second.findChild(QDialog, "profilesDialog")
    assert isinstance(dialog2, ProfilesDialog)
    assert dialog2.url.text() == demo_fake.url and dialog2.name.text() == "Fake box"


def test_settings_dialog_screenshot(
    qtbot: QtBot, open_window: OpenWindow, tmp_path: Path, artifacts_dir: Path
) -> None:
    window = offline(qtbot, open_window, tmp_path)
    dialog = settings_dialog(window)
    dialog.confirm_cancel.setChecked(True)
    qtbot.waitExposed(dialog)
    dialog.grab().save(str(artifacts_dir / "settings.png"))
    assert (artifacts_dir / "settings.png").stat().st_size > 0
    assert [dialog.theme.itemText(i) for i in range(dialog.theme.count())] == [
        "Same as the system",
        "Light",
        "Dark",
    ]
