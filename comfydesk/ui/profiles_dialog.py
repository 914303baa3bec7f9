"""The connection profiles dialog: add, edit, test and delete profiles; say where tokens are kept.

Kinds: local ComfyUI, remote ComfyUI (URL, token or basic auth, CA file), and a comfydesk gateway speaking
/api/v1 (URL and token: a gateway always signs in by token, so the sign-in choice is fixed). Without a
system keyring the dialog says plainly that tokens last for this session only, and offers the file readable
only by the user. Opened window-modal with `open()`.

The dialog shows the profile actually in use, the one the connection talks to, at the top and selected:
a saved profile is marked "in use"; an address given on the command line (`--server`) or the demo engine
is not a saved profile, so it is listed first as "not saved" and Save keeps it as a new one.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from comfydesk.app.connection import GATEWAY_KIND, ConnectionModel, server_name
from comfydesk.app.context import ProfilesModel
from comfydesk.app.tasks import AppError
from comfydesk.backends.base import ConnectionState, ServerInfo
from comfydesk.store.profiles import DEFAULT_LOCAL_URL, Profile

__all__ = ["ProfilesDialog"]


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


ID_ROLE = Qt.ItemDataRole.UserRole
KINDS = (
    ("comfyui-local", "Local ComfyUI"),
    ("comfyui-remote", "Remote ComfyUI"),
    (GATEWAY_KIND, "/api/v1 gateway (comfydesk serve)"),
)
AUTHS = (("none", "No sign-in"), ("token", "Token"), ("basic", "User name and password"))


class ProfilesDialog(QDialog):
    """Edits `ProfilesModel`; "Connect" asks the window to switch to the selected profile."""

    def __init__(
        self,
        profiles: ProfilesModel,
        connection: ConnectionModel,
        *,
        on_connect: object = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("profilesDialog")
        self.setWindowTitle("Connection profiles")
        self._profiles = profiles
        self._connection = connection
        self._on_connect = on_connect
        self._editing: Profile | None = None
        self._unsaved: Profile | None = None  # the profile in use when it is not a saved one

        self.in_use = QLabel()
        self.in_use.setObjectName("inUseLabel")
        self.in_use.setWordWrap(True)
        self.in_use.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.list = QListWidget()
        self.list.setObjectName("profileList")
        self.list.setAccessibleName("Profiles")
        self.list.currentItemChanged.connect(self._on_select)
        add = QPushButton("&Add")
        add.setObjectName("addProfileButton")
        add.clicked.connect(self.add_profile)
        self.delete_button = QPushButton("&Delete")
        self.delete_button.setObjectName("deleteProfileButton")
        self.delete_button.clicked.connect(self.delete_profile)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(self.delete_button)
        left.addLayout(row)

        self.name = QLineEdit()
        self.name.setObjectName("profileName")
        self.kind = QComboBox()
        self.kind.setObjectName("profileKind")
        for value, label in KINDS:
            self.kind.addItem(label, value)
        gateway_tip = "A comfydesk gateway: a shared workflow library, signed in by token"
        self.kind.setItemData(2, gateway_tip, Qt.ItemDataRole.ToolTipRole)
        self.url = QLineEdit()
        self.url.setObjectName("profileUrl")
        self.url.setPlaceholderText(DEFAULT_LOCAL_URL)
        self.auth = QComboBox()
        self.auth.setObjectName("profileAuth")
        for value, label in AUTHS:
            self.auth.addItem(label, value)
        self.auth.currentIndexChanged.connect(self._update_fields)
        self.kind.currentIndexChanged.connect(self._update_fields)
        self.username = QLineEdit()
        self.username.setObjectName("profileUsername")
        self.secret = QLineEdit()
        self.secret.setObjectName("profileSecret")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("unchanged")
        self.ca_file = QLineEdit()
        self.ca_file.setObjectName("profileCaFile")
        self.ca_file.setPlaceholderText("system certificates")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(browse)
        self.verify_tls = QCheckBox("Verify the server's TLS certificate")
        self.verify_tls.setObjectName("profileVerifyTls")

        form = QFormLayout()
        form.addRow("&Name", self.name)
        form.addRow("&Kind", self.kind)
        form.addRow("&Address", self.url)
        form.addRow("&Sign-in", self.auth)
        form.addRow("&User name", self.username)
        form.addRow("&Token / password", self.secret)
        ca_label = QLabel("&CA file")
        ca_label.setBuddy(self.ca_file)
        form.addRow(ca_label, ca_row)
        form.addRow("", self.verify_tls)
        self._form = form

        self.secret_note = QLabel()
        self.secret_note.setObjectName("secretStorageNote")
        self.secret_note.setWordWrap(True)
        self.secret_file = QCheckBox("Keep tokens in a file only I can read (instead of this session only)")
        self.secret_file.setObjectName("secretFileOption")
        self.secret_file.toggled.connect(self._toggle_secret_file)

        self.test_button = QPushButton("&Test")
        self.test_button.setObjectName("testProfileButton")
        self.test_button.clicked.connect(self.test_profile)
        self.test_result = QLabel()
        self.test_result.setObjectName("testResult")
        self.test_result.setWordWrap(True)
        self.save_button = QPushButton("Sa&ve")
        self.save_button.setObjectName("saveProfileButton")
        self.save_button.clicked.connect(self.save_profile)
        self.connect_button = QPushButton("&Connect")
        self.connect_button.setObjectName("connectProfileButton")
        self.connect_button.clicked.connect(self.connect_profile)
        actions = QHBoxLayout()
        actions.addWidget(self.test_button)
        actions.addWidget(self.save_button)
        actions.addWidget(self.connect_button)
        actions.addStretch(1)

        right = QVBoxLayout()
        right.addLayout(form)
        right.addWidget(self.secret_note)
        right.addWidget(self.secret_file)
        right.addLayout(actions)
        right.addWidget(self.test_result)
        right.addStretch(1)

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addLayout(right, 5)
        outer = QVBoxLayout(self)
        outer.addWidget(self.in_use)
        outer.addLayout(body)
        outer.addWidget(close)
        self.resize(760, 420)

        profiles.profiles_changed.connect(lambda _p: self._fill_list())
        connection.profile_tested.connect(self._on_tested)
        connection.profile_changed.connect(lambda _p: self._fill_list())
        connection.status_changed.connect(lambda _s: self._update_in_use())
        self._update_secret_note()
        self._fill_list(select=self.in_use_id())

    # -- the profile in use ------------------------------------------------------------------------
    def in_use_profile(self) -> Profile | None:
        """The saved profile the connection uses (by id, else by address), or its own unsaved one."""
        current = self._connection.profile
        if current is None:
            return None
        saved = self._profiles.profiles()
        by_id = next((p for p in saved if p.id == current.id), None)
        if by_id is not None:
            return by_id
        wanted = current.url.rstrip("/")
        by_url = next((p for p in saved if p.url.rstrip("/") == wanted and p.kind == current.kind), None)
        return by_url or current

    def in_use_id(self) -> str | None:
        profile = self.in_use_profile()
        return profile.id if profile is not None else None

    def _update_in_use(self) -> None:
        profile = self.in_use_profile()
        if profile is None:
            self.in_use.setText("Not connected to a server yet.")
            return
        state = self._connection.status.state
        how = {
            ConnectionState.CONNECTED: "connected",
            ConnectionState.CONNECTING: "connecting",
            ConnectionState.RECONNECTING: "reconnecting",
        }.get(state, "not connected")
        name = "" if profile.name == profile.host_port else f"<b>{_esc(profile.name)}</b> at "
        saved = " Not saved as a profile: Save keeps it." if profile is self._unsaved else ""
        self.in_use.setText(f"In use now: {name}{_esc(profile.url)} ({how}).{saved}")

    def showEvent(self, event: QShowEvent) -> None:
        """Opened again later: the profile in use may have changed (demo engine, another profile)."""
        self._fill_list(select=self.in_use_id())
        super().showEvent(event)

    # -- list --------------------------------------------------------------------------------------
    def _fill_list(self, select: str | None = None) -> None:
        wanted = select or (self._editing.id if self._editing else None)
        in_use = self.in_use_profile()
        saved = self._profiles.profiles()
        self._unsaved = in_use if in_use is not None and all(p.id != in_use.id for p in saved) else None
        self.list.blockSignals(True)
        self.list.clear()
        listed = [self._unsaved, *saved] if self._unsaved is not None else saved
        for profile in listed:
            assert profile is not None
            label = profile.name
            if in_use is not None and profile.id == in_use.id:
                label = f"{profile.name} (in use)"
            item = QListWidgetItem(label)
            item.setData(ID_ROLE, profile.id)
            item.setToolTip(profile.url)
            if profile is self._unsaved:
                item.setToolTip(f"{profile.url}\nNot saved as a profile: Save keeps it")
            if in_use is not None and profile.id == in_use.id:
                font = item.font()
                font.setBold(True)
                font.setItalic(profile is self._unsaved)
                item.setFont(font)
            self.list.addItem(item)
        self.list.blockSignals(False)
        rows = [self.list.item(i) for i in range(self.list.count())]
        target = next((r for r in rows if r is not None and r.data(ID_ROLE) == wanted), None)
        self.list.setCurrentItem(target or self.list.item(0))
        self._update_in_use()

    def select_profile(self, profile_id: str | None) -> None:
        """Show `profile_id` in the editor (the window opens the dialog on the profile that needs fixing)."""
        self._fill_list(select=profile_id)

    def _on_select(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        choices = [*self._profiles.profiles(), *([self._unsaved] if self._unsaved is not None else [])]
        profile = next((p for p in choices if current is not None and p.id == current.data(ID_ROLE)), None)
        if profile is not None:
            self.edit(profile)

    def edit(self, profile: Profile) -> None:
        self._editing = profile
        self.name.setText(profile.name)
        self.kind.setCurrentIndex(max(0, self.kind.findData(profile.kind)))
        self.url.setText(profile.url)
        self.auth.setCurrentIndex(max(0, self.auth.findData(profile.auth)))
        self.username.setText(profile.username)
        self.secret.clear()
        has_secret = bool(self._profiles.secret(profile))
        self.secret.setPlaceholderText("unchanged (stored)" if has_secret else "not set")
        self.ca_file.setText(profile.ca_file)
        self.verify_tls.setChecked(profile.verify_tls)
        self.test_result.clear()
        self._update_fields()

    def current_profile(self) -> Profile:
        """The profile as the fields describe it."""
        base = self._editing or Profile.new("New server")
        return base.with_changes(
            name=self.name.text().strip() or self.url.text().strip() or "Server",
            kind=str(self.kind.currentData()),
            url=self.url.text().strip() or DEFAULT_LOCAL_URL,
            auth="token" if self._is_gateway() else str(self.auth.currentData()),
            username=self.username.text().strip(),
            ca_file=self.ca_file.text().strip(),
            verify_tls=self.verify_tls.isChecked(),
        )

    def _typed_secret(self) -> str | None:
        text = self.secret.text()
        return text if text else None

    # -- actions -----------------------------------------------------------------------------------
    def add_profile(self) -> None:
        profile = Profile.new("New server", kind="comfyui-remote", url="http://")
        self._profiles.save(profile)
        self._fill_list(select=profile.id)
        self.url.setFocus()
        self.url.selectAll()

    def delete_profile(self) -> None:
        if self._editing is not None:
            self._profiles.delete(self._editing.id)
            self._editing = None
            self._fill_list()

    def save_profile(self) -> Profile:
        profile = self.current_profile()
        if self._unsaved is not None and profile.id == self._unsaved.id:
            profile = profile.with_changes(id=Profile.new(profile.name).id)  # "cli"/"demo": a saved one now
        self._profiles.save(profile, self._typed_secret())
        self._editing = profile
        self.secret.clear()
        self._fill_list(select=profile.id)
        return profile

    def test_profile(self) -> None:
        profile = self.current_profile()
        secret = self._typed_secret() or self._profiles.secret(profile)
        self.test_result.setText(f"Testing {profile.url}…")
        self._connection.test_profile(profile, secret)

    def connect_profile(self) -> None:
        profile = self.save_profile()
        if callable(self._on_connect):
            self._on_connect(profile)
        self.accept()

    def _on_tested(self, profile_id: str, result: object) -> None:
        if self._editing is None or profile_id != self._editing.id:
            return
        if isinstance(result, ServerInfo):
            self.test_result.setText(f"✓ {server_name(result)} {result.version} answered at {result.url}")
        elif isinstance(result, AppError):
            self.test_result.setText(f"✗ {result.message} {result.hint}".strip())

    # -- fields ------------------------------------------------------------------------------------
    def _is_gateway(self) -> bool:
        return str(self.kind.currentData()) == GATEWAY_KIND

    def _update_fields(self) -> None:
        gateway = self._is_gateway()
        if gateway and self.auth.currentData() != "token":
            self.auth.blockSignals(True)
            self.auth.setCurrentIndex(self.auth.findData("token"))  # a gateway always takes a token
            self.auth.blockSignals(False)
        self.auth.setEnabled(not gateway)
        self.auth.setToolTip("A gateway signs in with a token" if gateway else "")
        auth = str(self.auth.currentData())
        remote = str(self.kind.currentData()) != "comfyui-local"
        self.username.setEnabled(auth == "basic")
        self.secret.setEnabled(auth != "none")
        self.ca_file.setEnabled(remote)
        self.verify_tls.setEnabled(remote)

    def _update_secret_note(self) -> None:
        secrets = self._profiles.secrets
        self.secret_note.setText(secrets.description)
        self.secret_file.setVisible(not secrets.keyring_available)
        self.secret_file.blockSignals(True)
        self.secret_file.setChecked(secrets.uses_file)
        self.secret_file.blockSignals(False)

    def _toggle_secret_file(self, enabled: bool) -> None:
        self._profiles.use_secret_file(enabled)
        self._update_secret_note()

    def _browse_ca(self) -> None:
        dialog = QFileDialog(
            self, "CA certificate", self.ca_file.text(), "Certificates (*.pem *.crt);;All (*)"
        )
        dialog.fileSelected.connect(self.ca_file.setText)
        dialog.open()
