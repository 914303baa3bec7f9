"""The window against a comfydesk gateway over real sockets: a gateway profile (token in the keyring), the
server's library, publishing the spec's "Blog Post Image" through the dialog, running it (the gateway runs
its stored graph with the placeholder values), update and delete, a rejected token, a rate-limit wait.
No sleeps: every wait is on a condition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDialog, QLabel, QMessageBox
from pytestqt.qtbot import QtBot

from comfydesk.app.connection import TOKEN_REJECTED
from comfydesk.app.gateway import TOKEN_HINT, describe_throttle
from comfydesk.app.library import CurrentWorkflow
from comfydesk.app.publish import PublishResult
from comfydesk.backends.base import Throttled
from comfydesk.core.events import ExecutionStatus
from comfydesk.gateway.testing import RunningGateway, start_gateway
from comfydesk.ui.main_window import MainWindow
from comfydesk.ui.profiles_dialog import ProfilesDialog
from comfydesk.ui.publish_dialog import PublishDialog
from tests.gui.gateway_helpers import (
    BLOG_POST_IMAGE,
    GATEWAY_PROFILE_ID,
    SERVICE,
    MemoryKeyring,
    memory_keyring,
    save_gateway_profile,
    server_workflows,
    token_refused,
)
from tests.gui.helpers import OpenWindow, pick, wait_connected, windows, write_workflow
from tests.gui.test_main_window import closed_port

RUN_TIMEOUT = 30_000


@pytest.fixture
def open_window(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OpenWindow]:
    yield from windows(qtbot)


@pytest.fixture
def ring(open_window: OpenWindow) -> Iterator[MemoryKeyring]:
    """A working (in-memory) keyring, installed after `windows` put the failing one in."""
    yield from memory_keyring()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway in front of its own demo engine (text_to_image -> one 1024x768 image)."""
    gw = start_gateway(data_dir=tmp_path / "gateway", demo_step_delay=0.001)
    yield gw
    gw.stop()


def open_on_gateway(
    qtbot: QtBot, open_window: OpenWindow, ring: MemoryKeyring, gw: RunningGateway, data_dir: Path, token: str
) -> MainWindow:
    save_gateway_profile(data_dir, gw.url, token, ring)
    return open_window(server=None, data_dir=data_dir)


def publish_blog_post_image(qtbot: QtBot, window: MainWindow, shot: Path | None = None) -> CurrentWorkflow:
    """Publish the local "Blog Post Image" through the dialog with both prompts as placeholders."""
    ui = window.gateway_ui
    qtbot.waitUntil(ui.publish_action.isEnabled, timeout=10_000)
    ui.publish_action.trigger()
    dialog = window.findChild(PublishDialog, "publishDialog")
    assert isinstance(dialog, PublishDialog) and dialog.isVisible() and not dialog.updating
    assert dialog.name.text() == "Blog Post Image"
    prompt = dialog.row("text_to_image.prompt")
    negative = dialog.row("text_to_image.negative_prompt")
    assert prompt.name.text() == "prompt" and not prompt.check.isChecked()
    prompt.check.setChecked(True)
    assert prompt.check.text() == "becomes a {prompt}"
    negative.check.setChecked(True)
    dialog.description.setPlainText("Generate blog post header image")
    if shot is not None:
        dialog.grab().save(str(shot))
    done: list[object] = []
    window.ctx.publisher.done.connect(done.append)
    dialog.publish_button.click()
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    result = done[0]
    assert isinstance(result, PublishResult) and result.action == "published"
    qtbot.waitUntil(lambda: window.gateway_ui.dialog is None, timeout=5_000)  # closed and deleted
    key = f"server:{result.workflow_id}"
    qtbot.waitUntil(
        lambda: (
            window._current is not None
            and window._current.key == key
            and window._current.spec is not None
            and window.form.spec() is window._current.spec
        ),
        timeout=10_000,
    )
    assert window._current is not None
    return window._current


# -- profiles ---------------------------------------------------------------------------------------------
def test_gateway_profile_kind_saves_token_in_keyring(
    qtbot: QtBot, open_window: OpenWindow, ring: MemoryKeyring, tmp_path: Path
) -> None:
    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path)
    window.show_profiles()
    dialog = window.findChild(QDialog, "profilesDialog")
    assert isinstance(dialog, ProfilesDialog) and dialog.isVisible()
    assert "keyring" in dialog.secret_note.text()
    kind = dialog.findChild(QComboBox, "profileKind")
    assert kind is not None
    index = kind.findData("v1-gateway")
    assert kind.model().flags(kind.model().index(index, 0)) & Qt.ItemFlag.ItemIsEnabled  # type: ignore[union-attr]

    dialog.add_profile()
    dialog.name.setText("Team gateway")
    kind.setCurrentIndex(index)
    assert dialog.auth.currentData() == "token" and not dialog.auth.isEnabled()  # implied: a token
    assert dialog.secret.isEnabled() and not dialog.username.isEnabled()
    dialog.url.setText("https://gateway.example:8000")
    dialog.secret.setText("gw-t0ken")
    profile = dialog.save_profile()
    assert profile.kind == "v1-gateway" and profile.auth == "token"
    assert ring.get_password(SERVICE, profile.secret_key) == "gw-t0ken"
    assert "gw-t0ken" not in (tmp_path / "profiles.json").read_text()
    assert window.ctx.profiles.store.get(profile.id) == profile

    # Back to a ComfyUI kind: the sign-in choice is the user's again.
    kind.setCurrentIndex(kind.findData("comfyui-remote"))
    assert dialog.auth.isEnabled()
    dialog.reject()


# -- the publish dialog on its own ------------------------------------------------------------------------
def test_publish_dialog_checks_placeholder_names(
    qtbot: QtBot, open_window: OpenWindow, ring: MemoryKeyring, gateway: RunningGateway, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Blog Post Image", BLOG_POST_IMAGE)
    window = open_on_gateway(qtbot, open_window, ring, gateway, data_dir, gateway.create_token("ann"))
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    assert window.gateway_ui.publish_action.isEnabled()
    assert not window.gateway_ui.update_action.isEnabled()
    assert not window.gateway_ui.delete_action.isEnabled()

    window.gateway_ui.publish()
    dialog = window.findChild(PublishDialog, "publishDialog")
    assert isinstance(dialog, PublishDialog)
    prompt = dialog.row("text_to_image.prompt")
    negative = dialog.row("text_to_image.negative_prompt")
    assert not prompt.name.isEnabled()  # only a chosen input has a name to edit
    prompt.check.setChecked(True)
    negative.check.setChecked(True)
    negative.name.setText("prompt")  # the same name twice
    dialog.name.setText("")
    dialog.publish()
    lines = dialog.errors.text().splitlines()
    assert lines == ["The workflow needs a name.", "The placeholder name “prompt” is used twice."]
    assert dialog.errors.isVisible()

    negative.name.setText("2nd")
    dialog.name.setText("Blog Post Image")
    dialog.publish()
    assert "“2nd” cannot be a placeholder name" in dialog.errors.text()
    assert server_workflows(gateway.url, gateway.admin_token) == []  # nothing was sent
    dialog.reject()


def pattern_workflow(size: int) -> dict[str, object]:
    return {
        "1": {
            "class_type": "DemoPattern",
            "inputs": {
                "pattern": "plasma",
                "seed": 5,
                "width": size,
                "height": size,
                "steps": 4,
                "color_a": 1777502,
                "color_b": 16757575,
            },
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo"}},
    }


def test_publish_dialog_shows_server_validation_errors_one_per_line(
    qtbot: QtBot, open_window: OpenWindow, ring: MemoryKeyring, gateway: RunningGateway, tmp_path: Path
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Too big", pattern_workflow(100_000))  # beyond DemoPattern's max
    window = open_on_gateway(qtbot, open_window, ring, gateway, data_dir, gateway.create_token("ann"))
    wait_connected(qtbot, window)
    pick(qtbot, window, key)
    window.gateway_ui.publish()
    dialog = window.findChild(PublishDialog, "publishDialog")
    assert isinstance(dialog, PublishDialog)
    dialog.row("1.seed").check.setChecked(True)
    failed: list[object] = []
    window.ctx.publisher.failed.connect(failed.append)
    dialog.publish_button.click()
    # The model says it failed; the dialog shows it, and the button comes back once the task has ended
    # (a done-callback, on a later turn of the loop).
    qtbot.waitUntil(
        lambda: (
            bool(failed) and len(dialog.errors.text().splitlines()) == 2 and dialog.publish_button.isEnabled()
        ),
        timeout=10_000,
    )
    lines = dialog.errors.text().splitlines()
    assert dialog.errors.isVisible() and dialog.isVisible()
    assert "width" in lines[0] and "height" in lines[1]
    assert server_workflows(gateway.url, gateway.admin_token) == []
    dialog.reject()


# -- the whole flow ---------------------------------------------------------------------------------------
def test_publish_run_update_delete_through_gateway(
    qtbot: QtBot,
    open_window: OpenWindow,
    ring: MemoryKeyring,
    gateway: RunningGateway,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    data_dir = tmp_path / "app"
    key = write_workflow(data_dir, "Blog Post Image", BLOG_POST_IMAGE)
    window = open_on_gateway(qtbot, open_window, ring, gateway, data_dir, gateway.create_token("ann"))
    window.resize(1400, 900)
    wait_connected(qtbot, window)
    assert window.connection_label.text().startswith("Connected: comfydesk gateway")
    assert window.workflow_pane.visible_names("server") == []
    pick(qtbot, window, key)

    # Publish: the server's library lists it; the window moves on to the stored workflow.
    current = publish_blog_post_image(qtbot, window, artifacts_dir / "21-publish-dialog.png")
    assert current.runs_on_server and current.entry.source == "server"
    assert window.workflow_pane.visible_names("server") == ["Blog Post Image"]
    (stored,) = server_workflows(gateway.url, gateway.admin_token)
    assert stored["name"] == "Blog Post Image"
    assert stored["description"] == "Generate blog post header image"
    assert stored["nodes"] == [
        {
            "id": "text_to_image",
            "type": "text_to_image",
            "inputs": {"prompt": "{prompt}", "negative_prompt": "{negative_prompt}"},
        }
    ]
    assert window.gateway_ui.update_action.isEnabled() and window.gateway_ui.delete_action.isEnabled()
    assert not window.gateway_ui.publish_action.isEnabled()

    # Run it: only the placeholders are fields; the form says the server runs its own graph.
    spec = current.spec
    assert spec is not None and [f.key for f in spec.placeholders] == ["prompt", "negative_prompt"]
    note = window.form.findChild(QLabel, "serverGraphNote")
    assert note is not None and note.isVisible() and "stored on the server" in note.text()
    assert window.form.rows["prompt"].editor.isEnabled()
    window.form.set_value("prompt", "A beautiful landscape")
    window.form.set_value("negative_prompt", "ugly, blurry")
    sent: list[object] = []
    window.ctx.controller.submitted.connect(sent.append)
    qtbot.waitUntil(window.run_button.isEnabled, timeout=5_000)
    window.run_button.click()
    qtbot.waitUntil(lambda: window.results.count() == 1, timeout=RUN_TIMEOUT)
    assert window.ctx.run_state.status is ExecutionStatus.COMPLETED
    execution = sent[0]
    assert getattr(execution, "workflow_id", None) == str(stored["id"])
    item = window.results.results()[0]
    with Image.open(item.path) as image:
        assert image.size == (1024, 768)
    assert item.workflow_name == "Blog Post Image"
    shot = Path("/tmp/comfydesk-gateway-result.png")
    window.grab().save(str(shot))
    window.grab().save(str(artifacts_dir / "20-gateway-result.png"))

    # Update: the dialog opens on the stored workflow with its placeholders ticked.
    done: list[object] = []
    window.ctx.publisher.done.connect(done.append)
    window.gateway_ui.update_action.trigger()
    dialog = window.findChild(PublishDialog, "publishDialog")
    assert isinstance(dialog, PublishDialog) and dialog.updating
    assert dialog.row("prompt").check.isChecked() and dialog.row("negative_prompt").check.isChecked()
    dialog.row("negative_prompt").check.setChecked(False)  # the negative prompt becomes fixed text
    dialog.description.setPlainText("Header images for the blog")
    dialog.publish_button.click()
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    assert isinstance(done[0], PublishResult) and done[0].action == "updated"
    (updated,) = server_workflows(gateway.url, gateway.admin_token)
    assert updated["id"] == stored["id"] and updated["description"] == "Header images for the blog"
    assert updated["nodes"][0]["inputs"] == {"prompt": "{prompt}", "negative_prompt": "ugly, blurry"}
    qtbot.waitUntil(
        lambda: (
            window._current is not None
            and window._current.spec is not None
            and [f.key for f in window._current.spec.placeholders] == ["prompt"]
            and window.form.spec() is window._current.spec
        ),
        timeout=10_000,
    )
    # The fixed negative prompt is shown, read-only: the server runs its own value.
    fixed = window.form.rows["text_to_image.negative_prompt"]
    assert not fixed.editor.isEnabled() and fixed.editor.value() == "ugly, blurry"
    note = window.form.findChild(QLabel, "serverGraphNote")
    assert note is not None and "cannot be changed here" in note.text()
    window.grab().save(str(artifacts_dir / "22-gateway-updated.png"))

    # Delete: asked first; Cancel keeps it, Yes removes it from the server and the library.
    window.gateway_ui.delete_action.trigger()
    box = window.findChild(QMessageBox, "confirmServerDelete")
    assert isinstance(box, QMessageBox) and "Blog Post Image" in box.text()
    cancel = box.button(QMessageBox.StandardButton.Cancel)
    assert cancel is not None
    cancel.click()
    assert len(server_workflows(gateway.url, gateway.admin_token)) == 1
    window.gateway_ui.delete_action.trigger()
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "confirmServerDelete") is not None, timeout=2_000)
    box = window.findChild(QMessageBox, "confirmServerDelete")
    assert box is not None
    yes = box.button(QMessageBox.StandardButton.Yes)
    assert yes is not None
    yes.click()
    qtbot.waitUntil(lambda: window.workflow_pane.visible_names("server") == [], timeout=10_000)
    assert server_workflows(gateway.url, gateway.admin_token) == []
    assert window._current is None


# -- trouble ----------------------------------------------------------------------------------------------
def test_bad_token_says_rejected_and_opens_the_profile(
    qtbot: QtBot,
    open_window: OpenWindow,
    ring: MemoryKeyring,
    gateway: RunningGateway,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    window = open_on_gateway(qtbot, open_window, ring, gateway, tmp_path / "app", "not-a-token")
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    assert TOKEN_REJECTED in window.first_run.title.text()
    assert window.first_run.reason.text() == TOKEN_HINT  # what to do, not the title again
    assert window.first_run.edit_button.text() == "&Edit profile…"
    assert window.connection_label.text() == f"Disconnected: {TOKEN_REJECTED}"
    window.grab().save(str(artifacts_dir / "23-token-rejected.png"))
    window.first_run.edit_button.click()
    dialog = window.findChild(QDialog, "profilesDialog")
    assert isinstance(dialog, ProfilesDialog) and dialog.isVisible()
    assert dialog.current_profile().id == GATEWAY_PROFILE_ID

    # A good token, and Connect: the panel goes, the window is connected.
    dialog.secret.setText(gateway.create_token("ann"))
    dialog.connect_profile()
    wait_connected(qtbot, window)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.splitter, timeout=5_000)
    assert window.ctx.gateway.token_rejected is None


def test_revoked_token_mid_session_shows_rejected_with_edit_profile(
    qtbot: QtBot,
    open_window: OpenWindow,
    ring: MemoryKeyring,
    gateway: RunningGateway,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    token = gateway.create_token("bob")
    window = open_on_gateway(qtbot, open_window, ring, gateway, tmp_path / "app", token)
    wait_connected(qtbot, window)
    assert gateway.revoke_token("bob")
    # The gateway caches a token for a moment: wait until it refuses this one, then let the window ask.
    qtbot.waitUntil(lambda: token_refused(gateway.url, token), timeout=10_000)
    window.ctx.library.refresh_server()
    qtbot.waitUntil(lambda: window.error_view.isVisible(), timeout=10_000)
    assert window.error_view.message.text().startswith(TOKEN_REJECTED)
    button = window.error_view.action_button
    assert button.isVisible() and button.text() == "Edit profile…"
    window.grab().save(str(artifacts_dir / "24-token-revoked.png"))
    button.click()
    dialog = window.findChild(QDialog, "profilesDialog")
    assert isinstance(dialog, ProfilesDialog) and dialog.isVisible()
    assert dialog.current_profile().id == GATEWAY_PROFILE_ID
    dialog.reject()


def test_rate_limit_wait_counts_down_in_the_status_bar(
    qtbot: QtBot, open_window: OpenWindow, ring: MemoryKeyring, tmp_path: Path, artifacts_dir: Path
) -> None:
    gw = start_gateway(data_dir=tmp_path / "gateway", rate_limit="100000/minute", burst=2)
    try:
        window = open_on_gateway(qtbot, open_window, ring, gw, tmp_path / "app", gw.create_token("ann"))
        label = window.gateway_ui.throttle_label
        seen: list[str] = []
        window.ctx.gateway.throttle_changed.connect(lambda left: seen.append(label.text()))
        # Connecting and listing make more than two requests a second: the backend is told to wait.
        qtbot.waitUntil(lambda: label.isVisible(), timeout=15_000)
        assert label.text().startswith("The server is busy (rate limit): retrying in ")
        window.grab().save(str(artifacts_dir / "25-rate-limited.png"))
        wait_connected(qtbot, window, timeout=20_000)
        qtbot.waitUntil(lambda: not label.isVisible(), timeout=15_000)  # the wait is over
        assert seen[0].startswith("The server is busy")
    finally:
        gw.stop()


def test_throttle_countdown_counts_each_second(qtbot: QtBot, open_window: OpenWindow, tmp_path: Path) -> None:
    window = open_window(server=f"http://127.0.0.1:{closed_port()}", data_dir=tmp_path, show=False)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run, timeout=10_000)
    label = window.gateway_ui.throttle_label
    texts: list[str] = []
    window.ctx.gateway.throttle_changed.connect(lambda _left: texts.append(label.text()))
    window.ctx.connection.throttled.emit(Throttled(2.5, "listing the workflows"))
    assert label.text() == describe_throttle(3)
    qtbot.waitUntil(lambda: describe_throttle(2) in texts, timeout=3_000)
    qtbot.waitUntil(lambda: texts[-1] == "", timeout=4_000)
    assert texts == [describe_throttle(3), describe_throttle(2), describe_throttle(1), ""]
