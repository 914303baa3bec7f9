"""The window's gateway parts: Publish / Update / Delete on the server, the rate-limit countdown in the
status bar, and "The server rejected the token" with a way to the profile.

`GatewayUi` binds to the window's `AppContext` (its `gateway`, `publisher` and `library` models) and adds
its actions to the File menu and the workflow pane's context menu. It starts no work: the publish dialog
and the confirmation hand their answer to `PublishModel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMenu, QMessageBox

from comfydesk.app.connection import GATEWAY_KIND, TOKEN_REJECTED
from comfydesk.app.gateway import TOKEN_HINT, describe_throttle
from comfydesk.app.tasks import EDIT_PROFILE, AppError
from comfydesk.core.messages import CATALOGUE, SIGN_IN_REFUSED
from comfydesk.store.profiles import Profile

if TYPE_CHECKING:
    from comfydesk.ui.main_window import MainWindow
    from comfydesk.ui.publish_dialog import PublishDialog

__all__ = ["GatewayUi"]

MESSAGE_MS = 8000


class GatewayUi(QObject):
    """See the module docstring; made by the main window, which owns it."""

    def __init__(self, window: MainWindow, file_menu: QMenu) -> None:
        super().__init__(window)
        self._window = window
        ctx = window.ctx
        self._ctx = ctx
        self.publish_action = self._action("&Publish to server…", self.publish, "Ctrl+Shift+P")
        self.publish_action.setStatusTip("Put the selected workflow in the gateway's shared library")
        self.update_action = self._action("&Update on server…", self.update_on_server, "Ctrl+Shift+U")
        self.update_action.setStatusTip("Publish the selected server workflow again, with changes")
        self.delete_action = self._action("De&lete from server…", self.delete_from_server)
        self.delete_action.setStatusTip("Remove the selected workflow from the gateway's library")
        actions = [self.publish_action, self.update_action, self.delete_action]
        file_menu.insertSeparator(file_menu.actions()[-1])
        for action in actions:
            file_menu.insertAction(file_menu.actions()[-2], action)
        window.workflow_pane.add_context_actions(actions)

        self.throttle_label = QLabel()
        self.throttle_label.setObjectName("throttleStatus")
        self.throttle_label.setAccessibleName("Rate limit")
        self.throttle_label.setVisible(False)
        window.statusBar().addPermanentWidget(self.throttle_label)
        self.dialog: PublishDialog | None = None

        ctx.gateway.available_changed.connect(lambda _a: self._update_actions())
        ctx.gateway.throttle_changed.connect(self._on_throttle)
        ctx.gateway.token_rejected_changed.connect(self._on_token_rejected)
        ctx.library.current_changed.connect(lambda _c: self._update_actions())
        ctx.publisher.busy_changed.connect(lambda _b: self._update_actions())
        ctx.publisher.message_changed.connect(lambda t: window.statusBar().showMessage(t, MESSAGE_MS))
        ctx.errors.error_changed.connect(self._on_error)  # after the window's own: the view shows it first
        window.error_view.action_requested.connect(self._edit_rejected_profile)
        self._update_actions()
        self._on_token_rejected(ctx.gateway.token_rejected)

    def _action(self, text: str, slot: object, shortcut: str = "") -> QAction:
        action = QAction(text, self._window)
        tip = text.replace("&", "").rstrip("…")
        if shortcut:
            action.setShortcut(shortcut)
            tip += f" ({shortcut})"
        action.setToolTip(tip)
        action.triggered.connect(slot)
        self._window.addAction(action)
        return action

    # -- actions -----------------------------------------------------------------------------------
    def publish(self) -> None:
        """Open the publish dialog for the selected local workflow."""
        if self.publish_action.isEnabled():
            self._open_dialog()

    def update_on_server(self) -> None:
        """Open the publish dialog on the selected server workflow (re-publishing replaces it)."""
        if self.update_action.isEnabled():
            self._open_dialog()

    def _open_dialog(self) -> None:
        current = self._ctx.library.current
        if current is None or current.spec is None:
            return
        from comfydesk.ui.publish_dialog import PublishDialog  # imported when first opened

        self.dialog = PublishDialog(self._ctx.publisher, current, self._window.form.values(), self._window)
        self.dialog.destroyed.connect(self._forget_dialog)
        self.dialog.open()

    def _forget_dialog(self) -> None:
        self.dialog = None

    def delete_from_server(self) -> None:
        """Ask first; then the publisher deletes the selected server workflow."""
        current = self._ctx.library.current
        if not self.delete_action.isEnabled() or current is None or current.entry.workflow_id is None:
            return
        entry = current.entry
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete from server",
            f"Delete “{entry.name}” from the server? Everyone using this gateway loses it; "
            "results already made stay where they are.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self._window,
        )
        box.setObjectName("confirmServerDelete")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        workflow_id = current.entry.workflow_id
        name = entry.name
        box.buttonClicked.connect(
            lambda b: (
                self._ctx.publisher.delete(workflow_id, name)
                if box.standardButton(b) == QMessageBox.StandardButton.Yes
                else None
            )
        )
        box.open()  # window-modal, never a blocking exec()

    # -- model -> view -----------------------------------------------------------------------------
    def _update_actions(self) -> None:
        ctx = self._ctx
        current = ctx.library.current
        ready = ctx.gateway.available and current is not None and not ctx.publisher.busy
        stored = ready and current is not None and current.runs_on_server
        has_form = current is not None and current.spec is not None
        self.publish_action.setEnabled(ready and has_form and not stored)
        self.update_action.setEnabled(stored and has_form)
        self.delete_action.setEnabled(stored)

    def _on_throttle(self, left: object) -> None:
        if isinstance(left, int):
            self.throttle_label.setText(describe_throttle(left))
            self.throttle_label.setVisible(True)
        else:
            self.throttle_label.clear()
            self.throttle_label.setVisible(False)

    def _on_token_rejected(self, profile: object) -> None:
        if isinstance(profile, Profile):
            if profile.kind == GATEWAY_KIND:
                self._window.first_run.set_sign_in_refused(TOKEN_REJECTED, TOKEN_HINT)
            else:  # a ComfyUI behind a password or token: the catalogue's words, not the gateway's hint
                self._window.first_run.set_sign_in_refused(SIGN_IN_REFUSED, CATALOGUE["AuthenticationError"])
        else:
            self._window.first_run.set_sign_in_refused(None)

    def _on_error(self, error: object) -> None:
        offer = isinstance(error, AppError) and error.action == EDIT_PROFILE
        self._window.error_view.set_action("Edit profile…" if offer else None)

    def _edit_rejected_profile(self) -> None:
        profile = self._ctx.gateway.token_rejected or self._ctx.connection.profile
        self._window.edit_profile(profile.id if profile is not None else None)
